import uuid
from collections import Counter
from random import Random

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from funcplane.interfaces import IRouteTable
from funcplane.model import FunctionRoutes
from funcplane.routing import NotAFunctionHost, NotRouted, RouteTable, canonical_host, split_host


class CanonicalHostTests(SynchronousTestCase):
    def test_canonical(self):
        """
        Case, the port and one trailing dot are dropped; bytes are accepted.
        """
        self.assertEqual(canonical_host(b"V1.Hello.FUNC.local.:8080"), "v1.hello.func.local")
        self.assertEqual(canonical_host("hello.func.local"), "hello.func.local")
        self.assertEqual(canonical_host("[::1]:80"), "[::1]")
        self.assertEqual(canonical_host("a.func.local.."), "a.func.local.")

    def test_split(self):
        """
        One label under the domain is a function; two are a selector and a function; any
        other shape is not a function host.
        """
        self.assertEqual(split_host("hello.func.local", "func.local"), ("hello", None))
        self.assertEqual(split_host("v1.hello.func.local", "func.local"), ("hello", "v1"))
        for host in ["func.local", "a.b.c.func.local", "hello.func.local.evil.com", ".func.local", "x..func.local", "127.0.0.1"]:
            self.assertIsNone(split_host(host, "func.local"), host)


class RouteTableTests(SynchronousTestCase):
    def setUp(self):
        self.table = RouteTable("func.local")
        self.table.replace(
            FunctionRoutes("hello", latest="id2", versions={"v1": "id1", "v2": "id2"}, aliases={"test": "id1"})
        )

    def test_interface(self):
        """
        The table provides IRouteTable.
        """
        verifyObject(IRouteTable, self.table)

    def test_resolve(self):
        """
        A function host resolves to latest, a version host to the version, an alias host to
        the alias' version, in any case and with a port.
        """
        self.assertEqual(self.table.resolve(b"hello.func.local"), "id2")
        self.assertEqual(self.table.resolve(b"V1.Hello.func.local:8081"), "id1")
        self.assertEqual(self.table.resolve(b"test.hello.func.local."), "id1")

    def test_not_found_messages(self):
        """
        Unknown functions, selectors and shapes raise NotRouted naming what is missing.
        """
        cases = {
            b"nope.func.local": "function nope not found",
            b"v9.hello.func.local": "function hello has no version or alias v9",
            b"evil.v1.hello.func.local": "no function answers at evil.v1.hello.func.local",
        }
        for host, message in cases.items():
            self.assertEqual(str(self.assertRaises(NotRouted, self.table.resolve, host)), message)

    def test_no_latest(self):
        """
        A function without versions is not routed.
        """
        self.table.replace(FunctionRoutes("empty", latest=None))
        self.assertIn("no versions", str(self.assertRaises(NotRouted, self.table.resolve, b"empty.func.local")))

    def test_not_deployed(self):
        """
        A function with versions but no deployment (only uploaded) is not routed at its own
        host, with a message that says so and where its versions answer; they answer there.
        """
        self.table.replace(FunctionRoutes("fresh", latest=None, versions={"v1": "id1"}))
        self.assertEqual(
            str(self.assertRaises(NotRouted, self.table.resolve, b"fresh.func.local")),
            "function fresh is not deployed: its versions answer at their own hosts"
            " (VERSION.fresh.func.local); deploy one with wrangler versions deploy, or"
            " POST /api/rollback/fresh",
        )
        self.assertEqual(self.table.resolve(b"v1.fresh.func.local"), "id1")

    def test_remove(self):
        """
        A removed function no longer resolves, whatever the case it is removed by.
        """
        self.table.remove("HELLO")
        self.assertRaises(NotRouted, self.table.resolve, b"hello.func.local")

    def test_function_hosts(self):
        """
        Hosts under the domain are function hosts; the admin host and look-alikes are not.
        """
        self.assertTrue(self.table.is_function_host(b"x.func.local:8081"))
        self.assertTrue(self.table.is_function_host(b"FUNC.local"))
        self.assertFalse(self.table.is_function_host(b"127.0.0.1:8081"))
        self.assertFalse(self.table.is_function_host(b"notfunc.local"))
        self.assertFalse(self.table.is_function_host(b"hello.func.local.evil.com"))

    def test_not_a_function_host(self):
        """
        Resolving a host outside the domain says so with its own exception, so the proxy
        can tell a misdirected request from a missing function in one lookup.
        """
        for host in [b"127.0.0.1:8081", b"notfunc.local", b"hello.func.local.evil.com"]:
            self.assertRaises(NotAFunctionHost, self.table.resolve, host)
        error = self.assertRaises(NotRouted, self.table.resolve, b"a.b.c.func.local")
        self.assertNotIsInstance(error, NotAFunctionHost)


