"""
WebSockets through the proxy: the upgrade relayed, bytes passed as they are both ways once
the child switches protocols, and nothing of the client's reaching the child before that.
"""

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from funcplane.edge.exchange import CLIENT_GONE, RELAYED, SENT, TUNNELLING
from funcplane.edge.tunnel import Tunnel, switched
from tests.edge.harness import OK, SWITCHED, WS_REQUEST, ProxyCase, get


class WebSocketTests(ProxyCase):
    def test_relayed(self):
        """
        A WebSocket request reaches the child with its upgrade headers; once the child
        switches protocols, bytes pass as they are both ways, the request timeout no
        longer applies, and the version stays leased until the socket closes.
        """
        self.send(WS_REQUEST + b"\x81\x05early")
        sent = self.children.sent()
        self.assertIn(b"Connection: Upgrade\r\nUpgrade: websocket\r\n", sent)
        self.assertIn(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", sent)
        self.assertTrue(sent.endswith(b"\r\n\r\n"), "client bytes reached the child before the 101")
        self.children.answer(SWITCHED + b"\x81\x05hello")
        self.assertEqual(
            self.received(),
            b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
        )
        self.assertTrue(self.children.sent().endswith(b"\r\n\r\n\x81\x05early"))
        self.send(b"GET / HTTP/1.1\r\nHost: evil\r\n\r\n")
        self.assertTrue(self.children.sent().endswith(b"\x81\x05earlyGET / HTTP/1.1\r\nHost: evil\r\n\r\n"))
        self.clock.advance(300)
        self.children.answer(b"\x81\x03bye")
        self.assertEqual(self.received(), b"\x81\x03bye")
        self.assertEqual(self.supervisor.in_flight, {"id2": 1})
        self.children.connections[0][1].connectionLost(Failure(ConnectionDone()))
        self.assertTrue(self.channel.transport.disconnecting)
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})

    def test_client_closes(self):
        """
        When the client goes, the child's connection is closed and the lease released.
        """
        self.send(WS_REQUEST)
        self.children.answer(SWITCHED)
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(self.children.connections[0][1].transport.disconnecting)
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})

    def test_refused(self):
        """
        A child that answers the upgrade with an ordinary response: the client gets it and
        the connection closes; what the client sent after its request never reaches the
        child (it would be read there as a second request).
        """
        self.send(WS_REQUEST + b"GET /smuggled HTTP/1.1\r\nHost: hello.func.local\r\n\r\n")
        self.children.answer(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\nno")
        self.assertEqual(
            self.received(), b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
        )
        self.assertNotIn(b"smuggled", self.children.sent())
        self.assertTrue(self.channel.transport.disconnecting)
        self.assertEqual(self.channel._buffered, 0)

    def test_timeout_before_switch(self):
        """
        Until the child switches protocols the request timeout applies as to any request.
        """
        self.send(WS_REQUEST)
        self.clock.advance(30)
        self.assertTrue(self.received().startswith(b"HTTP/1.1 504 Gateway Timeout\r\n"))
        self.assertTrue(self.channel.transport.disconnecting)

    def test_other_upgrades_not_relayed(self):
        """
        An upgrade to anything but WebSocket (h2c) is relayed as an ordinary request
        without its Upgrade header, and the connection closes after the response.
        """
        self.send(get(extra=b"Connection: Upgrade\r\nUpgrade: h2c\r\n") + b"PRI * HTTP/2.0\r\n\r\n")
        self.assertNotIn(b"pgrade", self.children.sent())
        self.children.answer(OK)
        self.assertEqual(self.received(), OK)
        self.assertTrue(self.channel.transport.disconnecting)

    def test_unasked_switch(self):
        """
        A child that switches protocols on an ordinary request is not believed: 502.
        """
        self.send(get())
        self.children.answer(SWITCHED)
        upstream = self.children.connections[0][1]
        self.assertTrue(upstream.transport.disconnecting)
        upstream.connectionLost(Failure(ConnectionLost()))
        self.assertTrue(self.received().startswith(b"HTTP/1.1 502 Bad Gateway\r\n"))

    def test_states(self):
        """
        A WebSocket's exchange is C{SENT} until the child switches, C{TUNNELLING} while
        the socket is open, and ends C{RELAYED} when the child closes it, or
        C{CLIENT_GONE} when the client does.
        """
        self.send(WS_REQUEST)
        exchange = self.exchange()
        self.assertEqual(exchange.state, SENT)
        self.children.answer(SWITCHED)
        self.assertEqual(exchange.state, TUNNELLING)
        self.children.connections[0][1].connectionLost(Failure(ConnectionDone()))
        self.assertEqual(exchange.state, RELAYED)
        self.channel = self.connect()
        self.send(WS_REQUEST)
        exchange = self.exchange()
        self.children.answer(SWITCHED)
        self.channel.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(exchange.state, CLIENT_GONE)
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})


