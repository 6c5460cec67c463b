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
