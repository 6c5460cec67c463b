"""
The listener, connection by connection: keep-alive and pipelining, requests refused before
anything reaches a child, the hand-off to the admin API, the limits of one connection (a
chunked body's framing among them), the cap on connections per address, and the lingering
close after a refusal.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from funcplane.edge.listener import ProxyLimits
from tests.edge.harness import OK, HalfClosingTransport, ProxyCase, Recorder, get


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

    def test_one_answer(self):
        """
        A request refused at its head is answered once, whatever the parser finds after
        it in the same bytes (here: the transfer coding it cannot read).
        """
        self.send(
            b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nTransfer-Encoding: xchunked\r\n\r\n"
            b"0\r\n\r\nGET / HTTP/1.1\r\nHost: hello.func.local\r\n\r\n"
        )
        self.assertAnswer(
            b"501 Not Implemented", "only the chunked transfer coding is supported", closed=True
        )
        self.assertEqual(self.children.connections, [])

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
        admin = self.channel._delegate
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


CHUNKED_POST = b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nTransfer-Encoding: chunked\r\n\r\n"
FRAMING_REFUSAL = (
    "the chunked body's framing (chunk extensions, trailers) runs over 4096 bytes beyond its"
    " data; send plain chunk sizes"
)


class ChunkFramingTests(ProxyCase):
    """
    What httptools parses of a chunked body but does not report (chunk extensions, the
    trailer section) is counted from the raw bytes: it may run only 4 KiB beyond what the
    body's data allows, or the request is answered 400 and the connection closes.
    """

    def test_trailer_that_never_ends(self):
        """
        A trailer value that never ends is cut off once it passes the cap, long before
        the head limit (32 KiB): 400, the child's request abandoned without its last chunk.
        """
        self.send(CHUNKED_POST + b"3\r\nabc\r\n0\r\nX-Trailer: ")
        for _ in range(4):
            self.send(b"a" * 1000)
        self.assertEqual(self.received(), b"")
        self.send(b"a" * 1000)
        self.assertAnswer(b"400 Bad Request", FRAMING_REFUSAL, closed=True)
        upstream = self.children.connections[0][1]
        self.assertTrue(upstream.transport.disconnecting)
        self.assertTrue(self.children.sent().endswith(b"\r\n\r\n3\r\nabc\r\n"))

    def test_many_trailers(self):
        """
        Many small trailers count as well as one large one.
        """
        self.send(CHUNKED_POST + b"3\r\nabc\r\n0\r\n")
        for i in range(100):
            self.send(b"X-T%d: %s\r\n" % (i, b"v" * 40))
        self.assertAnswer(b"400 Bad Request", FRAMING_REFUSAL, closed=True)

    def test_small_trailers_dropped(self):
        """
        A few trailers are read and go no further; the request is relayed whole.
        """
        self.send(CHUNKED_POST + b"3\r\nabc\r\n0\r\nX-Checksum: 1234\r\n\r\n")
        self.assertTrue(self.children.sent().endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
        self.assertNotIn(b"X-Checksum", self.children.sent())
        self.children.answer(OK)
        self.assertEqual(self.received(), OK)

    def test_long_extension(self):
        """
        One chunk-size line with a long extension is refused as soon as it passes the cap.
        """
        self.send(CHUNKED_POST)
        self.send(b"1;" + b"e" * 5000)
        self.assertAnswer(b"400 Bad Request", FRAMING_REFUSAL, closed=True)

    def test_extensions_beside_data(self):
        """
        Extensions cannot hide beside a trickle of data (each chunk is allowed its data
        twice and 16 bytes): a body of one-byte chunks, each with a 200-byte extension, is
        refused after a few dozen chunks, whatever the body limit.
        """
        self.send(CHUNKED_POST)
        sent = 0
        while not self.channel.transport.disconnecting and sent < 1000:
            self.send(b"1;" + b"e" * 200 + b"\r\nx\r\n")
            sent += 1
        self.assertLess(sent, 30)
        self.assertAnswer(b"400 Bad Request", FRAMING_REFUSAL, closed=True)

    def test_small_chunks_pass(self):
        """
        Plain chunks, however small and however many arrive at once, are relayed.
        """
        self.send(CHUNKED_POST + b"1\r\nx\r\n" * 5000 + b"0\r\n\r\n")
        self.assertFalse(self.channel.transport.disconnecting)
        self.assertEqual(self.children.sent().count(b"1\r\nx\r\n"), 5000)
        self.assertTrue(self.children.sent().endswith(b"0\r\n\r\n"))


class LingeringCloseTests(ProxyCase):
    """
    A connection whose client may still be sending when funcplane answers and closes
    (the request was refused, or answered before its body was read) closes in stages: the
    answer, then the write side, then what the client still sends is read and dropped for
    a bounded time and size, and only then does the connection close.
    """

    limits = ProxyLimits(body_bytes=10, linger_seconds=5, linger_bytes=100)

    def setUp(self):
        super().setUp()
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.channel = self.connect(HalfClosingTransport)

    def assertLingering(self):
        transport = self.channel.transport
        self.assertTrue(transport.write_closed)
        self.assertFalse(transport.disconnecting)

    def test_declared_body_too_large(self):
        """
        A 413 from a declared length: the client can read it and then the end; whatever
        it sends next (its body, a request hidden after it) is read and dropped, never
        parsed and never relayed; past the size bound the connection is closed.
        """
        self.send(b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nContent-Length: 11\r\n\r\n")
        self.assertAnswer(b"413 Request Entity Too Large", "the request body is over 10 bytes", closed=True)
        self.assertLingering()
        self.send(b"abcdefghijk" + get(path=b"/smuggled") + b"x" * 20)
        self.assertLingering()
        self.assertEqual(self.received(), b"")
        self.assertEqual((self.children.connections, self.supervisor.asked), ([], []))
        self.send(b"x" * 40)
        self.assertTrue(self.channel.transport.disconnected)

    def test_rest_of_the_read_ignored(self):
        """
        Once a refusal has begun lingering, nothing the parser still finds in the same
        read acts on the connection: neither the end of the refused request (which says
        Connection: close) nor a request after it.
        """
        self.send(
            b"POST http://elsewhere/ HTTP/1.1\r\nHost: hello.func.local\r\nConnection: close\r\n"
            b"Content-Length: 3\r\n\r\nabc" + get(path=b"/smuggled")
        )
        self.assertAnswer(
            b"400 Bad Request", "the request target must be a path, such as /index.html", closed=True
        )
        self.assertLingering()
        self.assertEqual(self.supervisor.asked, [])

    def test_time_bound(self):
        """
        A client that neither closes nor stops sending has the connection closed once the
        linger time has passed.
        """
        self.send(CHUNKED_POST + b"b\r\nabcdefghijk\r\n")
        self.assertTrue(self.received().startswith(b"HTTP/1.1 413 "))
        self.assertLingering()
        self.clock.advance(4.9)
        self.send(b"1\r\nx\r\n")
        self.assertLingering()
        self.clock.advance(0.1)
        self.assertTrue(self.channel.transport.disconnected)

    def test_client_closes(self):
        """
        When the client closes, lingering ends with no timer left behind, and the
        connection no longer counts against its address.
        """
        self.send(b"GET / HTTP/1.1\r\nHost: hello.func.local\r\nX-Bad\r\n\r\n")
        self.assertTrue(self.received().startswith(b"HTTP/1.1 400 "))
        self.assertLingering()
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])
        self.assertEqual(self.factory.connections.held, {})

    def test_no_continue_for_a_refusal(self):
        """
        A client that asks to continue, with a body over the limit, gets the 413 and never
        a 100 Continue.
        """
        self.send(
            b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nExpect: 100-continue\r\n"
            b"Content-Length: 11\r\n\r\n"
        )
        self.assertAnswer(b"413 Request Entity Too Large", "the request body is over 10 bytes", closed=True)
        self.send(b"abcdefghijk")
        self.assertEqual(self.received(), b"")

    def test_answered_before_the_body(self):
        """
        A function that answers before the body is in: its response, then lingering.
        """
        self.send(b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nContent-Length: 8\r\n\r\nabc")
        self.children.answer(OK)
        self.assertEqual(
            self.received(), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        )
        self.assertLingering()

    def test_read_whole_not_lingered(self):
        """
        A connection whose client sent its whole request closes at once after the answer.
        """
        self.send(get(extra=b"Connection: close\r\n"))
        self.children.answer(OK)
        self.assertTrue(self.channel.transport.disconnecting)
        self.assertFalse(self.channel.transport.write_closed)

    def test_reading_resumes(self):
        """
        Reading paused for backpressure resumes while lingering: what the client sends
        must be read to be dropped.
        """
        self.supervisor.held = Deferred()
        self.channel._limits = ProxyLimits(body_bytes=10, buffered=4)
        self.send(CHUNKED_POST + b"5\r\nabcde\r\n")
        self.assertEqual(self.channel.transport.producerState, "paused")
        self.send(b"6\r\nfghijk\r\n")
        self.assertTrue(self.received().startswith(b"HTTP/1.1 413 "))
        self.assertLingering()
        self.assertEqual(self.channel.transport.producerState, "producing")
        self.assertIsNone(self.channel.transport.producer)


class QuietFactoryTests(ProxyCase):
    """
    The listener's factory says nothing in Python reprs when it starts and stops.
    """

    def test_no_factory_lines(self):
        """
        Starting and stopping the factory (as listening does) logs nothing.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.factory.doStart()
        self.factory.doStop()
        self.assertEqual(events, [])
