"""
WebSockets through the proxy: the upgrade relayed, bytes passed as they are both ways once
the child switches protocols, and nothing of the client's reaching the child before that;
how long a WebSocket may stay, and how many one version and one client may hold.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from funcplane.edge.exchange import ANSWERED, CLIENT_GONE, RELAYED, SENT, TUNNELLING
from funcplane.edge.limits import ProxyLimits
from funcplane.edge.tunnel import Tunnel, Tunnels, switched
from tests.edge.harness import OK, SWITCHED, WS_REQUEST, HalfClosingTransport, ProxyCase, get


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
        self.clock.advance(200)
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
        self.clock = Clock()
        self.expired = []
        self.tunnel = Tunnel(self.channel, self.clock, ProxyLimits(), self.expired.append)

    def test_held_until_open(self):
        """
        Bytes from the client are held (and counted as held) until the tunnel opens; then
        the client gets the child's 101 head, and the child what the client sent meanwhile,
        in order, and whatever follows.
        """
        self.tunnel.from_client(b"ab")
        self.tunnel.from_client(b"cd")
        self.assertEqual(self.channel.held, 4)
        self.tunnel.open(self.child, b"Switching Protocols", [(b"X-A", b"1")])
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
        The 101 the client gets keeps the child's end-to-end headers (the upstream
        connection has left out the hop-by-hop ones) and says the upgrade once.
        """
        head = switched(b"Switching Protocols", [(b"Sec-WebSocket-Accept", b"s")])
        self.assertEqual(
            head,
            b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s\r\n"
            b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )


class TunnelTimeTests(ProxyCase):
    """
    An open WebSocket is closed once nothing passed through it, either way, for the idle
    limit, or once it has been open for its lifetime; both ends' connections close and the
    version's lease is let go.
    """

    limits = ProxyLimits(tunnel_idle_seconds=60, tunnel_lifetime_seconds=500)

    def open(self):
        self.send(WS_REQUEST)
        self.children.answer(SWITCHED)
        self.received()
        return self.exchange(), self.children.connections[-1][1]

    def capture(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    def assertClosed(self, exchange, upstream):
        self.assertEqual(exchange.state, RELAYED)
        self.assertTrue(self.channel.transport.disconnecting)
        self.assertTrue(upstream.transport.disconnecting)
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})
        self.assertEqual(self.factory.tunnels.by_version.held, {})

    def test_idle(self):
        """
        Traffic either way keeps a WebSocket open; a minute of silence closes it, and the
        log says which function's and why, in words.
        """
        events = self.capture()
        exchange, upstream = self.open()
        for _ in range(3):
            self.clock.advance(50)
            self.send(b"\x81\x01a")
            self.clock.advance(50)
            self.children.answer(b"\x81\x01b")
        self.assertEqual(exchange.state, TUNNELLING)
        self.clock.advance(59)
        self.assertEqual(exchange.state, TUNNELLING)
        self.clock.advance(1)
        self.assertClosed(exchange, upstream)
        [event] = [e for e in events if e.get("log_format", "").startswith("closed a WebSocket")]
        self.assertEqual((event["host"], event["why"]), ("hello.func.local", "nothing passed for 60 s"))

    def test_lifetime(self):
        """
        However busy, a WebSocket is closed once it has been open for its lifetime.
        """
        events = self.capture()
        exchange, upstream = self.open()
        for _ in range(49):
            self.clock.advance(10)
            self.send(b"\x81\x01a")
        self.assertEqual(exchange.state, TUNNELLING)
        self.clock.advance(10)
        self.assertClosed(exchange, upstream)
        [event] = [e for e in events if e.get("log_format", "").startswith("closed a WebSocket")]
        self.assertIn("open for 500 s", event["why"])

    def test_no_timer_left(self):
        """
        A WebSocket that closes leaves no timer of its own behind.
        """
        exchange, upstream = self.open()
        upstream.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(exchange.state, RELAYED)
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])


