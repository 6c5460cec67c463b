"""
The proxy, byte for byte: a client connection and the children's connections are
StringTransports the tests write to and read from.  L{ProxyCase} builds a listener over a
route table, a L{FakeSupervisor} and a real pool whose connections go to L{Children}.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from funcplane.edge.listener import ProxyFactory, ProxyLimits
from funcplane.edge.upstream import UpstreamPool
from funcplane.model import FunctionRoutes
from funcplane.routing import RouteTable
from tests.fakes import FakeSupervisor

CLIENT = IPv4Address("TCP", "203.0.113.9", 50000)


class HalfClosingTransport(StringTransport):
    """
    A L{StringTransport} that can be half-closed, as a TCP connection can.

    @ivar write_closed: whether C{loseWriteConnection} was called.
    """

    write_closed = False

    def loseWriteConnection(self):
        self.write_closed = True


class Children:
    """
    The children's end of every connection the pool makes.
    """

    def __init__(self):
        self.connections = []
        self.refusals = 0

    def connect(self, socket_path, protocol):
        if self.refusals:
            self.refusals -= 1
            return fail(ConnectionRefusedError())
        protocol.makeConnection(StringTransport())
        self.connections.append((socket_path, protocol))
        return succeed(protocol)

    def sent(self, index=-1):
        return self.connections[index][1].transport.value()

    def answer(self, data, index=-1):
        self.connections[index][1].dataReceived(data)


class Recorder(Protocol):
    """
    Stands in for the admin API's HTTP channel.
    """

    def __init__(self):
        self.received = b""
        self.lost = None

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost = reason


class ProxyCase(SynchronousTestCase):
    """
    A listener for C{hello.func.local} (latest C{id2}; versions C{v1} and C{v2}, alias
    C{test} to C{v1}) with one client connection open; subclasses set C{limits}.
    """

    limits = ProxyLimits()

    def setUp(self):
        self.routes = RouteTable("func.local")
        self.routes.replace(
            FunctionRoutes("hello", "id2", {"v1": "id1", "v2": "id2"}, {"test": "id1"})
        )
        self.supervisor = FakeSupervisor()
        self.clock = Clock()
        self.children = Children()
        self.pool = UpstreamPool(
            self.clock, connect=self.children.connect, response_head_bytes=self.limits.response_head_bytes
        )
        self.admin = Factory.forProtocol(Recorder)
        self.factory = ProxyFactory(
            self.routes, self.supervisor, self.pool, self.admin, self.clock, self.limits, request_timeout=30
        )
        self.channel = self.connect()

    def connect(self, transport_type=StringTransport):
        channel = self.factory.buildProtocol(CLIENT)
        channel.makeConnection(transport_type(peerAddress=CLIENT))
        return channel

    def send(self, data, channel=None):
        (channel or self.channel).dataReceived(data)

    def received(self, channel=None):
        transport = (channel or self.channel).transport
        data = transport.value()
        transport.clear()
        return data

    def exchange(self, index=0):
        """
        The exchange the client's connection answers now (or, at C{index}, one queued
        behind it).
        """
        return self.channel._queue[index]

    def assertAnswer(self, status, message, closed=False):
        """
        The client got funcplane's own plain-text answer, and its connection closes after
        it (or, lingering, half-closes) exactly when C{closed}.
        """
        body = message.encode() + b"\n"
        head = b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
        head += b"Content-Length: %d\r\n" % len(body)
        if closed:
            head += b"Connection: close\r\n"
        self.assertEqual(self.received(), head + b"\r\n" + body)
        transport = self.channel.transport
        closing = transport.disconnecting or getattr(transport, "write_closed", False)
        self.assertEqual(closing, closed)


def get(host=b"hello.func.local", path=b"/", extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + extra + b"\r\n"


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

WS_REQUEST = get(
    path=b"/chat",
    extra=b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n",
)
SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)
