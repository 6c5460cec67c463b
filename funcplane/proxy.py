"""
The reverse proxy keyed on virtual host: funcplane's listener.

Every connection starts in L{ProxyChannel}, which parses HTTP/1.1 with httptools (llhttp,
the parser of Node.js, in its strict mode: conflicting or duplicate lengths, signed lengths,
bad chunk sizes, obs-fold and stray CR, LF or NUL are errors, never guesses).

- A connection whose first request is for a function host stays here. Each request is
  relayed to the version its Host resolves to, over a pooled keep-alive connection to the
  child's unix socket (L{funcplane.upstream}); request and response bodies stream both ways
  with backpressure and are re-framed on each hop. Pipelined requests are answered in order,
  one at a time.
- A connection whose first request is for any other host is handed, with every byte read so
  far, to the admin API's twisted.web C{Site}.

Hop-by-hop headers are dropped both ways, C{X-Forwarded-*} are set by funcplane, and a
response gains no header the function did not send beyond its framing.
"""

import ipaddress
from collections import deque
from http import HTTPStatus

import attrs
from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
    HttpRequestParser,
)
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from funcplane.errors import AtCapacity, NoSuchVersion, StartFailed
from funcplane.routing import NotRouted
from funcplane.upstream import CHUNKED, NO_BODY, IUpstreamHandler

