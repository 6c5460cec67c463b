"""
The proxy, byte for byte: a client connection and the children's connections are
StringTransports the tests write to and read from.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import AtCapacity, NoSuchVersion, StartFailed
from funcplane.model import FunctionRoutes
from funcplane.edge.exchange import forwardable
from funcplane.edge.listener import ProxyFactory, ProxyLimits
from funcplane.routing import RouteTable
from funcplane.edge.upstream import UpstreamPool
from tests.fakes import FakeSupervisor, RecordingTails

CLIENT = IPv4Address("TCP", "203.0.113.9", 50000)


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

    def connect(self):
        channel = self.factory.buildProtocol(CLIENT)
        channel.makeConnection(StringTransport(peerAddress=CLIENT))
        return channel

    def send(self, data, channel=None):
        (channel or self.channel).dataReceived(data)

    def received(self, channel=None):
        transport = (channel or self.channel).transport
        data = transport.value()
        transport.clear()
        return data


def get(host=b"hello.func.local", path=b"/", extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + extra + b"\r\n"


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RelayTests(ProxyCase):
    def test_request_relayed(self):
        """
        The method, target, Host and end-to-end headers reach the child; funcplane sets the
        X-Forwarded headers itself, whatever the client claimed.
        """
        self.send(
            b"GET /path?q=1 HTTP/1.1\r\nHost: v1.hello.func.local\r\nX-Custom: a\r\n"
            b"X-Forwarded-For: 10.9.9.9\r\nX-Custom: b\r\n\r\n"
        )
        self.assertEqual(self.supervisor.asked, ["id1"])
        self.assertEqual(self.children.connections[0][0], "/run/id1.sock")
        self.assertEqual(
            self.children.sent(),
            b"GET /path?q=1 HTTP/1.1\r\nHost: v1.hello.func.local\r\nX-Custom: a\r\n"
            b"X-Custom: b\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: http\r\n"
            b"X-Forwarded-Host: v1.hello.func.local\r\n\r\n",
        )

    def test_response_relayed_without_additions(self):
        """
        Status, reason, headers and body come back as the function sent them: no Date,
        Server or Content-Type is added.
        """
        self.send(get())
        self.children.answer(
            b"HTTP/1.1 201 Made It\r\nX-Reply: yes\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
            b"Content-Length: 5\r\n\r\nhello"
        )
        self.assertEqual(
            self.received(),
            b"HTTP/1.1 201 Made It\r\nX-Reply: yes\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
            b"Content-Length: 5\r\n\r\nhello",
        )

    def test_routes(self):
        """
        The bare function host goes to latest, an alias to its version, in any case and
        with a port and a trailing dot.
        """
        for host in [b"hello.func.local", b"TEST.Hello.func.local.:8081", b"v2.hello.func.local"]:
            self.send(get(host))
            self.children.answer(OK)
        self.assertEqual(self.supervisor.asked, ["id2", "id1", "id2"])
        self.assertEqual([path for path, _ in self.children.connections], ["/run/id2.sock", "/run/id1.sock"])

    def test_hop_by_hop_dropped(self):
        """
        Hop-by-hop headers and the headers Connection names go no further, either way.
        """
        self.send(
            get(
                extra=b"Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\n"
                b"TE: trailers\r\nProxy-Authorization: Basic x\r\nX-Kept: k\r\n"
            )
        )
        sent = self.children.sent()
        for name in [b"Connection", b"X-Secret", b"Keep-Alive", b"TE:", b"Proxy-Authorization"]:
            self.assertNotIn(name, sent)
        self.assertIn(b"X-Kept: k\r\n", sent)
        self.children.answer(
            b"HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: i\r\nKeep-Alive: timeout=5\r\n"
            b"X-Public: p\r\nContent-Length: 0\r\n\r\n"
        )
        self.assertEqual(
            self.received(), b"HTTP/1.1 200 OK\r\nX-Public: p\r\nContent-Length: 0\r\n\r\n"
        )

    def test_forwardable(self):
        headers = [(b"Connection", b"close, X-A"), (b"x-a", b"1"), (b"X-B", b"2"), (b"Upgrade", b"h2")]
        self.assertEqual(forwardable(headers), [(b"X-B", b"2")])
        self.assertEqual(forwardable(headers, frozenset([b"x-b"])), [])


class RequestBodyTests(ProxyCase):
    limits = ProxyLimits(buffered=10)

    def test_length_body_streams(self):
        """
        A body with a Content-Length goes upstream with the same length, each piece as
        it arrives.
        """
        self.send(b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nContent-Length: 6\r\n\r\nabc")
        self.assertTrue(self.children.sent().endswith(b"Content-Length: 6\r\n\r\nabc"))
        self.send(b"def")
        self.assertTrue(self.children.sent().endswith(b"\r\n\r\nabcdef"))

    def test_chunked_body_streams(self):
        """
        A chunked body is re-chunked upstream piece by piece; its trailers are dropped.
        """
        self.send(
            b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\nabc\r\n"
        )
        head, _, body = self.children.sent().partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertEqual(body, b"3\r\nabc\r\n")
        self.send(b"2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
        self.assertEqual(
            self.children.sent().partition(b"\r\n\r\n")[2], b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )

    def test_buffered_while_child_starts(self):
        """
        A body that arrives while the child starts is held, up to a limit past which
        reading from the client pauses; it is sent on when the child is ready.
        """
        self.supervisor.held = Deferred()
        self.send(b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nContent-Length: 20\r\n\r\n0123456789")
        self.assertEqual(self.channel.transport.producerState, "producing")
        self.send(b"abcde")
        self.assertEqual(self.channel.transport.producerState, "paused")
        self.assertEqual(self.children.connections, [])
        self.supervisor.held.callback(None)
        self.assertTrue(self.children.sent().endswith(b"\r\n\r\n0123456789abcde"))
        self.assertEqual(self.channel.transport.producerState, "producing")

    def test_upstream_backpressure(self):
        """
        While the child's connection cannot take more, reading from the client pauses.
        """
        self.send(b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nContent-Length: 100\r\n\r\nab")
        upstream = self.children.connections[0][1].transport
        upstream.producer.pauseProducing()
        self.assertEqual(self.channel.transport.producerState, "paused")
        upstream.producer.resumeProducing()
        self.assertEqual(self.channel.transport.producerState, "producing")

    def test_expect_continue(self):
        """
        Expect: 100-continue is answered by funcplane once the child is ready, not
        forwarded.
        """
        self.supervisor.held = Deferred()
        self.send(
            b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nExpect: 100-continue\r\n"
            b"Content-Length: 2\r\n\r\n"
        )
        self.assertEqual(self.received(), b"")
        self.supervisor.held.callback(None)
        self.assertEqual(self.received(), b"HTTP/1.1 100 Continue\r\n\r\n")
        self.assertNotIn(b"Expect", self.children.sent())

    def test_early_response_closes(self):
        """
        A response that is complete before the request body is ends the connection, and
        the child's connection is not reused.
        """
        self.send(b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nContent-Length: 100\r\n\r\nab")
        self.children.answer(OK)
        self.assertEqual(
            self.received(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        )
        self.assertTrue(self.channel.transport.disconnecting)
        self.assertTrue(self.children.connections[0][1].transport.disconnecting)
        self.assertEqual(self.pool.idle_count(), 0)


class ResponseTests(ProxyCase):
    def test_chunked_response_streams(self):
        """
        A response of unknown length reaches an HTTP/1.1 client chunked, piece by piece.
        """
        self.send(get())
        self.children.answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        self.assertEqual(
            self.received(), b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
        )
        self.children.answer(b"6\r\nsecond\r\n0\r\n\r\n")
        self.assertEqual(self.received(), b"6\r\nsecond\r\n0\r\n\r\n")
        self.assertFalse(self.channel.transport.disconnecting)

    def test_http10_client_gets_close_delimited(self):
        self.send(b"GET / HTTP/1.0\r\nHost: hello.func.local\r\n\r\n")
        self.children.answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
        self.assertEqual(self.received(), b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhi")
        self.assertTrue(self.channel.transport.disconnecting)

    def test_close_delimited_upstream(self):
        """
        A body the child ends by closing is complete when the connection closes.
        """
        self.send(get())
        self.children.answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        self.children.connections[0][1].connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            self.received(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nall of it\r\n0\r\n\r\n",
        )
        self.assertEqual(self.pool.idle_count(), 0)

    def test_client_backpressure(self):
        """
        While the client cannot take more, the child's connection is not read.
        """
        self.send(get())
        upstream = self.children.connections[0][1].transport
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
        self.channel.pauseProducing()
        self.assertEqual(upstream.producerState, "paused")
        self.channel.resumeProducing()
        self.assertEqual(upstream.producerState, "producing")

    def test_head(self):
        """
        A HEAD's Content-Length describes the GET's body: it passes unchanged, no body
        follows, and the connection is reused.
        """
        self.send(b"HEAD / HTTP/1.1\r\nHost: hello.func.local\r\n\r\n")
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        self.assertEqual(self.received(), b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        self.assertEqual(self.pool.idle_count(), 1)

    def test_no_body_codes(self):
        """
        204 and 304 gain no framing header.
        """
        for status in [b"204 No Content", b"304 Not Modified"]:
            self.send(get())
            self.children.answer(b"HTTP/1.1 " + status + b"\r\nETag: x\r\n\r\n")
            self.assertEqual(self.received(), b"HTTP/1.1 " + status + b"\r\nETag: x\r\n\r\n")

    def test_interim_response_skipped(self):
        self.send(get())
        self.children.answer(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK)
        self.assertEqual(self.received(), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def test_redirect_passes(self):
        self.send(get())
        self.children.answer(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(
            self.received(),
            b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
        )


class KeepAliveTests(ProxyCase):
    def test_connection_reused_and_expires(self):
        """
        The child's connection goes back to the pool, carries the next request, and is
        closed after ten idle seconds.
        """
        self.send(get())
        self.children.answer(OK)
        self.assertEqual(self.pool.idle_count("/run/id2.sock"), 1)
        self.send(get(path=b"/again"))
        self.assertEqual(len(self.children.connections), 1)
        self.assertTrue(self.children.sent().endswith(b"\r\n\r\n") and b"GET /again" in self.children.sent())
        self.children.answer(OK)
        upstream = self.children.connections[0][1].transport
        self.clock.advance(9)
        self.assertFalse(upstream.disconnecting)
        self.clock.advance(1)
        self.assertTrue(upstream.disconnecting)

    def test_child_closing_is_not_reused(self):
        self.send(get())
        self.children.answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(self.received(), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(self.pool.idle_count(), 0)

    def test_stale_connection_retried(self):
        """
        A pooled connection the child closed just as it was reused: the request is sent
        again on a new connection.
        """
        self.send(get())
        self.children.answer(OK)
        self.received()
        self.send(get(path=b"/second"))
        self.children.connections[0][1].connectionLost(Failure(ConnectionLost()))
        self.clock.advance(0.02)
        self.assertEqual(len(self.children.connections), 2)
        self.assertIn(b"GET /second", self.children.sent())
        self.children.answer(OK)
        self.assertEqual(self.received(), OK)

    def test_stale_retry_stays_with_its_child(self):
        """
        A GET whose pooled connection broke is sent again only to the same child: if that
        child has died, the request may be what killed it, so it gets a 502 rather than
        being handed to a new child as well.
        """
        self.send(get())
        self.children.answer(OK)
        self.received()
        self.send(get(path=b"/bomb"))
        self.children.connections[0][1].connectionLost(Failure(ConnectionLost()))
        self.children.refusals = 1
        self.supervisor.asked.clear()
        self.clock.advance(1)
        self.assertEqual(self.supervisor.asked, [])
        self.assertEqual(len(self.children.connections), 1)
        self.assertTrue(self.received().startswith(b"HTTP/1.1 502 Bad Gateway\r\n"))

    def test_unanswered_post_not_retried(self):
        """
        A request with a body, or one that is not idempotent, is not sent twice: the
        child may have acted on it.
        """
        self.send(b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nContent-Length: 0\r\n\r\n")
        self.children.connections[0][1].connectionLost(Failure(ConnectionLost()))
        self.clock.advance(1)
        self.assertEqual(len(self.children.connections), 1)
        self.assertTrue(self.received().startswith(b"HTTP/1.1 502 Bad Gateway\r\n"))

    def test_client_close(self):
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


class FailureTests(ProxyCase):
    def assertAnswer(self, status, message, closed=False):
        body = message.encode() + b"\n"
        head = b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
        head += b"Content-Length: %d\r\n" % len(body)
        if closed:
            head += b"Connection: close\r\n"
        self.assertEqual(self.received(), head + b"\r\n" + body)
        self.assertEqual(self.channel.transport.disconnecting, closed)

    def test_unknown_function(self):
        self.send(get(b"nope.func.local"))
        self.assertAnswer(b"404 Not Found", "function nope not found")
        self.assertEqual(self.supervisor.asked, [])

    def test_unknown_version(self):
        self.send(get(b"v9.hello.func.local"))
        self.assertAnswer(b"404 Not Found", "function hello has no version or alias v9")

    def test_version_gone(self):
        self.supervisor.result = fail(NoSuchVersion("version v1 of hello no longer exists"))
        self.send(get(b"v1.hello.func.local"))
        self.assertAnswer(b"404 Not Found", "version v1 of hello no longer exists")

    def test_start_failure(self):
        self.supervisor.result = fail(StartFailed("Uncaught Error: boom"))
        self.send(get())
        self.assertAnswer(b"503 Service Unavailable", "the function could not start: Uncaught Error: boom")

    def test_no_answer(self):
        """
        A fresh connection that breaks before any answer: 502, and the request is not sent
        again (it may be what killed the child).
        """
        self.send(get())
        self.children.connections[0][1].connectionLost(Failure(ConnectionLost()))
        self.clock.advance(1)
        self.assertEqual(len(self.children.connections), 1)
        self.assertAnswer(b"502 Bad Gateway", "the function did not answer")

    def test_broken_off_response(self):
        """
        A response that breaks off after it began closes the client's connection at once.
        """
        self.send(get())
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        self.children.connections[0][1].connectionLost(Failure(ConnectionLost()))
        self.assertTrue(self.channel.transport.disconnected)

    def test_host_count(self):
        for request in [b"GET / HTTP/1.1\r\n\r\n", get(extra=b"Host: v1.hello.func.local\r\n")]:
            self.channel = self.connect()
            self.send(request)
            self.assertAnswer(b"400 Bad Request", "a request needs exactly one Host header", closed=True)
        self.assertEqual(self.supervisor.asked, [])

    def test_admin_host_on_function_connection(self):
        self.send(get())
        self.children.answer(OK)
        self.received()
        self.send(get(b"admin.example"))
        self.assertAnswer(
            b"421 Misdirected Request",
            "admin.example is not a function host; reach the admin API on a connection of its own",
        )

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

    def test_bad_chunk_mid_body(self):
        """
        A malformed chunk after the body began: the child's request is abandoned and the
        client gets 400.
        """
        self.send(
            b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n"
        )
        self.send(b"zz\r\n")
        self.assertTrue(self.children.connections[0][1].transport.disconnecting)
        answer = self.received()
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer)
        self.assertTrue(self.channel.transport.disconnecting)

    def test_target_forms(self):
        self.send(b"GET http://hello.func.local/ HTTP/1.1\r\nHost: hello.func.local\r\n\r\n")
        self.assertAnswer(
            b"400 Bad Request", "the request target must be a path, such as /index.html"
        )

    def test_unknown_transfer_coding(self):
        self.send(
            b"POST / HTTP/1.1\r\nHost: hello.func.local\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"0\r\n\r\n"
        )
        self.assertAnswer(
            b"501 Not Implemented", "only the chunked transfer coding is supported", closed=True
        )

    def test_head_too_large(self):
        self.channel = self.connect()
        self.send(b"GET / HTTP/1.1\r\nHost: hello.func.local\r\n")
        self.send(b"X-Big: " + b"a" * (64 * 1024) + b"\r\n")
        self.assertAnswer(
            b"431 Request Header Fields Too Large", "the request line and headers are too large", closed=True
        )

    def test_client_gone_while_starting(self):
        self.supervisor.held = Deferred()
        self.send(get())
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.supervisor.held.callback(None)
        self.assertEqual(self.children.connections, [])

    def test_client_gone_while_streaming(self):
        """
        The child's connection is closed when the client goes away mid-response.
        """
        self.send(get())
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(self.children.connections[0][1].transport.disconnecting)
        self.assertEqual(self.pool.idle_count(), 0)


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


class LifecycleTests(ProxyCase):
    def test_lease_held_for_the_exchange(self):
        """
        A request counts as in flight on its version from the moment it is routed (even
        while the version wakes) until its response is complete.
        """
        self.supervisor.held = Deferred()
        self.send(get())
        self.assertEqual(self.supervisor.in_flight, {"id2": 1})
        self.supervisor.held.callback(None)
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
        self.assertEqual(self.supervisor.in_flight, {"id2": 1})
        self.children.answer(b"cd")
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})

    def test_lease_released_when_client_leaves(self):
        self.send(get())
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})

    def test_unknown_host_starts_nothing(self):
        self.send(get(b"nope.func.local"))
        self.assertEqual((self.supervisor.in_flight, self.supervisor.asked), ({}, []))

    def test_timeout_before_response(self):
        """
        No response within the request timeout: 504, the child's connection is closed, the
        supervisor is told, and the lease is released.
        """
        self.send(get())
        self.clock.advance(29)
        self.assertEqual(self.received(), b"")
        self.clock.advance(1)
        answer = self.received()
        self.assertTrue(answer.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n"), answer)
        self.assertTrue(answer.endswith(b"the function did not answer within 30 seconds\n"))
        self.assertEqual(self.supervisor.timed_out, ["id2"])
        self.assertTrue(self.children.connections[0][1].transport.disconnecting)
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})

    def test_timeout_while_waking(self):
        self.supervisor.held = Deferred()
        self.send(get())
        self.clock.advance(30)
        self.assertTrue(self.received().startswith(b"HTTP/1.1 504 "))
        self.supervisor.held.callback(None)
        self.assertEqual(self.children.connections, [])

    def test_timeout_between_pieces(self):
        """
        Each piece of a response restarts the clock; a response that stalls past the
        timeout closes the client's connection.
        """
        self.send(get())
        self.clock.advance(20)
        self.children.answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.clock.advance(20)
        self.children.answer(b"1\r\na\r\n")
        self.clock.advance(29)
        self.assertFalse(self.channel.transport.disconnected)
        self.clock.advance(1)
        self.assertTrue(self.channel.transport.disconnected)
        self.assertEqual(self.supervisor.timed_out, ["id2"])

    def test_no_timer_left(self):
        """
        Once answered, only the idle deadlines are due: the child's connection in the pool
        (10 s) and the client's kept-alive connection (60 s). The request's own deadline
        (30 s) is cleared and does nothing when its time passes.
        """
        self.send(get())
        self.children.answer(OK)
        self.assertIsNone(self.channel.request_deadline.when)
        self.clock.advance(9)
        self.assertEqual(self.pool.idle_count(), 1)
        self.clock.advance(1)
        self.assertEqual(self.pool.idle_count(), 0)
        self.clock.advance(49)
        self.assertFalse(self.channel.transport.disconnecting)
        self.assertEqual(self.supervisor.timed_out, [])
        self.clock.advance(1)
        self.assertTrue(self.channel.transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_at_capacity(self):
        self.supervisor.result = fail(AtCapacity("2 versions are running (--max-running) and every one is busy"))
        self.send(get())
        answer = self.received()
        self.assertTrue(answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer)
        self.assertIn(b"every one is busy", answer)


class LimitTests(ProxyCase):
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
        self.send(get(path=b"/" + b"a" * 100))
        self.assertRefused(b"414 Request-URI Too Long")
        self.assertEqual(self.supervisor.asked, [])

    def test_head_too_large(self):
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
        self.clock.advance(5)
        self.assertEqual(self.received(), b"")
        self.assertTrue(self.channel.transport.disconnecting)

    def test_idle_keep_alive_closed(self):
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

    def test_refused_connection_retried(self):
        """
        A child that has just died refuses the connection; the request waits for it to be
        noticed and replaced instead of failing.
        """
        self.children.refusals = 2
        self.send(get())
        self.assertEqual(self.children.connections, [])
        self.clock.advance(0.02)
        self.clock.advance(0.02)
        self.assertEqual(len(self.children.connections), 1)
        self.assertEqual(self.supervisor.asked, ["id2"] * 3)
        self.children.answer(OK)
        self.assertEqual(self.received(), OK)


class TrustedProxyTests(ProxyCase):
    def setUp(self):
        super().setUp()
        self.factory = ProxyFactory(
            self.routes, self.supervisor, self.pool, self.admin, self.clock, trusted_proxies=["203.0.113.0/24"]
        )

    def forwarded(self, peer):
        channel = self.factory.buildProtocol(None)
        channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", peer, 1)))
        channel.dataReceived(
            get(extra=b"X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: https\r\n"
                      b"X-Forwarded-Host: example.com\r\n")
        )
        head = self.children.sent().split(b"\r\n")
        return [line for line in head if line.lower().startswith(b"x-forwarded")]

    def test_trusted_proxy_claims_kept(self):
        """
        Behind a trusted load balancer, the client it names is kept and the balancer is
        added to the chain.
        """
        self.assertEqual(
            self.forwarded("203.0.113.9"),
            [b"X-Forwarded-For: 198.51.100.7, 203.0.113.9", b"X-Forwarded-Proto: https",
             b"X-Forwarded-Host: example.com"],
        )

    def test_others_replaced(self):
        self.assertEqual(
            self.forwarded("192.0.2.1"),
            [b"X-Forwarded-For: 192.0.2.1", b"X-Forwarded-Proto: http", b"X-Forwarded-Host: hello.func.local"],
        )


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


WS_REQUEST = get(
    path=b"/chat",
    extra=b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n",
)
SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)


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


class TailReportTests(ProxyCase):
    """
    While a tail is live, each request the proxy ends is reported once, with how it ended.
    """

    def setUp(self):
        super().setUp()
        self.clock.advance(1000)
        self.channel = self.connect()
        self.tails = self.factory.tails = RecordingTails()

    def test_answered(self):
        """
        A relayed response is reported as C{ok} with its status, the request as the client
        sent it, the client's address and when it started.
        """
        self.send(get(path=b"/p?q=1", extra=b"X-Tag: a\r\n"))
        self.clock.advance(0.5)
        self.children.answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        [traced] = self.tails.done
        self.assertEqual(
            (traced.function, traced.version_id, traced.host, traced.method, traced.target, traced.headers),
            ("hello", "id2", b"hello.func.local", b"GET", b"/p?q=1", ((b"Host", b"hello.func.local"), (b"X-Tag", b"a"))),
        )
        self.assertEqual(
            (traced.client, traced.secure, traced.started, traced.status, traced.outcome),
            ("203.0.113.9", False, 1000, 404, "ok"),
        )

    def test_failures(self):
        """
        A request funcplane answered for the function (here 502) is C{unknown}; one the
        client left before its answer is C{canceled}, without a status.
        """
        self.send(get())
        self.children.connections[0][1].connectionLost(Failure(ConnectionLost()))
        self.assertEqual([(t.status, t.outcome) for t in self.tails.done], [(502, "unknown")])
        channel = self.connect()
        self.send(get(), channel)
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([(t.status, t.outcome) for t in self.tails.done][1:], [(None, "canceled")])

    def test_broken_off(self):
        """
        A response the function broke off is C{unknown}, with the status it began with.
        """
        self.send(get())
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        self.children.connections[0][1].connectionLost(Failure(ConnectionLost()))
        self.channel.connectionLost(Failure(ConnectionLost()))
        self.assertEqual([(t.status, t.outcome) for t in self.tails.done], [(200, "unknown")])

    def test_websocket(self):
        """
        A WebSocket to a function is reported when it closes, with status 101.
        """
        self.send(WS_REQUEST)
        self.children.answer(SWITCHED)
        self.assertEqual(self.tails.done, [])
        self.children.connections[0][1].connectionLost(Failure(ConnectionDone()))
        self.assertEqual([(t.status, t.outcome) for t in self.tails.done], [(101, "ok")])

    def test_unrouted_not_reported(self):
        """
        A request that reached no version is no function's event.
        """
        self.tails.watched[b"nope.func.local"] = "nope"
        self.send(get(b"nope.func.local"))
        self.assertEqual(self.tails.done, [])

    def test_unwatched_not_reported(self):
        """
        A request to a function no tail watches is not reported, though others are tailed.
        """
        self.send(get(b"v2.hello.func.local"))
        self.children.answer(OK)
        self.assertEqual(self.tails.done, [])

    def test_quiet(self):
        """
        With no tail live, nothing is reported.
        """
        self.tails.active = False
        self.send(get())
        self.children.answer(OK)
        self.assertEqual(self.tails.done, [])
