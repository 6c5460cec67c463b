"""
The connections to the children and their pool.
"""

from twisted.internet.defer import succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from funcplane.interfaces import IUpstreamPool
from zope.interface import implementer

from funcplane.edge.upstream import (
    CHUNKED,
    LENGTH,
    NO_BODY,
    UNTIL_CLOSE,
    UPGRADE,
    IUpstreamHandler,
    UpstreamPool,
)


@implementer(IUpstreamHandler)
class Handler:
    """
    Records what a connection reports, and hands the connection back as told.
    """

    def __init__(self, reusable=True):
        self.events = []
        self.reusable = reusable

    def response_head(self, status, reason, headers, framing):
        self.events.append(("head", status, reason, headers, framing))

    def response_body(self, data):
        self.events.append(("body", data))

    def response_done(self, connection):
        self.events.append(("done",))
        connection.finished(self.reusable)

    def upstream_failed(self, reason, stale):
        self.events.append(("failed", reason.type, stale))


class PoolTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.made = []
        self.pool = UpstreamPool(self.clock, connect=self.connect, idle_seconds=10, per_socket=2)

    def connect(self, socket_path, protocol):
        protocol.makeConnection(StringTransport())
        self.made.append(protocol)
        return succeed(protocol)

    def acquire(self, path="/run/a.sock"):
        return self.successResultOf(self.pool.acquire(path))

    def exchange(self, connection, response, head_request=False, reusable=True):
        handler = Handler(reusable)
        connection.send(handler, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", head_request)
        connection.dataReceived(response)
        return handler.events

    def test_interface(self):
        """
        The pool provides IUpstreamPool.
        """
        self.assertTrue(verifyObject(IUpstreamPool, self.pool))

    def test_framings(self):
        """
        A response's framing (a length, chunked, no body) is told with its head, and each
        complete response leaves the connection for the next: one connection serves them all.
        """
        cases = [
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", LENGTH),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", CHUNKED),
            (b"HTTP/1.1 204 No Content\r\n\r\n", NO_BODY),
        ]
        for response, framing in cases:
            connection = self.acquire()
            events = self.exchange(connection, response)
            self.assertEqual(events[0][4], framing)
            self.assertEqual(events[-1], ("done",))
        self.assertEqual(len(self.made), 1)

    def test_body_pieces(self):
        """
        A chunked body reaches the handler piece by piece, de-chunked, after the head with its
        end-to-end headers, then its end.
        """
        events = self.exchange(
            self.acquire(),
            b"HTTP/1.1 200 Fine\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
        )
        self.assertEqual(
            events,
            [
                ("head", 200, b"Fine", [(b"X-A", b"1")], CHUNKED),
                ("body", b"ab"),
                ("body", b"c"),
                ("done",),
            ],
        )

    def test_hop_by_hop_left_out(self):
        """
        The handler gets the child's end-to-end headers in its order: the hop-by-hop ones
        (in any case) and those its Connection header names are left out, while the framing
        is still read from them.
        """
        events = self.exchange(
            self.acquire(),
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nconnection: keep-alive, X-Secret\r\nKEEP-ALIVE: 5\r\n"
            b"X-Secret: s\r\nContent-Length: 2\r\nUpgrade: h2c\r\nX-B: 2\r\n\r\nok",
        )
        self.assertEqual(
            events[0],
            ("head", 200, b"OK", [(b"X-A", b"1"), (b"Content-Length", b"2"), (b"X-B", b"2")], LENGTH),
        )
        self.assertEqual(events[1:], [("body", b"ok"), ("done",)])
        connection = self.acquire()
        handler = Handler()
        connection.send(handler, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", upgrade=True)
        connection.dataReceived(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade, X-Hop\r\nX-Hop: h\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Accept: s\r\n\r\n"
        )
        self.assertEqual(
            handler.events,
            [("head", 101, b"Switching Protocols", [(b"Sec-WebSocket-Accept", b"s")], UPGRADE)],
        )

    def test_head_response_complete_at_headers(self):
        """
        The response to a HEAD ends with its headers, whatever its Content-Length says, and
        the connection is idle again.
        """
        connection = self.acquire()
        events = self.exchange(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", head_request=True)
        self.assertEqual([e[0] for e in events], ["head", "done"])
        self.assertEqual(self.pool.idle_count(), 1)

    def test_until_close(self):
        """
        A response with neither a length nor chunks ends when the child closes, and that
        connection is not kept.
        """
        connection = self.acquire()
        events = self.exchange(connection, b"HTTP/1.1 200 OK\r\n\r\nsome")
        connection.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(events[0][4], UNTIL_CLOSE)
        self.assertEqual(events[1:], [("body", b"some"), ("done",)])
        self.assertEqual(self.pool.idle_count(), 0)

    def test_failure_stale_only_when_reused_and_unanswered(self):
        """
        A broken connection is stale (worth a retry) only when it came from the pool and
        nothing of the response had arrived.
        """
        first = self.acquire()
        events = self.exchange(first, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        first.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(events[-1], ("failed", ConnectionLost, False))
        second = self.acquire()
        self.exchange(second, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        reused = self.acquire()
        self.assertIs(reused, second)
        events = self.exchange(reused, b"")
        reused.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(events, [("failed", ConnectionLost, True)])

    def test_take_idle(self):
        """
        An idle connection is taken at once (and its idle timer stopped); with none idle,
        nothing is connected and L{None} comes back.
        """
        self.assertIsNone(self.pool.take_idle("/run/a.sock"))
        connection = self.acquire()
        self.exchange(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertIs(self.pool.take_idle("/run/a.sock"), connection)
        self.assertIsNone(self.pool.take_idle("/run/a.sock"))
        self.clock.advance(60)
        self.assertFalse(connection.transport.disconnecting)

    def test_not_reusable(self):
        """
        A connection given back as not reusable is closed, not kept idle.
        """
        connection = self.acquire()
        self.exchange(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", reusable=False)
        self.assertTrue(connection.transport.disconnecting)
        self.assertEqual(self.pool.idle_count(), 0)

    def test_garbage_closes(self):
        """
        A malformed response, or bytes nobody asked for, end the connection.
        """
        connection = self.acquire()
        self.exchange(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        connection.dataReceived(b"HTTP/1.1 200 OK\r\n")
        self.assertTrue(connection.transport.disconnecting)
        other = self.acquire("/run/b.sock")
        self.exchange(other, b"HTTP/1.1 abc\r\n\r\n")
        self.assertTrue(other.transport.disconnected)

    def test_idle_limits(self):
        """
        At most C{per_socket} idle connections are kept per socket, each for ten seconds.
        """
        connections = [self.acquire() for _ in range(3)]
        for connection in connections:
            self.exchange(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(self.pool.idle_count("/run/a.sock"), 2)
        self.assertTrue(connections[2].transport.disconnecting)
        self.clock.advance(10)
        self.assertTrue(all(c.transport.disconnecting for c in connections))
        self.assertEqual(self.pool.idle_count(), 0)
        for connection in connections:
            connection.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(self.pool.close())

    def test_lost_while_idle_forgotten(self):
        """
        An idle connection the child closes is forgotten with its expiry, and the next
        request gets a new one.
        """
        connection = self.acquire()
        self.exchange(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        connection.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.pool.idle_count(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIsNot(self.acquire(), connection)

    def test_close_waits_for_idle_connections(self):
        """
        Closing the pool closes its idle connections and fires only once they are closed.
        """
        connection = self.acquire()
        self.exchange(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        closed = self.pool.close()
        self.assertTrue(connection.transport.disconnecting)
        self.assertNoResult(closed)
        connection.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(closed)


class ResponseLimitTests(SynchronousTestCase):
    """
    What a child sends that httptools holds or skips without a word (a header value not
    yet ended, a chunked body's framing and trailers) is counted from the raw bytes as
    they arrive, so a child cannot make funcplane hold or parse it without end.
    """

    def setUp(self):
        self.clock = Clock()
        self.made = []
        self.pool = UpstreamPool(self.clock, connect=self.connect, response_head_bytes=100)
        self.connection = self.successResultOf(self.pool.acquire("/run/a.sock"))
        self.handler = Handler()
        self.connection.send(self.handler, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")

    def connect(self, socket_path, protocol):
        protocol.makeConnection(StringTransport())
        self.made.append(protocol)
        return succeed(protocol)

    def test_header_value_never_ends(self):
        """
        A header value that never ends is cut off once the head passes the limit, though
        no header was ever complete.
        """
        self.connection.dataReceived(b"HTTP/1.1 200 OK\r\nX-Big: ")
        self.connection.dataReceived(b"a" * 60)
        self.assertFalse(self.connection.transport.disconnected)
        self.connection.dataReceived(b"a" * 60)
        self.assertTrue(self.connection.transport.disconnected)
        self.assertEqual(self.handler.events, [])

    def test_head_within_limit(self):
        """
        A head under the limit, arriving in pieces, is read as ever.
        """
        for piece in [b"HTTP/1.1 200 OK\r\nX-A: ", b"1\r\nContent-Length: 2\r\n\r\n", b"ok"]:
            self.connection.dataReceived(piece)
        self.assertEqual(self.handler.events[-2:], [("body", b"ok"), ("done",)])

    def test_trailer_never_ends(self):
        """
        A chunked response whose trailer never ends is cut off past the framing cap.
        """
        self.connection.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: ")
        for _ in range(4):
            self.connection.dataReceived(b"t" * 1000)
        self.assertFalse(self.connection.transport.disconnected)
        self.connection.dataReceived(b"t" * 1000)
        self.assertTrue(self.connection.transport.disconnected)
        self.connection.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(self.handler.events[-1], ("failed", ConnectionLost, False))

    def test_small_chunks_pass(self):
        """
        A stream of one-byte chunks, many to a read, is relayed whole.
        """
        self.connection.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.connection.dataReceived(b"1\r\nx\r\n" * 5000 + b"0\r\n\r\n")
        self.assertEqual(len([e for e in self.handler.events if e[0] == "body"]), 5000)
        self.assertEqual(self.handler.events[-1], ("done",))