class Channel:
    """
    The client's end of a L{Tunnel}: what is written to the client, and the bytes held.
    """

    def __init__(self):
        self.written = b""
        self.held = 0

    def write(self, data):
        self.written += data

    def buffered(self, change):
        self.held += change


class TunnelTests(SynchronousTestCase):
    """
    A L{Tunnel} holds what the client sends until the child switches protocols, then
    relays bytes as they are both ways until it is closed.
    """

    def setUp(self):
        self.channel = Channel()
        self.child = StringTransport()
        self.tunnel = Tunnel(self.channel)

    def test_held_until_open(self):
        """
        Bytes from the client are held (and counted as held) until the tunnel opens; then
        the client gets the child's 101 head, and the child what the client sent meanwhile,
        in order, and whatever follows.
        """
        self.tunnel.from_client(b"ab")
        self.tunnel.from_client(b"cd")
        self.assertEqual(self.channel.held, 4)
        self.tunnel.open(self.child, b"Switching Protocols", [(b"X-A", b"1"), (b"Upgrade", b"websocket")])
        self.assertEqual(
            self.channel.written,
            b"HTTP/1.1 101 Switching Protocols\r\nX-A: 1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        self.assertEqual((self.child.value(), self.channel.held), (b"abcd", 0))
        self.tunnel.from_client(b"ef")
        self.tunnel.from_child(b"gh")
        self.assertEqual(self.child.value(), b"abcdef")
        self.assertTrue(self.channel.written.endswith(b"\r\n\r\ngh"))

    def test_closed_before_open(self):
        """
        A tunnel closed before the child switched lets go of what it held, and then drops
        whatever either side sends.
        """
        self.tunnel.from_client(b"ab")
        self.tunnel.close()
        self.assertEqual(self.channel.held, 0)
        self.tunnel.from_client(b"cd")
        self.tunnel.from_child(b"ef")
        self.assertEqual((self.channel.held, self.channel.written), (0, b""))

    def test_closed_after_open(self):
        """
        Once closed, an open tunnel relays nothing more either way.
        """
        self.tunnel.open(self.child, b"Switching Protocols", [])
        self.channel.written = b""
        self.tunnel.close()
        self.tunnel.from_client(b"ab")
        self.tunnel.from_child(b"cd")
        self.assertEqual((self.child.value(), self.channel.written), (b"", b""))

    def test_switched_head(self):
        """
        The 101 the client gets keeps the child's end-to-end headers, drops its hop-by-hop
        ones (and those its Connection header names), and says the upgrade once.
        """
        head = switched(
            b"Switching Protocols",
            [(b"Connection", b"Upgrade, X-Hop"), (b"X-Hop", b"h"), (b"Upgrade", b"websocket"),
             (b"Sec-WebSocket-Accept", b"s")],
        )
        self.assertEqual(
            head,
            b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s\r\n"
            b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
