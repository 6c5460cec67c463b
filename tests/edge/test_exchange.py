"""
One exchange, byte for byte: what reaches the child and what comes back, request and
response bodies, the connections to the children, failures, the request's lease and
deadline, the tails' reports, and the states an exchange passes through.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from funcplane.edge.exchange import (
    ANSWERED,
    BROKEN_OFF,
    CLIENT_GONE,
    CONNECTING,
    QUEUED,
    RELAYED,
    RESPONDING,
    SENT,
)
from funcplane.edge.listener import ProxyFactory, ProxyLimits
from funcplane.errors import AtCapacity, NoSuchVersion, StartFailed
from tests.edge.harness import OK, SWITCHED, WS_REQUEST, ProxyCase, get
from tests.fakes import RecordingTails


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
            b"X-Forwarded-Host: v1.hello.func.local\r\nCF-Connecting-IP: 203.0.113.9\r\n\r\n",
        )

    def test_client_claims_replaced(self):
        """
        What a client claims about its address or Cloudflare's view of it never reaches
        the function: CF-Connecting-IP is its peer address, and True-Client-IP, X-Real-IP,
        Forwarded and every CF-* header are gone.
        """
        self.send(
            get(extra=b"CF-Connecting-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n"
                      b"Forwarded: for=6.6.6.6\r\nCF-IPCountry: XX\r\nCF-Worker: evil.example\r\n")
        )
        sent = self.children.sent()
        self.assertNotIn(b"6.6.6.6", sent)
        for name in [b"True-Client-IP", b"X-Real-IP", b"Forwarded:", b"CF-IPCountry", b"CF-Worker"]:
            self.assertNotIn(name, sent)
        self.assertEqual(sent.count(b"CF-Connecting-IP"), 1)
        self.assertIn(b"\r\nCF-Connecting-IP: 203.0.113.9\r\n", sent)

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


class TrustedProxyTests(ProxyCase):
    def setUp(self):
        super().setUp()
        self.factory = ProxyFactory(
            self.routes, self.supervisor, self.pool, self.admin, self.clock, trusted_proxies=["203.0.113.0/24"]
        )

    def forwarded(self, peer, extra=b""):
        channel = self.factory.buildProtocol(None)
        channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", peer, 1)))
        channel.dataReceived(
            get(extra=b"X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: https\r\n"
                      b"X-Forwarded-Host: example.com\r\nCF-Ray: 1-LHR\r\n" + extra)
        )
        head = self.children.sent().split(b"\r\n")
        return [line for line in head if line.lower().startswith((b"x-forwarded", b"cf-"))]

    def test_trusted_proxy_claims_kept(self):
        """
        Behind a trusted load balancer, the client it names is kept (CF-Connecting-IP
        names it too), the balancer is added to the chain, and its CF-* headers pass.
        """
        self.assertEqual(
            self.forwarded("203.0.113.9"),
            [b"CF-Ray: 1-LHR", b"X-Forwarded-For: 198.51.100.7, 203.0.113.9", b"X-Forwarded-Proto: https",
             b"X-Forwarded-Host: example.com", b"CF-Connecting-IP: 198.51.100.7"],
        )

    def test_trusted_proxy_names_the_client(self):
        """
        A trusted proxy's own CF-Connecting-IP (as Cloudflare in front sends it) names the
        client, once.
        """
        lines = self.forwarded("203.0.113.9", b"CF-Connecting-IP: 192.0.2.44\r\n")
        self.assertEqual([line for line in lines if line.startswith(b"CF-Connecting-IP")],
                         [b"CF-Connecting-IP: 192.0.2.44"])

    def test_others_replaced(self):
        """
        A client that is not a trusted proxy has its X-Forwarded claims replaced by funcplane's
        own view of it, and its CF-* headers dropped.
        """
        self.assertEqual(
            self.forwarded("192.0.2.1", b"CF-Connecting-IP: 198.51.100.7\r\n"),
            [b"X-Forwarded-For: 192.0.2.1", b"X-Forwarded-Proto: http", b"X-Forwarded-Host: hello.func.local",
             b"CF-Connecting-IP: 192.0.2.1"],
        )


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
        """
        An HTTP/1.0 client gets a body of unknown length as it is, ended by the close.
        """
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

    def test_client_backpressure_asked_again(self):
        """
        The client's transport asks to pause on every write while it is full; the child's
        connection, paused once, is resumed by the one resume that follows.
        """
        self.send(get())
        upstream = self.children.connections[0][1].transport
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
        self.channel.pauseProducing()
        self.channel.pauseProducing()
        self.assertEqual(upstream.producerState, "paused")
        self.channel.resumeProducing()
        self.assertEqual(upstream.producerState, "producing")
        self.children.answer(b"cdefghij")
        self.assertEqual(self.pool.idle_count(), 1)

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
        """
        An interim response (103 Early Hints) is not relayed; the final one is.
        """
        self.send(get())
        self.children.answer(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK)
        self.assertEqual(self.received(), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def test_redirect_passes(self):
        """
        A redirect reaches the client as the function sent it: funcplane does not follow it.
        """
        self.send(get())
        self.children.answer(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(
            self.received(),
            b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
        )


class ChildConnectionTests(ProxyCase):
    """
    Connections to the children are pooled and reused; a request that found none working
    is sent again only when nothing of it can have been acted on.
    """

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
        """
        A child's C{Connection: close} goes no further than funcplane, and its connection is not
        kept in the pool.
        """
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


class FailureTests(ProxyCase):
    def test_unknown_function(self):
        """
        A host that names no function is answered 404, and no version is asked for.
        """
        self.send(get(b"nope.func.local"))
        self.assertAnswer(b"404 Not Found", "function nope not found")
        self.assertEqual(self.supervisor.asked, [])

    def test_unknown_version(self):
        """
        A host that names a version or alias the function does not have is answered 404.
        """
        self.send(get(b"v9.hello.func.local"))
        self.assertAnswer(b"404 Not Found", "function hello has no version or alias v9")

    def test_version_gone(self):
        """
        A version the supervisor no longer knows (it was deleted since it was routed) is answered
        404 with the supervisor's message.
        """
        self.supervisor.result = fail(NoSuchVersion("version v1 of hello no longer exists"))
        self.send(get(b"v1.hello.func.local"))
        self.assertAnswer(b"404 Not Found", "version v1 of hello no longer exists")

    def test_start_failure(self):
        """
        A version whose child could not start is answered 503 with the error it printed.
        """
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

    def test_admin_host_on_function_connection(self):
        """
        On a connection that began with function traffic, a request for the admin host is
        answered 421, not handed to the admin API.
        """
        self.send(get())
        self.children.answer(OK)
        self.received()
        self.send(get(b"admin.example"))
        self.assertAnswer(
            b"421 Misdirected Request",
            "admin.example is not a function host; reach the admin API on a connection of its own",
        )

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

    def test_client_gone_while_starting(self):
        """
        A client that leaves while its version starts gets no connection made to the child once
        the child is ready.
        """
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
        """
        A client that leaves before its answer releases its version's lease.
        """
        self.send(get())
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})

    def test_unknown_host_starts_nothing(self):
        """
        A request for an unknown function leases and starts nothing.
        """
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
        """
        A version that wakes slower than the request timeout: the client gets 504, and no
        connection is made to the child once it is ready.
        """
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
        """
        When no more versions may run, the request is answered 503 with the supervisor's reason.
        """
        self.supervisor.result = fail(AtCapacity("2 versions are running (--max-running) and every one is busy"))
        self.send(get())
        answer = self.received()
        self.assertTrue(answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer)
        self.assertIn(b"every one is busy", answer)


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


class StateTests(ProxyCase):
    """
    An exchange's life is one state: each test follows one through its turns, and sees
    its lease released once, when it ends (the fake supervisor's lease refuses a second
    release).
    """

    def test_relayed(self):
        """
        A request relayed whole waits for its child in C{CONNECTING}, is C{SENT}, is
        C{RESPONDING} from the response head on, and ends C{RELAYED}.
        """
        self.supervisor.held = Deferred()
        self.send(get())
        exchange = self.exchange()
        self.assertEqual(exchange.state, CONNECTING)
        self.supervisor.held.callback(None)
        self.assertEqual(exchange.state, SENT)
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
        self.assertEqual(exchange.state, RESPONDING)
        self.children.answer(b"cd")
        self.assertEqual(exchange.state, RELAYED)
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})

    def test_client_leaves_while_child_starts(self):
        """
        A client that leaves while its version's child starts ends the exchange
        C{CLIENT_GONE} at once: the lease is released, the tail hears C{canceled}, and
        when the child is ready nothing more happens.
        """
        tails = self.factory.tails = RecordingTails()
        self.supervisor.held = Deferred()
        self.send(get())
        exchange = self.exchange()
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(exchange.state, CLIENT_GONE)
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})
        self.supervisor.held.callback(None)
        self.assertEqual(exchange.state, CLIENT_GONE)
        self.assertEqual(self.children.connections, [])
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})
        self.assertEqual([(t.status, t.outcome) for t in tails.done], [(None, "canceled")])

    def test_queued_until_its_turn(self):
        """
        Pipelined requests wait C{QUEUED}, holding no lease, until the one before them
        has ended; a client that leaves ends them all, and only leases taken are released.
        """
        self.send(get(path=b"/one") + get(b"v1.hello.func.local", b"/two") + get(path=b"/three"))
        first, second, third = self.channel._queue
        self.assertEqual((first.state, second.state, third.state), (SENT, QUEUED, QUEUED))
        self.assertEqual(self.supervisor.in_flight, {"id2": 1})
        self.children.answer(OK)
        self.assertEqual((first.state, second.state, third.state), (RELAYED, SENT, QUEUED))
        self.assertEqual(self.supervisor.in_flight, {"id2": 0, "id1": 1})
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual((second.state, third.state), (CLIENT_GONE, CLIENT_GONE))
        self.assertEqual(self.supervisor.in_flight, {"id2": 0, "id1": 0})
        self.assertEqual(self.supervisor.asked, ["id2", "id1"])

    def test_answered_without_a_lease(self):
        """
        A request that reaches no version, or is refused for its head, ends C{ANSWERED}
        in its turn without ever taking a lease.
        """
        self.send(get() + get(b"nope.func.local") + b"GET / HTTP/1.1\r\n\r\n")
        first, unrouted, hostless = self.channel._queue
        self.assertEqual((first.state, unrouted.state, hostless.state), (SENT, QUEUED, QUEUED))
        self.children.answer(OK)
        self.assertEqual((first.state, unrouted.state, hostless.state), (RELAYED, ANSWERED, ANSWERED))
        self.assertEqual((self.supervisor.asked, self.supervisor.in_flight), (["id2"], {"id2": 0}))
        self.assertTrue(self.channel.transport.disconnecting)

    def test_timed_out_while_connecting(self):
        """
        A request whose child does not start within the timeout ends C{ANSWERED} (504),
        releases its lease, and stays so when the child is ready at last.
        """
        self.supervisor.held = Deferred()
        self.send(get())
        exchange = self.exchange()
        self.clock.advance(30)
        self.assertEqual(exchange.state, ANSWERED)
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})
        self.supervisor.held.callback(None)
        self.assertEqual(exchange.state, ANSWERED)
        self.assertEqual(self.children.connections, [])

    def test_broken_off_then_gone(self):
        """
        A response the child broke off ends C{BROKEN_OFF}; the client's connection,
        aborted for it, then closes without changing that or releasing anything twice,
        and the tail hears of it once.
        """
        tails = self.factory.tails = RecordingTails()
        self.send(get())
        exchange = self.exchange()
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        self.children.connections[0][1].connectionLost(Failure(ConnectionLost()))
        self.assertEqual(exchange.state, BROKEN_OFF)
        self.assertTrue(self.channel.transport.disconnected)
        self.channel.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(exchange.state, BROKEN_OFF)
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})
        self.assertEqual([(t.status, t.outcome) for t in tails.done], [(200, "unknown")])

    def test_timed_out_while_responding(self):
        """
        A response that stalls past the timeout ends C{BROKEN_OFF}, not C{ANSWERED}: a
        504 cannot follow a head already sent.
        """
        self.send(get())
        exchange = self.exchange()
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        self.received()
        self.clock.advance(30)
        self.assertEqual(exchange.state, BROKEN_OFF)
        self.assertEqual(self.received(), b"")
        self.assertEqual(self.supervisor.in_flight, {"id2": 0})

    def test_stale_connection_sent_again(self):
        """
        A request whose pooled connection was stale goes from C{SENT} back to
        C{CONNECTING}, keeping its lease, and is C{SENT} again on a new connection.
        """
        self.send(get())
        self.children.answer(OK)
        self.send(get(path=b"/second"))
        exchange = self.exchange()
        self.assertEqual(exchange.state, SENT)
        self.children.connections[0][1].connectionLost(Failure(ConnectionLost()))
        self.assertEqual(exchange.state, CONNECTING)
        self.assertEqual(self.supervisor.in_flight, {"id2": 1})
        self.clock.advance(0.02)
        self.assertEqual(exchange.state, SENT)
        self.assertEqual(len(self.children.connections), 2)

    def test_paused_before_connected(self):
        """
        A client that cannot take more before the child's connection is made: the
        connection is paused as soon as it is made, and resumed with the client.
        """
        self.supervisor.held = Deferred()
        self.send(get())
        self.channel.pauseProducing()
        self.supervisor.held.callback(None)
        upstream = self.children.connections[0][1].transport
        self.assertEqual(upstream.producerState, "paused")
        self.channel.resumeProducing()
        self.assertEqual(upstream.producerState, "producing")


class LogLineTests(ProxyCase):
    """
    The exchange's log events name the function's host as text, never as a Python repr.
    """

    def capture(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    def test_host_as_text(self):
        """
        A timeout, a child that did not answer, and one that broke off its response are
        logged with the host as a string, and the lines read without a b'...'.
        """
        events = self.capture()
        self.send(get(b"V1.Hello.func.local"))
        self.clock.advance(30)
        self.channel = self.connect()
        self.send(get())
        self.children.connections[-1][1].connectionLost(Failure(ConnectionLost()))
        self.channel = self.connect()
        self.send(get())
        self.children.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
        self.children.connections[-1][1].connectionLost(Failure(ConnectionLost()))
        hosts = [e["host"] for e in events if "host" in e]
        self.assertEqual(hosts, ["V1.Hello.func.local", "hello.func.local", "hello.func.local"])
        for event in events:
            self.assertNotIn("b'", formatEvent(event))