A = "a1b2c3d4" + "0" * 24
B = "a1b2c3d5" + "1" * 24
C = "ffee0011" + "2" * 24


def headers(**values):
    """
    A header lookup over C{values} (names with C{_} for C{-}).
    """
    found = {name.replace("_", "-").encode(): value.encode() for name, value in values.items()}
    return found.get


class SplitTests(SynchronousTestCase):
    def setUp(self):
        self.random = Random(1234)
        self.table = RouteTable("func.local", random=self.random.random)
        self.table.replace(
            FunctionRoutes(
                "hello", latest=A, versions={"v1": A, "v2": B, "v3": C}, split=((A, 90), (B, 10))
            )
        )

    def test_shares_are_honest(self):
        """
        Over 10,000 requests to a 90/10 split, the second version's share is within 1.5
        points of 10 %, and nothing goes to a version outside the split.
        """
        counts = Counter(self.table.resolve(b"hello.func.local") for _ in range(10_000))
        self.assertEqual(set(counts), {A, B})
        self.assertLess(abs(counts[B] / 10_000 - 0.10), 0.015, counts)

    def test_version_key_sticks(self):
        """
        The same version key always reaches the same version; different keys spread over
        the split in proportion.
        """
        for key in ["user-1", "user-2", "session-xyz"]:
            first = self.table.resolve(b"hello.func.local", headers(cloudflare_workers_version_key=key))
            for _ in range(50):
                self.assertEqual(
                    self.table.resolve(b"hello.func.local", headers(cloudflare_workers_version_key=key)), first
                )
        counts = Counter(
            self.table.resolve(b"hello.func.local", headers(cloudflare_workers_version_key=f"k{i}"))
            for i in range(10_000)
        )
        self.assertLess(abs(counts[B] / 10_000 - 0.10), 0.015, counts)

    def test_override(self):
        """
        An override naming this function and a version of the split (dashed or not) picks
        it; one naming another function, or a version outside the split, is ignored.
        """
        dashed = str(uuid.UUID(B))
        for value in [f'hello="{dashed}"', f'other="{A}", HELLO="{B}"']:
            picks = {
                self.table.resolve(b"hello.func.local", headers(cloudflare_workers_version_overrides=value))
                for _ in range(200)
            }
            self.assertEqual(picks, {B}, value)
        for value in [f'other="{B}"', f'hello="{C}"', "hello=garbage"]:
            picks = {
                self.table.resolve(b"hello.func.local", headers(cloudflare_workers_version_overrides=value))
                for _ in range(200)
            }
            self.assertEqual(picks, {A, B}, value)

    def test_version_hosts_unaffected(self):
        """
        A version's own host is not split.
        """
        self.assertEqual({self.table.resolve(b"v2.hello.func.local") for _ in range(100)}, {B})

    def test_id_prefix(self):
        """
        Eight or more leading hex digits of a version id reach it when they are unique; a
        shared or short prefix reaches nothing.
        """
        self.assertEqual(self.table.resolve(b"ffee0011.hello.func.local"), C)
        self.assertEqual(self.table.resolve(b"a1b2c3d4.hello.func.local"), A)
        self.assertEqual(self.table.resolve(A.encode() + b".hello.func.local"), A)
        for selector in [b"a1b2c3d", b"a1b2c3", b"ffee001"]:
            self.assertRaises(NotRouted, self.table.resolve, selector + b".hello.func.local")
        self.table.replace(FunctionRoutes("two", latest=A, versions={"x": "a1b2c3d4e", "y": "a1b2c3d4f"}))
        self.assertRaises(NotRouted, self.table.resolve, b"a1b2c3d4.two.func.local")