class TunnelCapTests(ProxyCase):
    """
    One version, and one client address, may hold only so many WebSockets: the request
    for one more is answered 503 with the reason, and nothing reaches the child.
    """

    limits = ProxyLimits(tunnels_per_version=2, tunnels_per_client=1)

    def client(self, host):
        channel = self.factory.buildProtocol(None)
        channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", host, 1)))
        return channel

    def test_per_client(self):
        """
        A second WebSocket from one address is refused while the first is open (or still
        being asked for); once it closes, the address may open another.
        """
        self.send(WS_REQUEST)
        second = self.connect()
        self.send(WS_REQUEST, second)
        answer = self.received(second)
        self.assertTrue(answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer)
        self.assertIn(b"your address has 1 WebSockets open, as many as it may", answer)
        self.assertIn(b"Connection: close\r\n", answer)
        self.assertEqual(len(self.children.connections), 1)
        self.assertEqual(second._queue, type(second._queue)())
        self.children.answer(SWITCHED)
        self.channel.connectionLost(Failure(ConnectionDone()))
        third = self.connect()
        self.send(WS_REQUEST, third)
        self.assertEqual(len(self.children.connections), 2)

    def test_per_version(self):
        """
        A version holds at most its cap of WebSockets, whoever asks; another version is
        not affected; a WebSocket the child refused no longer counts.
        """
        first, second, third = (self.client(f"192.0.2.{i}") for i in range(1, 4))
        self.send(WS_REQUEST, first)
        self.send(WS_REQUEST, second)
        self.send(WS_REQUEST, third)
        answer = self.received(third)
        self.assertIn(b"this version has 2 WebSockets open, as many as it may", answer)
        other = self.client("192.0.2.9")
        self.send(WS_REQUEST.replace(b"hello.func.local", b"v1.hello.func.local"), other)
        self.assertEqual([path for path, _ in self.children.connections],
                         ["/run/id2.sock", "/run/id2.sock", "/run/id1.sock"])
        self.children.answer(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n", index=0)
        self.assertEqual(self.factory.tunnels.by_version.held, {"id2": 1, "id1": 1})
        fourth = self.client("192.0.2.4")
        self.send(WS_REQUEST, fourth)
        self.assertEqual(fourth._queue[0].state, SENT)
        self.assertEqual(self.factory.tunnels.by_version.held, {"id2": 2, "id1": 1})

    def test_refused_lingers(self):
        """
        The connection of a refused WebSocket request closes in stages, as after any
        refusal: the client may already be sending frames.
        """
        self.send(WS_REQUEST)
        second = self.connect(HalfClosingTransport)
        second.dataReceived(WS_REQUEST + b"\x81\x05early")
        self.assertTrue(self.received(second).startswith(b"HTTP/1.1 503 "))
        self.assertTrue(second.transport.write_closed)
        self.assertFalse(second.transport.disconnecting)

    def test_refused_holds_nothing(self):
        """
        The refused request ends ANSWERED, without a lease or a count held.
        """
        self.send(WS_REQUEST)
        second = self.connect()
        exchanges = []
        self.patch(second, "_enqueue", lambda e, enqueue=second._enqueue: (exchanges.append(e), enqueue(e)))
        second.dataReceived(WS_REQUEST)
        self.assertEqual(exchanges[0].state, ANSWERED)
        self.assertEqual(self.supervisor.in_flight, {"id2": 1})
        self.assertEqual(self.factory.tunnels.by_client.held, {b"203.0.113.9": 1})


class TunnelsTests(SynchronousTestCase):
    """
    L{Tunnels} counts WebSockets by version and by client against their caps.
    """

    def test_counts(self):
        """
        Admitted WebSockets are counted until released; a refused one is not counted; a
        cap of 0 is no cap.
        """
        tunnels = Tunnels(per_version=1, per_client=0)
        self.assertIsNone(tunnels.admit("v", b"a"))
        self.assertIn("this version", tunnels.admit("v", b"b"))
        self.assertEqual((tunnels.by_version.held, tunnels.by_client.held), ({"v": 1}, {b"a": 1}))
        for _ in range(5):
            self.assertIsNone(tunnels.admit("w", b"a"))
            tunnels.release("w", b"a")
        tunnels.release("v", b"a")
        self.assertEqual((tunnels.by_version.held, tunnels.by_client.held), ({}, {}))
