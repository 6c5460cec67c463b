"""
The listener, connection by connection: keep-alive and pipelining, requests refused before
anything reaches a child, the hand-off to the admin API, the limits of one connection, and
the cap on connections per address.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from funcplane.edge.listener import ProxyLimits
from tests.edge.harness import OK, ProxyCase, Recorder, get


class KeepAliveTests(ProxyCase):
    """
    A client's connection carries one request after another, answered in order.
    """

    def test_client_close(self):
        """
        A client's C{Connection: close} is answered with C{Connection: close}, and its connection
        closes after the response.
        """
        self.send(get(extra=b"Connection: close\r\n"))
        self.children.answer(OK)
        self.assertEqual(
            self.received(), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        )
        self.assertTrue(self.channel.transport.disconnecting)

    def test_pipelined_in_order(self):
        """
        Two pipelined requests for two versions are relayed one after the other and
        answered in order, each by its own version.
        """
        self.send(get(b"v1.hello.func.local", b"/one") + get(b"v2.hello.func.local", b"/two"))
        self.assertEqual(self.supervisor.asked, ["id1"])
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
        self.assertEqual(self.supervisor.asked, ["id1", "id2"])
        self.assertIn(b"GET /two", self.children.sent())
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo")
        self.assertEqual(
            self.received(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo",
        )


class RefusedRequestTests(ProxyCase):
    """
    A request whose head breaks the rules is answered by funcplane, and reaches no child.
    """

    def test_host_count(self):
        """
        A request with no Host header, or two, is answered 400 and its connection closed; nothing
        is started.
        """
        for request in [b"GET / HTTP/1.1\r\n\r\n", get(extra=b"Host: v1.hello.func.local\r\n")]:
            self.channel = self.connect()
            self.send(request)
            self.assertAnswer(b"400 Bad Request", "a request needs exactly one Host header", closed=True)
        self.assertEqual(self.supervisor.asked, [])

    def test_malformed(self):
        """
        Ambiguous framing is refused before anything reaches a child.
        """
        cases = [
            b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            b"Content-Length: 3\r\nContent-Length: 3\r\n",
            b"Content-Length: +3\r\n",
            b"X-Folded: a\r\n b\r\n",
        ]
        for extra in cases:
            self.channel = self.connect()
            self.send(b"POST / HTTP/1.1\r\nHost: hello.func.local\r\n" + extra + b"\r\nabc")
            answer = self.received()
            self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer)
            self.assertIn(b"Connection: close", answer)
            self.assertTrue(self.channel.transport.disconnecting)
        self.assertEqual(self.children.connections, [])

    def test_target_forms(self):
        """
        An absolute-form target is answered 400: funcplane is no forward proxy.
        """
        self.send(b"GET http://hello.func.local/ HTTP/1.1\r\nHost: hello.func.local\r\n\r\n")
        self.assertAnswer(
            b"400 Bad Request", "the request target must be a path, such as /index.html"
        )

    def test_unknown_transfer_coding(self):
        """
        A transfer coding other than chunked alone is answered 501, and the connection closes, as
        its body cannot be read.
        """
        self.send(
            b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"0\r\n\r\n"
        )
        self.assertAnswer(
            b"501 Not Implemented", "only the chunked transfer coding is supported", closed=True
        )

    def test_head_too_large(self):
        """
        Headers over the default limit (32 KiB) are answered 431 and the connection closed.
        """
        self.channel = self.connect()
        self.send(b"GET / HTTP/1.1\r\nHost: hello.func.local\r\n")
        self.send(b"X-Big: " + b"a" * (64 * 1024) + b"\r\n")
        self.assertAnswer(
            b"431 Request Header Fields Too Large", "the request line and headers are too large", closed=True
        )


class HandOffTests(ProxyCase):
    def test_admin_connection_handed_off(self):
        """
        A connection whose first request is not for a function host goes to the admin
        API with every byte read so far, and whatever follows.
        """
        first = get(b"localhost:8081", b"/api/functions")
        self.send(first[:20])
        self.send(first[20:] + b"GET /more")
        self.send(b" HTTP/1.1\r\n")
        admin = self.channel._admin
        self.assertIsInstance(admin, Recorder)
        self.assertEqual(admin.received, first + b"GET /more HTTP/1.1\r\n")
        self.assertIs(admin.transport, self.channel.transport)
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertIsNotNone(admin.lost)
        self.assertEqual(self.supervisor.asked, [])


class LimitTests(ProxyCase):
    """
    What one connection may make funcplane hold, and for how long (L{ProxyLimits}).
    """

    limits = ProxyLimits(
        head_bytes=1024, target_bytes=100, body_bytes=10, response_head_bytes=200, head_seconds=5, idle_seconds=30
    )

    def assertRefused(self, status):
        answer = self.received()
        self.assertTrue(answer.startswith(b"HTTP/1.1 " + status + b"\r\n"), answer)
        self.assertIn(b"Connection: close\r\n", answer)
        self.assertTrue(self.channel.transport.disconnecting)
        return answer

    def test_target_too_long(self):
        """
        A target over the limit is answered 414 and the connection closed; nothing is routed.
        """
        self.send(get(path=b"/" + b"a" * 100))
        self.assertRefused(b"414 Request-URI Too Long")
        self.assertEqual(self.supervisor.asked, [])

    def test_head_too_large(self):
        """
        Headers over the limit are answered 431 and the connection closed.
        """
        self.send(get(extra=b"X-Big: " + b"a" * 1024 + b"\r\n"))
        self.assertRefused(b"431 Request Header Fields Too Large")

    def test_declared_body_too_large(self):
        """
        A Content-Length over the limit is refused from the headers alone: nothing
        reaches the child.
        """
        self.send(b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nContent-Length: 11\r\n\r\n")
        answer = self.assertRefused(b"413 Request Entity Too Large")
        self.assertTrue(answer.endswith(b"the request body is over 10 bytes\n"))
        self.assertEqual(self.children.connections, [])

    def test_chunked_body_too_large(self):
        """
        A chunked body is counted as it streams; past the limit the child's request is
        abandoned and the client gets 413.
        """
        self.send(b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.send(b"6\r\nabcdef\r\n")
        self.assertFalse(self.channel.transport.disconnecting)
        self.send(b"6\r\nghijkl\r\n")
        self.assertRefused(b"413 Request Entity Too Large")
        self.assertTrue(self.children.connections[0][1].transport.disconnecting)
        self.assertNotIn(b"ghijkl", self.children.sent())

    def test_response_head_too_large(self):
        """
        A child whose response head is over the limit has its connection aborted, and the client
        gets 502.
        """
        self.send(get())
        upstream = self.children.connections[0][1]
        upstream.dataReceived(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200 + b"\r\n\r\n")
        self.assertTrue(upstream.transport.disconnected)
        upstream.connectionLost(Failure(ConnectionLost()))
        self.assertTrue(self.received().startswith(b"HTTP/1.1 502 Bad Gateway\r\n"))

    def test_slow_headers(self):
        """
        Headers that trickle in are cut off by the deadline, counted from the request's
        first byte, however steadily bytes arrive.
        """
        for byte in get()[:-4]:
            self.send(bytes([byte]))
            self.clock.advance(0.1)
        self.assertFalse(self.channel.transport.disconnecting)
        self.clock.advance(5)
        self.assertRefused(b"408 Request Timeout")

    def test_silent_connection_closed(self):
        """
        A connection on which nothing arrives within the header deadline is closed unanswered.
        """
        self.clock.advance(5)
        self.assertEqual(self.received(), b"")
        self.assertTrue(self.channel.transport.disconnecting)

    def test_idle_keep_alive_closed(self):
        """
        A kept-alive connection that brings no next request within the idle limit is closed.
        """
        self.send(get())
        self.children.answer(OK)
        self.clock.advance(29)
        self.assertFalse(self.channel.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.channel.transport.disconnecting)

    def test_busy_connection_not_idle(self):
        """
        A connection whose request is still being answered is not idle.
        """
        self.send(get())
        self.clock.advance(29.5)
        self.assertFalse(self.channel.transport.disconnecting)


class ConnectionCapTests(ProxyCase):
    limits = ProxyLimits(connections_per_ip=2)

    def test_one_too_many(self):
        """
        Past the per-address limit a connection is answered 503 and closed; closing one
        makes room again; other addresses are not affected.
        """
        second = self.connect()
        third = self.connect()
        answer = third.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer)
        self.assertTrue(third.transport.disconnecting)
        third.connectionLost(Failure(ConnectionDone()))
        other = self.factory.buildProtocol(None)
        other.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "198.51.100.1", 1)))
        self.assertEqual(other.transport.value(), b"")
        second.connectionLost(Failure(ConnectionDone()))
        fourth = self.connect()
        self.assertEqual(fourth.transport.value(), b"")
        self.send(get(), fourth)
        self.assertEqual(self.supervisor.asked, ["id2"])