HOP_BY_HOP = frozenset(
    [
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ]
)
SET_BY_PROXY = frozenset([b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"])
# Each hop frames the body itself; 100-continue is answered by funcplane.
NOT_FORWARDED = SET_BY_PROXY | frozenset([b"content-length", b"expect"])
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# A child's socket refusing a connection is retried this often, this far apart.
CONNECT_ATTEMPTS = 5
# Requests that may be sent again when a child failed before answering (RFC 9110 9.2.2).
IDEMPOTENT = frozenset([b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"])
CONNECT_RETRY_SECONDS = 0.02
LAST_CHUNK = b"0\r\n\r\n"


@attrs.frozen
class ProxyLimits:
    """
    What one client connection may make funcplane hold, and for how long.

    @ivar head_bytes: the request line and headers of one request (past it: 431).
    @ivar target_bytes: the request target (past it: 414).
    @ivar body_bytes: one request body, whether its length is declared or it is chunked
        (past it: 413, before the body is read).
    @ivar response_head_bytes: a function's status line and headers (past it: 502).
    @ivar head_seconds: from a request's first byte (or the connection's opening) to the
        end of its headers (past it: 408 and the connection closes).
    @ivar idle_seconds: a kept-alive connection waiting for its next request is closed.
    @ivar connections_per_ip: open connections from one client address; one more is
        answered 503 and closed (0: no limit).
    @ivar pipeline: requests read ahead of the one being answered.
    @ivar buffered: request body bytes held while they cannot be sent on (the child is
        starting, or the request waits behind another); beyond it, reading pauses.
    """

    head_bytes: int = 32 * 1024
    target_bytes: int = 8 * 1024
    body_bytes: int = 100 * 1024 * 1024
    response_head_bytes: int = 64 * 1024
    head_seconds: float = 10.0
    idle_seconds: float = 60.0
    connections_per_ip: int = 256
    pipeline: int = 16
    buffered: int = 64 * 1024


def forwardable(headers, also_drop=frozenset()):
    """
    The C{(name, value)} pairs of C{headers} without the hop-by-hop ones, those a
    C{Connection} header names, and C{also_drop} (lower-case names).
    """
    drop = HOP_BY_HOP | also_drop
    named = [value for name, value in headers if name.lower() == b"connection"]
    if named:
        drop = drop | {token.strip().lower() for value in named for token in value.split(b",")}
    return [(name, value) for name, value in headers if name.lower() not in drop]


def plain_response(status, message, close, head_only=False):
    """
    A complete response with a short plain-text body.
    """
    body = (message + "\n").encode("utf-8")
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode("ascii")),
        b"Content-Type: text/plain; charset=utf-8\r\n",
        b"Content-Length: %d\r\n" % (len(body),),
    ]
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    if not head_only:
        head.append(body)
    return b"".join(head)


class _HandOff(Exception):
    """
    Raised inside the parser: this connection belongs to the admin API.
    """


class _Refuse(Exception):
    """
    Raised inside the parser: answer the request being read with C{status} and close.
    """

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class _Gate:
    """
    Pauses reading from a transport while any reason to holds.
    """

    def __init__(self, transport):
        self._transport = transport
        self._reasons = set()

    def pause(self, reason):
        if not self._reasons:
            self._transport.pauseProducing()
        self._reasons.add(reason)

    def resume(self, reason):
        if reason in self._reasons:
            self._reasons.discard(reason)
            if not self._reasons:
                self._transport.resumeProducing()

    def set(self, reason, held):
        if held:
            self.pause(reason)
        else:
            self.resume(reason)


@implementer(IPushProducer)
class _Hold:
    """
    Holds a L{_Gate} for one reason while the transport it is registered with is full.
    """

    def __init__(self, gate, reason):
        self._gate = gate
        self._reason = reason

    def pauseProducing(self):
        self._gate.pause(self._reason)

    def resumeProducing(self):
        self._gate.resume(self._reason)

    def stopProducing(self):
        pass


class ProxyFactory(Factory):
    """
    Builds a L{ProxyChannel} for every connection to funcplane's listener.

    @param routes: an L{funcplane.interfaces.IRouteTable}.
    @param supervisor: provides C{lease(version_id)}, C{socket_for(version_id)} and
        C{request_timed_out(version_id)} (see L{funcplane.runtime.supervisor.Supervisor}).
    @param pool: an L{funcplane.interfaces.IUpstreamPool}.
    @param admin: the factory (a twisted.web C{Site}) for connections to the admin API.
    @param clock: an C{IReactorTime}, for request timeouts.
    @param request_timeout: seconds a function may take to begin its response, and
        then to send each next piece of it: past that the client gets 504 (or, once the
        response began, its connection is closed), and the supervisor checks whether the
        child is wedged.
    @param trusted_proxies: networks (CIDR text) of load balancers in front of funcplane,
        whose C{X-Forwarded-*} headers are kept; everyone else's are replaced.
    """

    def __init__(
        self,
        routes,
        supervisor,
        pool,
        admin,
        clock,
        limits=ProxyLimits(),
        request_timeout=60.0,
        trusted_proxies=(),
    ):
        self._trusted = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_proxies)
        self._open = {}
        self.routes = routes
        self.supervisor = supervisor
        self.pool = pool
        self.admin = admin
        self.limits = limits
        self.clock = clock
        self.request_timeout = request_timeout

    def buildProtocol(self, addr):
        return ProxyChannel(self)

    def opened(self, peer):
        """
        Count a connection from C{peer}; whether it is within the per-address limit.
        """
        count = self._open.get(peer, 0) + 1
        self._open[peer] = count
        limit = self.limits.connections_per_ip
        return not limit or count <= limit

    def closed(self, peer):
        count = self._open.get(peer, 0) - 1
        if count > 0:
            self._open[peer] = count
        else:
            self._open.pop(peer, None)

    def trusts(self, peer):
        """
        Whether the client at C{peer} (an address as text) is a proxy whose
        C{X-Forwarded-*} headers funcplane keeps.
        """
        if not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)


