"""
Tests for L{funcplane.admin.guard} and L{funcplane.admin.throttle}: failed
authentications are counted per client address, refused with 429 past the limit before
any token is compared, and logged without the token.
"""

import json

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from funcplane.admin.auth import TokenChecker, token_hash
from funcplane.admin.site import AdminLimits, admin_site
from funcplane.admin.throttle import FailureThrottle
from funcplane.routing import RouteTable
from tests.admin.test_site import Admin
from tests.fakes import TOKEN


class CountingChecker(TokenChecker):
    """
    A L{TokenChecker} that counts the tokens it compared.
    """

    compared = 0

    def check(self, request):
        self.compared += 1
        super().check(request)


class ThrottledSiteTests(SynchronousTestCase):
    """
    The admin Site, with 3 failures a minute allowed per address.
    """

    def setUp(self):
        self.clock = Clock()
        self.checker = CountingChecker(token_hash(TOKEN))
        self.admin = Admin()
        self.site = admin_site(
            RouteTable("func.local"), self.admin, self.checker, self.clock,
            AdminLimits(auth_failures=3), trusted_proxies=["10.0.0.0/8"],
        )

    def send(self, token=b"wrong", path=b"/api/functions", peer=("198.51.100.7", 4000), headers=b""):
        """
        One request from C{peer} on a connection of its own; its status line and answer.
        """
        channel = self.site.buildProtocol(None)
        address = IPv6Address("TCP", *peer) if ":" in peer[0] else IPv4Address("TCP", *peer)
        transport = StringTransport(peerAddress=address)
        channel.makeConnection(transport)
        channel.dataReceived(
            b"GET " + path + b" HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " + token + b"\r\n"
            + headers + b"\r\n"
        )
        head, _, body = transport.value().partition(b"\r\n\r\n")
        return head.split(b"\r\n"), body

    def test_limited_and_logged(self):
        """
        Three wrong tokens get 401, each logged with the address and path and never the
        token; the fourth request, even with the right token, gets 429 with Retry-After
        and /api's JSON, and no token is compared for it; /health still answers.
        """
        with capturedLogs() as events:
            for _ in range(3):
                status, _ = self.send()
                self.assertEqual(status[0], b"HTTP/1.1 401 Unauthorized")
            compared = self.checker.compared
            status, body = self.send(TOKEN.encode())
        self.assertEqual(status[0], b"HTTP/1.1 429 Too Many Requests")
        self.assertIn(b"Retry-After: 20", status)
        self.assertEqual(
            json.loads(body)["error"],
            {"code": "too_many_failures",
             "message": "too many failed authentications from your address; try again in 20 s"},
        )
        self.assertEqual(self.checker.compared, compared)
        self.assertEqual(self.admin.served, [])
        failures = [e for e in events if e.get("log_format", "").startswith("admin authentication failed")]
        self.assertEqual(
            [(e["client"], e["path"]) for e in failures], [("198.51.100.7", "/api/functions")] * 3
        )
        limited = [e for e in events if e.get("log_format", "").startswith("too many failed")]
        self.assertEqual([(e["client"], e["seconds"]) for e in limited], [("198.51.100.7", 20)])
        self.assertNotIn(b"wrong", repr(events).encode())
        self.assertNotIn(TOKEN, repr(events))
        status, _ = self.send(b"", path=b"/health")
        self.assertEqual(status[0], b"HTTP/1.1 200 OK")

    def test_recovers(self):
        """
        An address regains a try every 20 s (3 a minute): then the right token is served,
        and a wrong one is refused again at once.
        """
        for _ in range(3):
            self.send()
        self.clock.advance(19)
        self.assertEqual(self.send(TOKEN.encode())[0][0], b"HTTP/1.1 429 Too Many Requests")
        self.clock.advance(1)
        self.assertEqual(self.send(TOKEN.encode())[0][0], b"HTTP/1.1 200 OK")
        self.assertEqual(self.send()[0][0], b"HTTP/1.1 401 Unauthorized")
        self.assertEqual(self.send(TOKEN.encode())[0][0], b"HTTP/1.1 429 Too Many Requests")

    def test_per_address(self):
        """
        Another address is not limited by the first one's failures.
        """
        for _ in range(4):
            self.send()
        self.assertEqual(self.send(TOKEN.encode(), peer=("198.51.100.8", 1))[0][0], b"HTTP/1.1 200 OK")

    def test_cloudflare_envelope(self):
        """
        Under C{/client/v4} the 429 is Cloudflare's envelope.
        """
        for _ in range(3):
            self.send(path=b"/client/v4/user")
        status, body = self.send(path=b"/client/v4/user")
        self.assertEqual(status[0], b"HTTP/1.1 429 Too Many Requests")
        self.assertEqual(json.loads(body)["errors"][0]["code"], 10429)

    def test_trusted_proxy(self):
        """
        Behind a trusted proxy the client is the address its X-Forwarded-For names last:
        two clients behind one balancer are counted apart, and the balancer not at all.
        """
        proxy = ("10.1.2.3", 5000)
        for _ in range(3):
            self.send(peer=proxy, headers=b"X-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n")
        limited = self.send(TOKEN.encode(), peer=proxy, headers=b"X-Forwarded-For: 203.0.113.9\r\n")
        self.assertEqual(limited[0][0], b"HTTP/1.1 429 Too Many Requests")
        other = self.send(TOKEN.encode(), peer=proxy, headers=b"X-Forwarded-For: 203.0.113.10\r\n")
        self.assertEqual(other[0][0], b"HTTP/1.1 200 OK")
        # A client that is not a trusted proxy cannot choose whom it is counted as.
        for _ in range(3):
            self.send(headers=b"X-Forwarded-For: 192.0.2.1\r\n")
        self.assertEqual(self.send(TOKEN.encode())[0][0], b"HTTP/1.1 429 Too Many Requests")


