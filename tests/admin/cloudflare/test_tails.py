"""
Tests for L{funcplane.admin.cloudflare.tails}: making and ending tails through the API,
and a tail's WebSocket end to end on a connection that came through the proxy's channel.
"""

import json

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from funcplane import errors
from funcplane.admin.cloudflare.tails import SILENT_SECONDS
from funcplane.admin.site import AdminLimits, admin_site
from funcplane.admin.websocket import CLOSE, PING, PONG, TEXT, FrameParser
from funcplane.edge.listener import ProxyFactory
from funcplane.interfaces import ITailSocket
from funcplane.observe.tails import SETTLE_SECONDS
from funcplane.observe.trace import Traced
from tests.admin.cloudflare.harness import BASE, SCRIPT, CloudflareCase, vid
from tests.admin.test_websocket import client_frame
from tests.fakes import AUTH

UPGRADE = {
    b"Upgrade": [b"websocket"],
    b"Connection": [b"Upgrade"],
    b"Sec-WebSocket-Version": [b"13"],
    b"Sec-WebSocket-Key": [b"dGhlIHNhbXBsZSBub25jZQ=="],
    b"Sec-WebSocket-Protocol": [b"trace-v1"],
}
TAIL_SOCKET = "http://127.0.0.1:8081/client/v4/tails/"


class TailTests(CloudflareCase):
    """
    C{.../tails}: a tail made, refused, and ended.
    """

    def test_create(self):
        """
        POST .../tails (JSON sent as text/plain, as wrangler does) makes a tail and answers
        with its WebSocket address on the host the request named, and its expiry.
        """
        self.deployed()
        headers = {b"Content-Type": [b"text/plain;charset=UTF-8"], **AUTH}
        result = self.ok("POST", SCRIPT + "/tails", {"filters": [{"method": ["POST"]}]}, headers)
        tail_id = "0" * 31 + "1"
        self.assertEqual(
            result,
            {
                "id": tail_id,
                "url": "ws://127.0.0.1:8081/client/v4/tails/" + tail_id,
                "expires_at": "2027-01-15T14:00:00.000Z",
            },
        )
        tail = self.tails.waiting(tail_id)
        self.assertEqual((tail.function, tail.filter.methods), ("hello", frozenset(["POST"])))

    def test_create_refused(self):
        """
        An unknown script is 10007, a bad filter 10021, a tail too many 429; none of them
        leaves a tail behind but the ones allowed.
        """
        self.assertCfError(self.call("POST", SCRIPT + "/tails", {}), 404, 10007)
        self.deployed()
        self.assertCfError(
            self.call("POST", SCRIPT + "/tails", {"filters": [{"colour": 1}]}), 400, 10021, "unknown filter"
        )
        self.assertEqual(self.tails.count(), 0)
        for _ in range(10):
            self.ok("POST", SCRIPT + "/tails", b"")
        self.assertCfError(self.call("POST", SCRIPT + "/tails", {}), 429, 10429, "end one first")
        self.assertEqual(self.tails.count(), 10)

    def test_delete(self):
        """
        DELETE ends the tail, and answers success again for a tail already ended, which
        is what wrangler asks after the server closed its socket.
        """
        self.deployed()
        tail_id = self.ok("POST", SCRIPT + "/tails", {})["id"]
        self.assertIsNone(self.ok("DELETE", SCRIPT + f"/tails/{tail_id}"))
        self.assertRaises(errors.NoSuchTail, self.tails.waiting, tail_id)
        self.assertIsNone(self.ok("DELETE", SCRIPT + f"/tails/{tail_id}"))

    def test_socket_refusals(self):
        """
        The WebSocket address needs no token but a WebSocket handshake (400 otherwise) and
        a waiting tail's id (404 otherwise).
        """
        self.deployed()
        tail_id = self.ok("POST", SCRIPT + "/tails", {})["id"]
        self.assertCfError(self.call("GET", TAIL_SOCKET + tail_id, headers={}), 400, 10021, "wrangler tail")
        self.assertCfError(self.call("GET", TAIL_SOCKET + "f" * 32, headers=UPGRADE), 404, 10007, "make a new one")
        self.assertCfError(self.call("GET", TAIL_SOCKET + "ABC", headers=UPGRADE), 404, 10007, "not a tail id")
        self.assertIs(self.tails.waiting(tail_id).socket, None)

    def test_function_deleted(self):
        """
        Deleting the script ends its tails.
        """
        self.deployed()
        tail_id = self.ok("POST", SCRIPT + "/tails", {})["id"]
        self.ok("DELETE", BASE + "/workers/services/hello")
        self.assertRaises(errors.NoSuchTail, self.tails.waiting, tail_id)


