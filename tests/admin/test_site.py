"""
Tests for L{funcplane.admin.site}: the admin Site's root, which refuses function hosts;
its requests, refused before their bodies are read when they lack the token or are over
the limit; and its connections' deadlines.
"""

import io
import json

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from funcplane.admin.auth import TokenChecker, token_hash
from funcplane.admin.site import AdminLimits, admin_site
from funcplane.edge.linger import Lingering
from funcplane.routing import RouteTable
from tests.fakes import TOKEN

BEARER = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"


class Admin(Resource):
    """
    Answers C{admin PATH}, or holds the request (for C{/hold}) until the test finishes it.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.served = []
        self.held = []

    def render(self, request):
        self.served.append((request.path, request.content.read()))
        if request.path == b"/hold":
            self.held.append(request)
            return NOT_DONE_YET
        return b"admin " + request.path


class SiteCase(SynchronousTestCase):
    """
    An admin Site on a clock of the test's, over a StringTransport, checking the token
    with a real L{TokenChecker}.
    """

    limits = AdminLimits(body_bytes=10, head_seconds=10, body_seconds=30, idle_seconds=60)

    def setUp(self):
        self.clock = Clock()
        self.admin = Admin()
        checker = TokenChecker(token_hash(TOKEN))
        self.site = admin_site(RouteTable("func.local"), self.admin, checker, self.clock, self.limits)
        self.channel = self.site.buildProtocol(None)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)

    def answer(self):
        """
        The status line and the rest of the first answer written, and clear it.
        """
        head, _, body = self.transport.value().partition(b"\r\n\r\n")
        self.transport.clear()
        return head.split(b"\r\n"), body


class AdminBodyLimitTests(SiteCase):
    """
    The admin API refuses a body over its limit before reading it.
    """

    def assertRefused(self):
        answer = self.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n"), answer)
        self.assertIn(b'"code": "body_too_large"', answer)
        self.assertNotIn(b"admin /", answer)
        self.assertEqual(self.admin.served, [])

    def test_declared_length(self):
        """
        A Content-Length over the limit is refused with 413 before the body is read, and
        the request never reaches the admin resource.
        """
        self.channel.dataReceived(b"POST /api/x HTTP/1.1\r\nHost: a\r\n" + BEARER + b"Content-Length: 11\r\n\r\n")
        self.assertRefused()

    def test_chunked(self):
        """
        A chunked body is refused with 413 as soon as its chunks pass the limit.
        """
        self.channel.dataReceived(b"POST /api/x HTTP/1.1\r\nHost: a\r\n" + BEARER + b"Transfer-Encoding: chunked\r\n\r\n")
        self.channel.dataReceived(b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n")
        self.assertRefused()

    def test_within_limit(self):
        """
        A body exactly at the limit is read and served.
        """
        self.channel.dataReceived(b"POST /api/x HTTP/1.1\r\nHost: a\r\n" + BEARER + b"Content-Length: 10\r\n\r\n0123456789")
        self.assertIn(b"admin /api/x", self.transport.value())
        self.assertEqual(self.admin.served, [(b"/api/x", b"0123456789")])


class EarlyAuthenticationTests(SiteCase):
    """
    The token is checked as soon as a request's headers are in: a request without it is
    answered before a byte of its body is read, let alone spooled to a file.
    """

    limits = AdminLimits(body_bytes=30 * 1024 * 1024)

    def test_unauthenticated_body_unread(self):
        """
        A 20 MiB deploy without a token is answered 401 with the API's JSON error and a
        Bearer challenge once its headers are in; the request's content stays an empty
        buffer in memory (twisted.web would have opened a temporary file for it), what is
        sent after goes to the lingering close, and the route never runs.
        """
        self.channel.dataReceived(
            b"POST /api/deploy/hello HTTP/1.1\r\nHost: admin\r\nContent-Length: 20971520\r\n\r\n"
        )
        request = self.channel.requests[-1]
        self.assertIsInstance(request.content, io.BytesIO)
        status, body = self.answer()
        self.assertEqual(status[0], b"HTTP/1.1 401 Unauthorized")
        self.assertIn(b'WWW-Authenticate: Bearer realm="funcplane"', status)
        self.assertIn(b"Connection: close", status)
        self.assertEqual(json.loads(body)["error"]["code"], "unauthorized")
        self.assertIn("needs the admin token", json.loads(body)["error"]["message"])
        self.assertIsInstance(self.channel._switched, Lingering)
        self.channel.dataReceived(b"x" * 65536)
        self.assertEqual(request.content.getvalue(), b"")
        self.assertEqual(self.admin.served, [])
        self.assertEqual(self.channel._switched.discarded, 65536)

    def test_wrong_token(self):
        """
        A wrong token is refused the same way, saying it is not valid.
        """
        self.channel.dataReceived(
            b"PUT /api/functions/a/aliases/b HTTP/1.1\r\nHost: admin\r\nX-Deploy-Token: nope\r\n"
            b"Content-Length: 5\r\n\r\n"
        )
        status, body = self.answer()
        self.assertEqual(status[0], b"HTTP/1.1 401 Unauthorized")
        self.assertEqual(
            json.loads(body),
            {"status": "error", "error": {"code": "unauthorized", "message": "the admin token is not valid"}},
        )
        self.assertEqual(self.admin.served, [])

    def test_cloudflare_envelope(self):
        """
        Under C{/client/v4} the refusal is Cloudflare's envelope with code 10000, as
        wrangler expects.
        """
        self.channel.dataReceived(
            b"PUT /client/v4/accounts/a/workers/scripts/hello HTTP/1.1\r\nHost: admin\r\n"
            b"Authorization: Bearer wrong\r\nContent-Length: 100\r\n\r\n"
        )
        status, body = self.answer()
        self.assertEqual(status[0], b"HTTP/1.1 401 Unauthorized")
        self.assertEqual(
            json.loads(body),
            {"success": False, "errors": [{"code": 10000, "message": "the admin token is not valid"}],
             "messages": [], "result": None},
        )

    def test_no_continue_for_refusal(self):
        """
        A client that asked for C{100 Continue} before sending its body gets the 401
        only, never an invitation to send the body.
        """
        self.channel.dataReceived(
            b"POST /api/deploy/x HTTP/1.1\r\nHost: admin\r\nExpect: 100-continue\r\nContent-Length: 500\r\n\r\n"
        )
        answer = self.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 401 "), answer)
        self.assertNotIn(b"100 Continue", answer)

    def test_public_paths(self):
        """
        C{GET /health} and a tail's WebSocket address need no token; the same paths with
        another method, or a tail address that is not a tail id, do.
        """
        tail = b"/client/v4/tails/" + b"0123456789abcdef" * 2
        for path in [b"/health", b"/health?probe=1", tail]:
            channel = self.site.buildProtocol(None)
            transport = StringTransport()
            channel.makeConnection(transport)
            channel.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: admin\r\n\r\n")
            self.assertIn(b"admin " + path.split(b"?")[0], transport.value())
        for method, path in [(b"POST", b"/health"), (b"GET", b"/client/v4/tails/abc"), (b"GET", b"/health/x")]:
            channel = self.site.buildProtocol(None)
            transport = StringTransport()
            channel.makeConnection(transport)
            channel.dataReceived(method + b" " + path + b" HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n")
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 401 "), (method, path))

    def test_function_host_refused_unread(self):
        """
        A function host on an admin connection is answered 421 before its body is read,
        token or not.
        """
        self.channel.dataReceived(
            b"POST /upload HTTP/1.1\r\nHost: hello.func.local\r\nContent-Length: 20971520\r\n\r\n"
        )
        status, body = self.answer()
        self.assertEqual(status[0], b"HTTP/1.1 421 Misdirected Request")
        self.assertEqual(body, b"function hosts are served on connections of their own; reconnect\n")
        self.assertIsInstance(self.channel.requests[-1].content, io.BytesIO)
        self.assertEqual(self.admin.served, [])

    def test_with_token_served(self):
        """
        A request with the token is read and served.
        """
        self.channel.dataReceived(b"POST /api/x HTTP/1.1\r\nHost: admin\r\n" + BEARER + b"Content-Length: 2\r\n\r\nok")
        self.assertEqual(self.admin.served, [(b"/api/x", b"ok")])


class DeadlineTests(SiteCase):
    """
    Admin connections have the function listener's deadlines: headers within
    C{head_seconds} of their first byte, a body within C{body_seconds}, however slowly
    the bytes trickle in (each byte resets Twisted's own idle timeout).
    """

    limits = AdminLimits(body_bytes=1000, head_seconds=10, body_seconds=30, idle_seconds=60)

    def served(self):
        self.channel.dataReceived(b"GET /api/a HTTP/1.1\r\nHost: admin\r\n" + BEARER + b"\r\n")
        self.assertIn(b"admin /api/a", self.transport.value())
        self.transport.clear()

    def trickle(self, data, seconds):
        """
        Send C{data} a byte a second, for at most C{seconds}.
        """
        for byte in data[:seconds]:
            if self.transport.disconnecting:
                return
            self.channel.dataReceived(bytes([byte]))
            self.clock.advance(1)

    def test_trickled_headers(self):
        """
        On a kept-alive connection, a second request whose headers trickle in a byte a
        second is answered 408 (in /api's JSON) ten seconds after its first byte, and the
        connection closes.
        """
        self.served()
        self.trickle(b"GET /api/b HTTP/1.1\r\nHost: admin\r\nX-Slow: " + b"a" * 100, 30)
        status, body = self.answer()
        self.assertEqual(status[0], b"HTTP/1.1 408 Request Timeout")
        self.assertEqual(
            json.loads(body)["error"],
            {"code": "request_timeout", "message": "the request headers took too long: send them within 10 s"},
        )
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.clock.seconds(), 10)
        self.assertEqual(len(self.admin.served), 1)

    def test_trickled_body(self):
        """
        A body that arrives within C{body_seconds} is served, however slowly; one that
        trickles in a byte a second for longer is answered 408 C{body_seconds} after its
        headers ended, and the route never sees it.
        """
        self.channel.dataReceived(b"POST /api/b HTTP/1.1\r\nHost: admin\r\n" + BEARER + b"Content-Length: 10\r\n\r\n")
        self.trickle(b"0123456789", 10)
        self.assertEqual(self.admin.served, [(b"/api/b", b"0123456789")])
        self.transport.clear()
        self.channel.dataReceived(b"POST /api/c HTTP/1.1\r\nHost: admin\r\n" + BEARER + b"Content-Length: 100\r\n\r\n")
        start = self.clock.seconds()
        self.trickle(b"x" * 100, 100)
        status, body = self.answer()
        self.assertEqual(status[0], b"HTTP/1.1 408 Request Timeout")
        self.assertEqual(json.loads(body)["error"]["message"], "the request body took too long: send it within 30 s")
        self.assertEqual(self.clock.seconds() - start, 30)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(len(self.admin.served), 1)

    def test_cloudflare_body_timeout(self):
        """
        A body timeout under C{/client/v4} is in Cloudflare's envelope (code 10408).
        """
        self.channel.dataReceived(
            b"PUT /client/v4/accounts/a/workers/scripts/x HTTP/1.1\r\nHost: admin\r\n" + BEARER
            + b"Content-Length: 5\r\n\r\n"
        )
        self.clock.advance(30)
        status, body = self.answer()
        self.assertEqual(status[0], b"HTTP/1.1 408 Request Timeout")
        self.assertEqual(json.loads(body)["errors"][0]["code"], 10408)

    def test_silent_connection(self):
        """
        A connection that sends nothing is closed after C{head_seconds}, without an
        answer.
        """
        self.clock.advance(10)
        self.assertEqual(self.transport.value(), b"")
        self.assertTrue(self.transport.disconnecting)

    def test_slow_answer_not_timed_out(self):
        """
        A request the admin API takes long to answer is not a slow client: no deadline
        runs while it is answered, and the next request gets its own.
        """
        self.channel.dataReceived(b"GET /hold HTTP/1.1\r\nHost: admin\r\n" + BEARER + b"\r\n")
        self.clock.advance(100)
        self.assertFalse(self.transport.disconnecting)
        [held] = self.admin.held
        held.write(b"done")
        held.finish()
        self.assertIn(b"done", self.transport.value())
        self.served()
        self.clock.advance(59)
        self.assertFalse(self.transport.disconnecting)

    def test_pipelined_head_deadline(self):
        """
        Part of a next request that arrived while the first was answered starts that
        request's head deadline when the first is done.
        """
        self.channel.dataReceived(b"GET /hold HTTP/1.1\r\nHost: admin\r\n" + BEARER + b"\r\nGET /api/b HT")
        self.clock.advance(100)
        [held] = self.admin.held
        held.finish()
        self.transport.clear()
        self.clock.advance(10)
        status, _ = self.answer()
        self.assertEqual(status[0], b"HTTP/1.1 408 Request Timeout")

    def test_deadlines_stop_with_the_connection(self):
        """
        Once the connection is gone, nothing is left on the clock.
        """
        self.served()
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
