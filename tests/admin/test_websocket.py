"""
Tests for L{funcplane.admin.websocket}: the opening handshake, the frame codec, and the server
protocol, byte for byte over a StringTransport.
"""

import os
import struct

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from funcplane.admin.websocket import (
    CLOSE,
    PING,
    PONG,
    TEXT,
    FrameParser,
    ProtocolViolation,
    WebSocketServer,
    accept_key,
    encode_frame,
    handshake_problem,
    switching_protocols,
)


def client_frame(opcode, payload, fin=True, mask=True, rsv=0):
    """
    A frame as a client sends it: masked unless C{mask} is false (as wrangler's first is).
    """
    size = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    bit = 0x80 if mask else 0
    if size < 126:
        head = struct.pack("!BB", first, bit | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, bit | 127, size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def upgrade_headers(**changes):
    values = {
        b"upgrade": b"websocket",
        b"connection": b"keep-alive, Upgrade",
        b"sec-websocket-version": b"13",
        b"sec-websocket-key": b"dGhlIHNhbXBsZSBub25jZQ==",
    }
    values.update((k.replace("_", "-").encode(), v) for k, v in changes.items())
    return Headers({k: [v] for k, v in values.items() if v is not None})


class HandshakeTests(SynchronousTestCase):
    def test_accept_key(self):
        """
        The accept value is RFC 6455's own example (section 1.3).
        """
        self.assertEqual(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

    def test_good_request(self):
        """
        A GET with Upgrade, Connection (among other tokens), version 13 and a 16-byte key
        has no problem.
        """
        self.assertIsNone(handshake_problem(b"GET", upgrade_headers()))

    def test_problems(self):
        """
        Each missing or wrong part of the handshake is named.
        """
        cases = [
            (b"POST", upgrade_headers(), "opened with GET"),
            (b"GET", upgrade_headers(upgrade=None), "this address is a WebSocket"),
            (b"GET", upgrade_headers(connection=b"keep-alive"), "this address is a WebSocket"),
            (b"GET", upgrade_headers(sec_websocket_version=b"8"), "version 13"),
            (b"GET", upgrade_headers(sec_websocket_key=None), "16 bytes"),
            (b"GET", upgrade_headers(sec_websocket_key=b"c2hvcnQ="), "16 bytes"),
            (b"GET", upgrade_headers(sec_websocket_key=b"not base64!!"), "16 bytes"),
        ]
        for method, headers, expected in cases:
            self.assertIn(expected, handshake_problem(method, headers))

    def test_switching_protocols(self):
        """
        The 101 carries the accept value, and the chosen subprotocol only when one is.
        """
        key = b"dGhlIHNhbXBsZSBub25jZQ=="
        self.assertEqual(
            switching_protocols(key, b"trace-v1"),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"Sec-WebSocket-Protocol: trace-v1\r\n\r\n",
        )
        self.assertNotIn(b"Sec-WebSocket-Protocol", switching_protocols(key))


class FrameTests(SynchronousTestCase):
    def test_encode_lengths(self):
        """
        Server frames are unmasked and use the 7-bit, 16-bit and 64-bit length forms.
        """
        self.assertEqual(encode_frame(TEXT, b"hi"), b"\x81\x02hi")
        self.assertEqual(encode_frame(TEXT, b"x" * 200)[:4], b"\x81\x7e\x00\xc8")
        self.assertEqual(encode_frame(TEXT, b"x" * 70000)[:10], b"\x81\x7f" + struct.pack("!Q", 70000))

    def test_masked_and_unmasked(self):
        """
        Client frames are read masked or not (wrangler's first frame is not).
        """
        parser = FrameParser(1 << 20)
        frames = parser.feed(
            client_frame(TEXT, b'{"debug":false}', mask=False)
            + client_frame(PING, b"wrangler tail ping")
            + client_frame(TEXT, b"y" * 300)
            + client_frame(TEXT, b"z" * 70000)
        )
        self.assertEqual(
            frames,
            [
                (TEXT, True, b'{"debug":false}'),
                (PING, True, b"wrangler tail ping"),
                (TEXT, True, b"y" * 300),
                (TEXT, True, b"z" * 70000),
            ],
        )

    def test_split_anywhere(self):
        """
        A frame cut at every byte boundary comes out once, whole.
        """
        data = client_frame(TEXT, b"a" * 200) + client_frame(TEXT, b"end", mask=False)
        parser = FrameParser(1024)
        frames = []
        for i in range(len(data)):
            frames += parser.feed(data[i : i + 1])
        self.assertEqual(frames, [(TEXT, True, b"a" * 200), (TEXT, True, b"end")])

    def test_violations(self):
        """
        Reserved bits, unknown opcodes, long or fragmented control frames and frames over
        the limit are refused with the right close code.
        """
        cases = [
            (client_frame(TEXT, b"x", rsv=0x40), 1002),
            (client_frame(0x3, b"x"), 1002),
            (client_frame(PING, b"x" * 126), 1002),
            (client_frame(PING, b"x", fin=False), 1002),
            (client_frame(TEXT, b"x" * 101), 1009),
        ]
        for data, code in cases:
            error = self.assertRaises(ProtocolViolation, FrameParser(100).feed, data)
            self.assertEqual(error.code, code)

    def test_oversize_refused_from_its_head(self):
        """
        A frame declaring a payload over the limit is refused before its payload arrives.
        """
        head = struct.pack("!BBQ", 0x81, 0xFF, 1 << 40)
        error = self.assertRaises(ProtocolViolation, FrameParser(1 << 16).feed, head)
        self.assertEqual(error.code, 1009)


class Collector(WebSocketServer):
    def __init__(self):
        super().__init__(max_message=64)
        self.messages = []

    def message_received(self, text):
        self.messages.append(text)


class ServerTests(SynchronousTestCase):
    def setUp(self):
        self.server = Collector()
        self.transport = StringTransport()
        self.server.makeConnection(self.transport)

    def sent(self):
        data = self.transport.value()
        self.transport.clear()
        return FrameParser(1 << 20).feed(data)

    def test_ping_answered(self):
        """
        A ping is answered at once with a pong carrying the same payload.
        """
        self.server.dataReceived(client_frame(PING, b"wrangler tail ping"))
        self.assertEqual(self.sent(), [(PONG, True, b"wrangler tail ping")])

    def test_messages(self):
        """
        A text message arrives whole, from one frame or from fragments with a ping
        between them.
        """
        self.server.dataReceived(client_frame(TEXT, b'{"debug":false}', mask=False))
        self.server.dataReceived(
            client_frame(TEXT, "h\u00e9".encode(), fin=False)
            + client_frame(PING, b"")
            + client_frame(0x0, b"llo")
        )
        self.assertEqual(self.server.messages, ['{"debug":false}', "h\u00e9llo"])
        self.assertEqual(self.sent(), [(PONG, True, b"")])

    def test_send_text(self):
        """
        A text is sent as one unmasked text frame of its UTF-8 bytes.
        """
        self.server.send_text("caf\u00e9")
        self.assertEqual(self.sent(), [(TEXT, True, "caf\u00e9".encode())])

    def test_close_answered(self):
        """
        A close frame is answered with the same code and the connection closes; nothing
        after it is read or sent.
        """
        self.server.dataReceived(client_frame(CLOSE, struct.pack("!H", 1001)) + client_frame(TEXT, b"late"))
        self.server.send_text("after")
        self.assertEqual(self.sent(), [(CLOSE, True, struct.pack("!H", 1001))])
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.server.messages, [])

    def test_refusals(self):
        """
        Invalid UTF-8, a binary message, a stray continuation or a message over the limit
        close the connection with the code saying why.
        """
        cases = [
            (client_frame(TEXT, b"\xff\xfe"), 1007),
            (client_frame(0x2, b"bin"), 1002),
            (client_frame(0x0, b"stray"), 1002),
            (client_frame(TEXT, b"x" * 40, fin=False) + client_frame(0x0, b"x" * 40), 1009),
            (client_frame(TEXT, b"a", fin=False) + client_frame(TEXT, b"b"), 1002),
        ]
        for data, code in cases:
            server, transport = Collector(), StringTransport()
            server.makeConnection(transport)
            server.dataReceived(data)
            [(opcode, _, payload)] = FrameParser(1 << 20).feed(transport.value())
            self.assertEqual((opcode, struct.unpack("!H", payload[:2])[0]), (CLOSE, code))
            self.assertTrue(transport.disconnecting)
            self.assertEqual(server.messages, [])

    def test_close_once(self):
        """
        Closing twice sends one close frame.
        """
        self.server.close(1000, "bye")
        self.server.close(1001)
        self.assertEqual(self.sent(), [(CLOSE, True, struct.pack("!H", 1000) + b"bye")])
        self.server.connectionLost(Failure(ConnectionDone()))
