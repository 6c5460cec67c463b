"""
The server end of a WebSocket (RFC 6455), as much of it as C{wrangler tail} needs: the
opening handshake on an admin request, then text frames out, and text, ping and close
frames in.

Why not a library: wrangler sends its first frame unmasked, which RFC 6455 forbids
(section 5.1) and which wsproto (so Twisted's own C{twisted.web.websocket}) and
C{websockets} refuse with a protocol error.  autobahn tolerates it
(C{requireMaskedClientFrames=False}), but it takes the TCP transport away from the protocol
that holds it (here L{funcplane.edge.listener.ProxyChannel}, which counts connections per address)
and runs its timers on the global reactor.  This codec accepts client frames masked or not,
and refuses everything else RFC 6455 forbids.
"""

import base64
import hashlib
import struct

from twisted.internet.protocol import Protocol
from twisted.logger import Logger

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA
_DATA = frozenset([CONTINUATION, TEXT, BINARY])
_CONTROL = frozenset([CLOSE, PING, PONG])

# Close codes (RFC 6455 7.4.1).
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
TOO_BIG = 1009


class ProtocolViolation(Exception):
    """
    The peer broke RFC 6455: the connection closes with C{code}.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def header_tokens(headers, name):
    """
    The comma-separated tokens of every C{name} header in C{headers} (a
    C{twisted.web.http_headers.Headers}), in lower case.
    """
    return {
        token.strip().lower() for value in headers.getRawHeaders(name, []) for token in value.split(b",")
    }


def handshake_problem(method, headers):
    """
    What is wrong with a request to open a WebSocket, or L{None} if nothing is.

    @param headers: a C{twisted.web.http_headers.Headers}.
    """
    if method != b"GET":
        return "a WebSocket is opened with GET"
    if b"websocket" not in header_tokens(headers, b"upgrade") or b"upgrade" not in header_tokens(
        headers, b"connection"
    ):
        return "this address is a WebSocket: connect with wrangler tail or a WebSocket client"
    if headers.getRawHeaders(b"sec-websocket-version", [b""])[-1].strip() != b"13":
        return "only WebSocket version 13 is supported"
    key = headers.getRawHeaders(b"sec-websocket-key", [b""])[-1].strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError(key)
    except ValueError:
        return "Sec-WebSocket-Key must be 16 bytes in base64"
    return None


def accept_key(key):
    """
    The C{Sec-WebSocket-Accept} value answering C{Sec-WebSocket-Key: key}.
    """
    return base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())


def switching_protocols(key, protocol=None):
    """
    The 101 response that opens the WebSocket, choosing C{protocol} (bytes) if given.
    """
    head = [
        b"HTTP/1.1 101 Switching Protocols\r\n",
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n",
        b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n",
    ]
    if protocol is not None:
        head.append(b"Sec-WebSocket-Protocol: " + protocol + b"\r\n")
    head.append(b"\r\n")
    return b"".join(head)


def encode_frame(opcode, payload):
    """
    One whole frame from the server (servers never mask).
    """
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return head + payload


def _unmask(key, payload):
    if key is None:
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


class FrameParser:
    """
    Cuts the bytes a client sends into frames.

    @param max_payload: the largest frame payload accepted; a larger one is a
        L{ProtocolViolation} with code 1009.
    """

    def __init__(self, max_payload):
        self._max = max_payload
        self._buffer = bytearray()

    def feed(self, data):
        """
        The C{(opcode, fin, payload)} of every frame C{data} completes.
        """
        self._buffer += data
        frames = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self):
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        fin, opcode = bool(first & 0x80), first & 0x0F
        if first & 0x70:
            raise ProtocolViolation(PROTOCOL_ERROR, "reserved bits are set and no extension was agreed")
        if opcode not in _DATA and opcode not in _CONTROL:
            raise ProtocolViolation(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        size, offset = second & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                return None
            (size,), offset = struct.unpack_from("!H", buffer, 2), 4
        elif size == 127:
            if len(buffer) < 10:
                return None
            (size,), offset = struct.unpack_from("!Q", buffer, 2), 10
        if opcode in _CONTROL and (size > 125 or not fin):
            raise ProtocolViolation(PROTOCOL_ERROR, "a control frame must be whole and at most 125 bytes")
        if size > self._max:
            raise ProtocolViolation(TOO_BIG, f"a frame of {size} bytes is over {self._max}")
        masked = bool(second & 0x80)
        end = offset + (4 if masked else 0) + size
        if len(buffer) < end:
            return None
        key = bytes(buffer[offset : offset + 4]) if masked else None
        payload = _unmask(key, bytes(buffer[end - size : end]))
        del buffer[:end]
        return opcode, fin, payload


class WebSocketServer(Protocol):
    """
    A WebSocket after its opening handshake: answers pings, closes when asked, reassembles
    text messages and hands them to L{message_received}.  Binary messages are not wanted and
    close the connection (1003 is for that, but wrangler never sends any: 1002 will do).

    @param max_message: the largest message (and frame) accepted, in bytes.
    """

    log = Logger()

    def __init__(self, max_message=65536):
        self._parser = FrameParser(max_message)
        self._max_message = max_message
        self._fragments = None
        self._closing = False

    def dataReceived(self, data):
        if self._closing:
            return
        try:
            for opcode, fin, payload in self._parser.feed(data):
                self._frame(opcode, fin, payload)
                if self._closing:
                    return
        except ProtocolViolation as e:
            self.close(e.code, str(e))

    def _frame(self, opcode, fin, payload):
        if opcode == PING:
            self.transport.write(encode_frame(PONG, payload))
        elif opcode == PONG:
            pass
        elif opcode == CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else NORMAL
            self.close(code if 1000 <= code < 5000 else PROTOCOL_ERROR)
        elif opcode == BINARY:
            raise ProtocolViolation(PROTOCOL_ERROR, "binary messages are not accepted")
        elif opcode == TEXT:
            if self._fragments is not None:
                raise ProtocolViolation(PROTOCOL_ERROR, "a new message began inside another")
            self._fragments = [payload]
            self._continue(fin)
        else:
            if self._fragments is None:
                raise ProtocolViolation(PROTOCOL_ERROR, "a continuation frame with no message")
            self._fragments.append(payload)
            self._continue(fin)

    def _continue(self, fin):
        if sum(map(len, self._fragments)) > self._max_message:
            raise ProtocolViolation(TOO_BIG, f"a message is over {self._max_message} bytes")
        if not fin:
            return
        data, self._fragments = b"".join(self._fragments), None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation(INVALID_DATA, "a text message is not UTF-8") from None
        self.message_received(text)

    def message_received(self, text):
        """
        A whole text message arrived.  Override.
        """

    def send_text(self, text):
        if not self._closing:
            self.transport.write(encode_frame(TEXT, text.encode("utf-8")))

    def close(self, code=NORMAL, reason=""):
        """
        Send a close frame with C{code} and C{reason}, then close the connection once what
        was written has gone out.
        """
        if self._closing:
            return
        self._closing = True
        self.transport.write(encode_frame(CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:120]))
        self.transport.loseConnection()