@implementer(IPushProducer)
class ProxyChannel(Protocol):
    """
    One client connection. Reads requests, answers them in order through L{_Exchange}s,
    and is the producer of the client transport, so a client that reads slowly pauses the
    child that is answering it.
    """

    def __init__(self, factory):
        self._factory = factory
        self._limits = factory.limits
        self._parser = HttpRequestParser(self)
        self._held = []
        self._proxying = False
        self._admin = None
        self._queue = deque()
        self._parsing = None
        self._head_bytes = 0
        self._buffered = 0
        self._reading = True
        self.gate = None
        self.writes_paused = False
        self.secure = False
        self._timer = None
        self._peer = None

    def connectionMade(self):
        self.gate = _Gate(self.transport)
        self.secure = ISSLTransport.providedBy(self.transport)
        self._peer = getattr(self.transport.getPeer(), "host", "unix")
        if not self._factory.opened(self._peer):
            self._reading = False
            self._parser = None
            self.transport.write(
                plain_response(503, "too many connections from your address; close some", True)
            )
            self.transport.loseConnection()
            return
        self._wait(self._limits.head_seconds, self._head_too_slow)

    # Deadlines: for a request's headers, and for the next request on an idle connection.

    def _wait(self, seconds, then=None):
        """
        Call C{then} in C{seconds} unless called again first (L{None}: stop waiting).
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if seconds is not None:
            self._timer = self._factory.clock.callLater(seconds, then)

    def _head_too_slow(self):
        self._timer = None
        if self._parsing is None and self._held in ([], None) and not self._queue:
            # Nothing of a request arrived: just close.
            self._reading = False
            self.transport.loseConnection()
            return
        self._reject(408, "the request headers took too long")

    def _idle_too_long(self):
        self._timer = None
        if not self._queue and self._parsing is None:
            self._reading = False
            self.transport.loseConnection()

    # Receiving.

    def dataReceived(self, data):
        if self._admin is not None:
            self._admin.dataReceived(data)
            return
        if not self._reading:
            return
        if self._held is not None:
            self._held.append(data)
        if self._in_head():
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except HttpParserCallbackError as e:
            if isinstance(e.__context__, _HandOff):
                self._hand_off()
                return
            if isinstance(e.__context__, _Refuse):
                self._reject(e.__context__.status, str(e.__context__))
                return
            raise
        except HttpParserUpgrade:
            # funcplane does not relay protocol switches (WebSocket) yet: the request is
            # answered as an ordinary one and nothing after it is read.
            self._stop_reading()
        except HttpParserError as e:
            self._reject(400, f"malformed request: {e}")
            return
        if self._reading and self._in_head() and self._head_bytes > self._limits.head_bytes:
            self._reject(431, "the request line and headers are too large")

    def _in_head(self):
        return self._parsing is None or self._parsing.method is None

    def on_message_begin(self):
        self._parsing = _Exchange(self, self._factory) if self._reading else None
        self._wait(self._limits.head_seconds, self._head_too_slow)

    def on_url(self, url):
        if self._parsing is not None:
            self._parsing.url += url
            if len(self._parsing.url) > self._limits.target_bytes:
                raise _Refuse(414, "the request target is too long")
            self._count_head(len(url))

    def on_header(self, name, value):
        if self._parsing is not None and self._parsing.method is None:
            self._parsing.headers.append((name, value))
            self._count_head(len(name) + len(value) + 4)

    def _count_head(self, size):
        self._parsing.head_size += size
        if self._parsing.head_size > self._limits.head_bytes:
            raise _Refuse(431, "the request line and headers are too large")

    def on_headers_complete(self):
        exchange = self._parsing
        if exchange is None:
            return
        self._head_bytes = 0
        self._wait(None)
        parser = self._parser
        exchange.request_head(
            parser.get_method(), parser.get_http_version() == "1.1", parser.should_keep_alive()
        )
        if not self._proxying:
            if exchange.for_admin(self._factory.routes):
                raise _HandOff()
            self._begin_proxying()
        self._enqueue(exchange)

    def on_body(self, body):
        exchange = self._parsing
        if exchange is not None:
            exchange.received += len(body)
            if exchange.received > self._limits.body_bytes:
                raise _Refuse(413, f"the request body is over {self._limits.body_bytes} bytes")
            exchange.request_body(body)

    def on_message_complete(self):
        exchange, self._parsing = self._parsing, None
        if exchange is None:
            return
        exchange.request_complete()
        if not exchange.keep_alive:
            self._stop_reading()

    def _enqueue(self, exchange):
        exchange.queued = True
        self._queue.append(exchange)
        self.gate.set("pipeline", len(self._queue) > self._limits.pipeline)
        if len(self._queue) == 1:
            exchange.start()

    def _reject(self, status, message):
        """
        The request being read is broken: answer it with C{status} in its turn, read
        nothing more, and close.
        """
        self._begin_proxying()
        exchange, self._parsing = self._parsing, None
        self._reading = False
        self._parser = None
        if exchange is not None and exchange.queued:
            exchange.request_broken(status, message)
            return
        exchange = _Exchange(self, self._factory)
        exchange.answer_with(status, message)
        exchange.request_done = True
        exchange.close_after = True
        self._enqueue(exchange)

    def _stop_reading(self):
        self._reading = False
        self._parser = None
        if not self._queue and self._proxying:
            self.transport.loseConnection()

    def _begin_proxying(self):
        if not self._proxying:
            self._proxying = True
            self._held = None
            self.transport.registerProducer(self, True)

    def _hand_off(self):
        self._wait(None)
        self._parser = None
        self._parsing = None
        data, self._held = b"".join(self._held), None
        self._admin = self._factory.admin.buildProtocol(self.transport.getPeer())
        self._admin.makeConnection(self.transport)
        self._admin.dataReceived(data)

    def buffered(self, change):
        """
        Count request body bytes held in memory (or released, when negative).
        """
        self._buffered += change
        self.gate.set("buffered", self._buffered > self._limits.buffered)

    # Answering.

    def write(self, data):
        self.transport.write(data)

    def exchange_done(self, exchange):
        """
        C{exchange}, the first in the queue, has been answered completely.
        """
        if not self._queue or self._queue[0] is not exchange:
            return
        self._queue.popleft()
        if exchange.close_after or (not self._reading and not self._queue):
            self._close()
            return
        self.gate.set("pipeline", len(self._queue) > self._limits.pipeline)
        if self._queue:
            self._queue[0].start()
        elif self._parsing is None:
            self._wait(self._limits.idle_seconds, self._idle_too_long)

    def abort(self):
        """
        A response broke off after it began: close at once so the client cannot take it
        for a complete one.
        """
        self._close()
        self.transport.abortConnection()

    def _close(self):
        self._wait(None)
        self._reading = False
        self._parser = None
        queue, self._queue = self._queue, deque()
        for exchange in queue:
            exchange.client_gone()
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self._wait(None)
        self._factory.closed(self._peer)
        if self._admin is not None:
            self._admin.connectionLost(reason)
            return
        self._reading = False
        self._parser = None
        queue, self._queue = self._queue, deque()
        for exchange in queue:
            exchange.client_gone()
        if self._parsing is not None and not self._parsing.queued:
            self._parsing.client_gone()
        self._parsing = None

    # IPushProducer, for the client transport.

    def pauseProducing(self):
        self.writes_paused = True
        if self._queue:
            self._queue[0].pause_response()

    def resumeProducing(self):
        self.writes_paused = False
        if self._queue:
            self._queue[0].resume_response()

    def stopProducing(self):
        pass


@implementer(IUpstreamHandler)
class _Exchange:
    """
    One request and its response: routes it, waits for its child, relays it.
    """

    log = Logger()

    def __init__(self, channel, factory):
        self._channel = channel
        self._factory = factory
        self.url = b""
        self.headers = []
        self.method = None
        self.http11 = True
        self.keep_alive = True
        self.host = None
        self.body = None
        self.queued = False
        self.head_size = 0
        self.received = 0
        self.request_done = False
        self.close_after = False
        self._expect_continue = False
        self._canned = None
        self._pending = []
        self._pending_size = 0
        self._waiting = None
        self._upstream = None
        self._upstream_paused = False
        self._responded = False
        self._chunked_response = False
        self._complete = False
        self._gone = False
        self._version_id = None
        self._lease = None
        self._timer = None
        self._abandoned = False
        self._connect_attempts = 0

    def _values(self, name):
        return [value for key, value in self.headers if key.lower() == name]

    # The request, as the channel reads it.

    def request_head(self, method, http11, keep_alive):
        self.method = method
        self.http11 = http11
        # HTTP/1.0 clients get one response per connection.
        self.keep_alive = keep_alive and http11
        hosts = self._values(b"host")
        self.host = hosts[0] if len(hosts) == 1 else None
        encodings = self._values(b"transfer-encoding")
        lengths = self._values(b"content-length")
        if encodings:
            self.body = CHUNKED
        elif lengths:
            self.body = int(lengths[0])
        limit = self._factory.limits.body_bytes
        self._expect_continue = http11 and any(
            value.lower() == b"100-continue" for value in self._values(b"expect")
        )
        if len(hosts) != 1:
            self.answer_with(400, "a request needs exactly one Host header", close=True)
        elif not (self.url.startswith(b"/") or (self.url == b"*" and method == b"OPTIONS")):
            self.answer_with(400, "the request target must be a path, such as /index.html")
        elif encodings and [v.strip().lower() for v in encodings] != [b"chunked"]:
            self.answer_with(501, "only the chunked transfer coding is supported")
        elif self.body is not CHUNKED and self.body is not None and self.body > limit:
            self.answer_with(413, f"the request body is over {limit} bytes", close=True)

    def for_admin(self, routes):
        """
        Whether this request, the first on its connection, is for the admin API.
        """
        if self.host is None:
            # Broken Host headers are answered by the proxy, strictly.
            return False
        return not routes.is_function_host(self.host)

    def answer_with(self, status, message, close=False):
        """
        Answer with C{status} instead of relaying, when the request's turn comes, and
        close the connection after it when C{close}.
        """
        if self._canned is None:
            self._canned = (status, message)
            self.close_after = self.close_after or close

    def request_body(self, data):
        if self._complete or self._gone or self._canned is not None:
            return
        if self._upstream is not None:
            self._upstream.write(self._frame(data))
        else:
            self._pending.append(data)
            self._pending_size += len(data)
            self._channel.buffered(len(data))

    def request_complete(self):
        self.request_done = True
        if self._upstream is not None and self.body is CHUNKED:
            self._upstream.write(LAST_CHUNK)

    def request_broken(self, status, message):
        """
        The body turned out malformed after the request was queued.
        """
        self.close_after = True
        if self._upstream is not None or self._waiting is not None:
            self._abandon_upstream()
            if self._responded:
                self._channel.abort()
                return
            self._plain(status, message)
            self._finish()
        else:
            self.answer_with(status, message)

    def _frame(self, data):
        if self.body is CHUNKED:
            return b"%x\r\n%s\r\n" % (len(data), data)
        return data

    # Relaying.

    def start(self):
        if self._canned is not None:
            self._plain(*self._canned)
            self._finish()
            return
        routes = self._factory.routes
        if not routes.is_function_host(self.host):
            self._plain(
                421,
                f"{self.host.decode('ascii', 'replace')} is not a function host; "
                "reach the admin API on a connection of its own",
            )
            self._finish()
            return
        try:
            self._version_id = routes.resolve(self.host)
        except NotRouted as e:
            self._plain(404, str(e))
            self._finish()
            return
        self._lease = self._factory.supervisor.lease(self._version_id)
        self._timer = self._factory.clock.callLater(self._factory.request_timeout, self._timed_out)
        self._connect()

    def _connect(self):
        self._waiting = None
        factory = self._factory
        d = factory.supervisor.socket_for(self._version_id)
        d.addCallback(factory.pool.acquire)
        self._waiting = d
        d.addCallbacks(self._attach, self._not_connected)

    def _attach(self, upstream):
        self._waiting = None
        if self._gone or self._complete or self._abandoned:
            upstream.finished(reusable=True)
            return
        self._upstream = upstream
        upstream.transport.registerProducer(_Hold(self._channel.gate, "upstream"), True)
        if self._channel.writes_paused:
            self.pause_response()
        upstream.send(self, self._upstream_head(), head_request=self.method == b"HEAD")
        if self._expect_continue and not self.request_done and not self._pending:
            self._channel.write(CONTINUE)
        pending, self._pending = self._pending, []
        if pending:
            upstream.write(b"".join(map(self._frame, pending)))
            self._channel.buffered(-self._pending_size)
            self._pending_size = 0
        if self.request_done and self.body is CHUNKED:
            upstream.write(LAST_CHUNK)

    def _forwarded(self):
        """
        The X-Forwarded-For, -Proto and -Host values: funcplane's own view of the client,
        unless the client is a trusted proxy, whose claims are kept (its address is added
        to the For chain).
        """
        channel = self._channel
        peer = getattr(channel.transport.getPeer(), "host", "unix")
        proto = b"https" if channel.secure else b"http"
        if not self._factory.trusts(peer):
            return peer.encode("ascii"), proto, self.host
        chain = b", ".join(self._values(b"x-forwarded-for") + [peer.encode("ascii")])
        claimed_proto = self._values(b"x-forwarded-proto")
        claimed_host = self._values(b"x-forwarded-host")
        return (
            chain,
            claimed_proto[-1] if claimed_proto else proto,
            claimed_host[-1] if claimed_host else self.host,
        )

    def _upstream_head(self):
        head = [self.method, b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in forwardable(self.headers, NOT_FORWARDED):
            head += (name, b": ", value, b"\r\n")
        forwarded_for, proto, host = self._forwarded()
        head += (
            b"X-Forwarded-For: ",
            forwarded_for,
            b"\r\nX-Forwarded-Proto: ",
            proto,
            b"\r\nX-Forwarded-Host: ",
            host,
            b"\r\n",
        )
        if self.body is CHUNKED:
            head.append(b"Transfer-Encoding: chunked\r\n")
        elif self.body is not None:
            head.append(b"Content-Length: %d\r\n" % (self.body,))
        head.append(b"\r\n")
        return b"".join(head)

    def _not_connected(self, failure):
        self._waiting = None
        if self._gone or self._complete or self._abandoned:
            return
        if failure.check(ConnectError) and self._connect_attempts < CONNECT_ATTEMPTS:
            # The child just died and funcplane has not heard yet (its exit is reported a
            # moment later): nothing was sent, so try again once it has.
            self._connect_attempts += 1
            self._waiting = self._factory.clock.callLater(CONNECT_RETRY_SECONDS, self._connect)
            return
        if failure.check(NoSuchVersion):
            status, message = 404, str(failure.value)
        elif failure.check(StartFailed):
            status, message = 503, f"the function could not start: {failure.value}"
        elif failure.check(AtCapacity):
            status, message = 503, str(failure.value)
        else:
            self.log.failure("could not reach the function at {host}", failure, host=self.host)
            status, message = 502, "the function did not answer"
        self._plain(status, message)
        self._finish()

    # The response, as the upstream connection parses it.

    def response_head(self, status, reason, headers, framing):
        if self._gone:
            return
        head = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
        for name, value in forwardable(headers):
            head += (name, b": ", value, b"\r\n")
        if framing is not NO_BODY and not any(
            name.lower() == b"content-length" for name, _ in headers
        ):
            if self.http11:
                self._chunked_response = True
                head.append(b"Transfer-Encoding: chunked\r\n")
            else:
                # An HTTP/1.0 client learns where the body ends from the close.
                self.close_after = True
        if self._unread_body() or not self.keep_alive:
            self.close_after = True
        if self.close_after:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        self._responded = True
        self._channel.write(b"".join(head))
        self._rearm()

    def response_body(self, data):
        if self._gone:
            return
        self._rearm()
        if self._chunked_response:
            self._channel.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._channel.write(data)

    def response_done(self, upstream):
        self._detach()
        upstream.finished(reusable=self.request_done)
        if self._gone:
            return
        if self._chunked_response:
            self._channel.write(LAST_CHUNK)
        self._finish()

    def upstream_failed(self, reason, stale):
        self._detach()
        if self._gone or self._complete:
            return
        if (
            stale
            and self.body is None
            and self.method in IDEMPOTENT
            and self._connect_attempts < CONNECT_ATTEMPTS
        ):
            # A kept-alive connection the child closed as it was reused: nothing was
            # answered, so send it again on another.
            self._connect_attempts += 1
            self._waiting = self._factory.clock.callLater(CONNECT_RETRY_SECONDS, self._connect)
            return
        if self._responded:
            self.log.info(
                "the function at {host} broke off its response: {reason}",
                host=self.host,
                reason=reason.getErrorMessage(),
            )
            self._complete = True
            self._settle()
            self._channel.abort()
            return
        self.log.info(
            "the function at {host} did not answer: {reason}",
            host=self.host,
            reason=reason.getErrorMessage(),
        )
        self._plain(502, "the function did not answer")
        self._finish()

    # Time.

    def _rearm(self):
        if self._timer is not None and self._timer.active():
            self._timer.reset(self._factory.request_timeout)

    def _timed_out(self):
        self._timer = None
        if self._gone or self._complete:
            return
        seconds = self._factory.request_timeout
        self.log.info(
            "the function at {host} did not answer within {seconds:g} s", host=self.host, seconds=seconds
        )
        self._factory.supervisor.request_timed_out(self._version_id)
        self._abandon_upstream()
        if self._responded:
            self._complete = True
            self._settle()
            self._channel.abort()
            return
        self.close_after = True
        self._plain(504, f"the function did not answer within {seconds:g} seconds")
        self._finish()

    # Flow control.

    def pause_response(self):
        if self._upstream is not None and not self._upstream_paused:
            self._upstream_paused = True
            self._upstream.transport.pauseProducing()

    def resume_response(self):
        if self._upstream is not None and self._upstream_paused:
            self._upstream_paused = False
            self._upstream.transport.resumeProducing()

    def _detach(self):
        upstream, self._upstream = self._upstream, None
        if upstream is None:
            return
        upstream.transport.unregisterProducer()
        self._channel.gate.resume("upstream")
        if self._upstream_paused:
            self._upstream_paused = False
            upstream.transport.resumeProducing()

    def _abandon_upstream(self):
        self._abandoned = True
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            waiting.cancel()
        upstream = self._upstream
        if upstream is not None:
            self._detach()
            upstream.abandon()

    # Ending.

    def _unread_body(self):
        """
        Whether some of the request body is still to come: a response sent now must
        close the connection, or what is left would be read as the next request.
        """
        return not self.request_done and (self.body is CHUNKED or bool(self.body))

    def _plain(self, status, message):
        if self._unread_body() or not self.keep_alive:
            self.close_after = True
        self._responded = True
        self._channel.write(
            plain_response(status, message, self.close_after, head_only=self.method == b"HEAD")
        )

    def _finish(self):
        self._complete = True
        self._drop_pending()
        self._settle()
        self._channel.exchange_done(self)

    def _settle(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._lease is not None:
            lease, self._lease = self._lease, None
            lease.release()

    def _drop_pending(self):
        if self._pending_size:
            self._channel.buffered(-self._pending_size)
        self._pending = []
        self._pending_size = 0

    def client_gone(self):
        if self._gone:
            return
        self._gone = True
        self._drop_pending()
        self._settle()
        if not self._complete:
            self._abandon_upstream()