class FailureThrottleTests(SynchronousTestCase):
    """
    The token bucket itself.
    """

    def test_bucket(self):
        """
        An address may fail C{failures} times at once; then it waits until a try has
        refilled, one every C{window / failures} seconds, at most C{failures} saved up.
        """
        clock = Clock()
        throttle = FailureThrottle(clock, failures=2, window=10)
        self.assertIsNone(throttle.retry_after("192.0.2.1"))
        self.assertFalse(throttle.failed("192.0.2.1"))
        self.assertTrue(throttle.failed("192.0.2.1"))
        self.assertEqual(throttle.retry_after("192.0.2.1"), 5)
        clock.advance(4.5)
        self.assertEqual(throttle.retry_after("192.0.2.1"), 1)
        clock.advance(0.5)
        self.assertIsNone(throttle.retry_after("192.0.2.1"))
        clock.advance(1000)
        throttle.failed("192.0.2.1")
        throttle.failed("192.0.2.1")
        self.assertEqual(throttle.retry_after("192.0.2.1"), 5)

    def test_bounded_memory(self):
        """
        However many addresses fail, at most C{max_addresses} are remembered, the least
        recently failed forgotten first.
        """
        throttle = FailureThrottle(Clock(), failures=1, max_addresses=100)
        for i in range(10_000):
            throttle.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        self.assertEqual(throttle.addresses(), 100)
        self.assertIsNotNone(throttle.retry_after("10.0.39.15"))
        self.assertIsNone(throttle.retry_after("10.0.0.1"))

    def test_ipv6_by_prefix(self):
        """
        IPv6 addresses count by their /64 (a client usually holds one whole); an IPv4
        address mapped into IPv6 counts as itself.
        """
        throttle = FailureThrottle(Clock(), failures=1)
        throttle.failed("2001:db8:1:2::1")
        self.assertIsNotNone(throttle.retry_after("2001:db8:1:2:ffff::9"))
        self.assertIsNone(throttle.retry_after("2001:db8:1:3::1"))
        throttle.failed("::ffff:192.0.2.7")
        self.assertIsNotNone(throttle.retry_after("192.0.2.7"))


class D1UploadTests(SynchronousTestCase):
    """
    A D1 import's upload URL (L{funcplane.d1.imports}) is served without the admin token:
    its route checks the URL's token.
    """

    setUp = ThrottledSiteTests.setUp

    def put(self, path):
        channel = self.site.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "198.51.100.7", 4000))
        channel.makeConnection(transport)
        channel.dataReceived(b"PUT " + path + b" HTTP/1.1\r\nHost: admin\r\nContent-Length: 2\r\n\r\nhi")
        return transport.value().split(b"\r\n", 1)[0]

    def test_upload_without_token(self):
        """
        A PUT to /client/v4/d1/imports/<32 hex> reaches the API with no token compared;
        any other path, or a malformed token, needs the admin token.
        """
        upload = b"/client/v4/d1/imports/" + b"ab" * 16
        self.assertEqual(self.put(upload), b"HTTP/1.1 200 OK")
        self.assertEqual((self.checker.compared, self.admin.served), (0, [(upload, b"hi")]))
        self.assertEqual(self.put(b"/client/v4/d1/imports/../x"), b"HTTP/1.1 401 Unauthorized")
        self.assertEqual(self.put(b"/client/v4/d1/imports/" + b"AB" * 16), b"HTTP/1.1 401 Unauthorized")
