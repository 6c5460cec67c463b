"""
Tests for L{funcplane.admin.site}: the admin Site's root, which refuses function hosts,
and its requests, which refuse a body over the limit.
"""

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from funcplane.routing import RouteTable
from funcplane.admin.site import AdminRoot, admin_site


class Admin(Resource):
    isLeaf = True

    def render(self, request):
        return b"admin " + request.path


class AdminRootTests(SynchronousTestCase):
    """
    The root serves the admin API for every host but the functions'.
    """

    def setUp(self):
        self.client = StubTreq(AdminRoot(RouteTable("func.local"), Admin()))

    def request(self, host):
        response = self.successResultOf(
            self.client.get("http://127.0.0.1:8081/api/functions", headers={"Host": host})
        )
        return response.code, self.successResultOf(response.content())

    def test_admin_hosts_served(self):
        """
        A request for a host that is not a function's reaches the admin resource.
        """
        self.assertEqual(self.request("127.0.0.1:8081"), (200, b"admin /api/functions"))

    def test_function_host_misdirected(self):
        """
        A function host on a connection that was handed to the admin API is refused with
        421, which tells the client to try again on a new connection.
        """
        self.assertEqual(
            self.request("hello.func.local"),
            (421, b"function hosts are served on connections of their own; reconnect\n"),
        )


class AdminBodyLimitTests(SynchronousTestCase):
    """
    The admin API refuses a body over its limit before reading it.
    """

    def setUp(self):
        self.site = admin_site(RouteTable("func.local"), Admin(), max_body_bytes=10)
        self.channel = self.site.buildProtocol(None)
        # The channel's idle timeout runs on a clock of the test's, not the reactor.
        self.channel.callLater = Clock().callLater
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)

    def assertRefused(self):
        answer = self.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n"), answer)
        self.assertIn(b'"code": "body_too_large"', answer)
        self.assertTrue(self.transport.disconnecting)
        self.assertNotIn(b"admin /", answer)

    def test_declared_length(self):
        """
        A Content-Length over the limit is refused with 413 before the body is read, and
        the request never reaches the admin resource.
        """
        self.channel.dataReceived(b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n")
        self.assertRefused()

    def test_chunked(self):
        """
        A chunked body is refused with 413 as soon as its chunks pass the limit.
        """
        self.channel.dataReceived(b"POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.channel.dataReceived(b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n")
        self.assertRefused()

    def test_within_limit(self):
        """
        A body exactly at the limit is read and served.
        """
        self.channel.dataReceived(b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789")
        self.assertIn(b"admin /api/x", self.transport.value())