class TailSocketTests(CloudflareCase):
    """
    A tail's WebSocket end to end, on a connection that reaches the admin API through the
    proxy's channel, as on funcplane's port.
    """

    def setUp(self):
        super().setUp()
        self.deployed()
        self.tail_id = self.ok("POST", SCRIPT + "/tails", {"filters": []})["id"]
        site = admin_site(self.routes, self.api.resource(), self.checker, self.clock, AdminLimits(body_bytes=10_000))
        self.proxy = ProxyFactory(self.routes, None, None, site, self.clock, tails=self.tails)
        self.channel = self.proxy.buildProtocol(None)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "198.51.100.7", 40000))
        self.channel.makeConnection(self.transport)

    def open(self, protocol=b"trace-v1"):
        self.channel.dataReceived(
            b"GET /client/v4/tails/%s HTTP/1.1\r\nHost: 127.0.0.1:8081\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: %s\r\n"
            b"User-Agent: wrangler/4.86.0\r\n\r\n" % (self.tail_id.encode(), protocol)
        )
        head, _, rest = self.transport.value().partition(b"\r\n\r\n")
        self.transport.clear()
        return head, rest

    def frames(self):
        data = self.transport.value()
        self.transport.clear()
        return FrameParser(1 << 20).feed(data)

    def test_stream(self):
        """
        The handshake answers 101 with the accept key and trace-v1; wrangler's unmasked
        first frame is accepted, its ping answered, and a request to the function arrives
        as an event frame.
        """
        head, rest = self.open()
        self.assertEqual(
            head.split(b"\r\n"),
            [
                b"HTTP/1.1 101 Switching Protocols",
                b"Upgrade: websocket",
                b"Connection: Upgrade",
                b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                b"Sec-WebSocket-Protocol: trace-v1",
            ],
        )
        self.assertEqual(rest, b"")
        self.assertTrue(self.tails.active)
        self.channel.dataReceived(client_frame(TEXT, b'{"debug":false}', mask=False))
        self.channel.dataReceived(client_frame(PING, b"wrangler tail ping"))
        self.assertEqual(self.frames(), [(PONG, True, b"wrangler tail ping")])
        self.tails.request_done(
            Traced("hello", vid(1), b"hello.func.local", b"GET", b"/", (), "203.0.113.1", False, self.clock.seconds(), 200, "ok")
        )
        self.clock.advance(SETTLE_SECONDS)
        [(opcode, _, payload)] = self.frames()
        event = json.loads(payload)
        self.assertEqual(
            (opcode, event["scriptName"], event["event"]["request"]["url"], event["outcome"]),
            (TEXT, "hello", "http://hello.func.local/", "ok"),
        )

    def test_closed_by_client(self):
        """
        When the client goes, the tail ends and the proxy's count of its connections
        drops back to none.
        """
        self.open()
        self.assertEqual(self.proxy.connections.held, {"198.51.100.7": 1})
        self.channel.dataReceived(client_frame(CLOSE, b"\x03\xe8"))
        self.assertEqual(self.frames(), [(CLOSE, True, b"\x03\xe8")])
        self.assertTrue(self.transport.disconnecting)
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertFalse(self.tails.active)
        self.assertEqual(self.tails.count(), 0)
        self.assertEqual(self.proxy.connections.held, {})

    def test_closed_by_server(self):
        """
        Deleting the tail through the API sends a close frame to its socket.
        """
        self.open()
        self.ok("DELETE", SCRIPT + f"/tails/{self.tail_id}")
        [(opcode, _, payload)] = self.frames()
        self.assertEqual((opcode, payload), (CLOSE, b"\x03\xe8tail deleted"))
        self.assertTrue(self.transport.disconnecting)

    def test_silent_client(self):
        """
        A client that sends nothing (not even wrangler's ping) for SILENT_SECONDS is closed
        with 1001 and its tail ends; one that pings is kept.
        """
        self.open()
        for _ in range(3):
            self.clock.advance(SILENT_SECONDS - 1)
            self.channel.dataReceived(client_frame(PING, b"wrangler tail ping"))
        self.assertEqual(len(self.frames()), 3)
        self.clock.advance(SILENT_SECONDS)
        [(opcode, _, payload)] = self.frames()
        self.assertEqual((opcode, payload[:2]), (CLOSE, b"\x03\xe9"))
        self.assertTrue(self.transport.disconnecting)
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.tails.count(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_without_subprotocol(self):
        """
        A client that asks for no subprotocol is answered without one.
        """
        head, _ = self.open(b"other")
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "))
        self.assertNotIn(b"Sec-WebSocket-Protocol", head)

    def test_socket_is_a_tail_socket(self):
        """
        What a connected tail writes to provides L{ITailSocket}, all the tails know of it.
        """
        self.open()
        verifyObject(ITailSocket, self.tails._live["hello"][0].socket)

    def test_slow_reader(self):
        """
        When the client stops reading, the socket is paused (events are dropped), and
        resumed when it reads again.
        """
        self.open()
        socket = self.tails._live["hello"][0].socket
        self.transport.producer.pauseProducing()
        self.assertTrue(socket.paused)
        self.transport.producer.resumeProducing()
        self.assertFalse(socket.paused)
