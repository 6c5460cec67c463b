"""
The reverse proxy keyed on virtual host: funcplane's listener.

Every connection starts in L{ProxyChannel}, which parses HTTP/1.1 with httptools (llhttp,
the parser of Node.js, in its strict mode: conflicting or duplicate lengths, signed lengths,
bad chunk sizes, obs-fold and stray CR, LF or NUL are errors, never guesses).

- A connection whose first request is for a function host stays here. The channel collects
  each request's line and headers, reads them into a L{funcplane.edge.http1.RequestHead}, and
  makes the request an L{funcplane.edge.exchange.Exchange}, which relays it to the version its
  Host resolves to over a pooled keep-alive connection to the child's unix socket
  (L{funcplane.edge.upstream}); bodies stream both ways with backpressure. Pipelined requests
  are answered in order, one at a time. After a WebSocket request, what the client sends goes
  to its L{funcplane.edge.tunnel.Tunnel}.
- A connection whose first request is for any other host is handed, with every byte read so
  far, to the admin API's twisted.web C{Site}.

The channel enforces what one connection may make funcplane hold (L{ProxyLimits}): sizes
(a chunked body's framing and trailers included), deadlines, read-ahead, connections and
WebSockets per client address. A connection closed while its client may still be sending
closes in stages (L{funcplane.edge.linger}), so the client reads why.
"""

from collections import deque

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from funcplane.deadline import Deadline
from funcplane.edge.exchange import Exchange
from funcplane.edge.forwarding import TrustedProxies
from funcplane.edge.gate import Gate, Hold
from funcplane.edge.http1 import CHUNKED, FRAMING_SLACK, framing_excess, plain_response, read_head
from funcplane.edge.http1 import unreadable
from funcplane.edge.limits import ProxyLimits
from funcplane.edge.linger import Lingering
from funcplane.edge.shares import Shares
from funcplane.edge.tunnel import Tunnels


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


class ProxyFactory(Factory):
    """
    Builds a L{ProxyChannel} for every connection to funcplane's listener.

    @param routes: an L{funcplane.interfaces.IRouteTable}.
    @param supervisor: an L{funcplane.interfaces.ISupervisor}; the edge uses its C{lease},
        C{running_socket}, C{ensure_running} and C{request_timed_out}.
    @param pool: an L{funcplane.interfaces.IUpstreamPool}.
    @param admin: the factory (a twisted.web C{Site}) for connections to the admin API.
    @param clock: an C{IReactorTime}, for request timeouts.
    @param request_timeout: seconds a function may take to begin its response, and
        then to send each next piece of it: past that the client gets 504 (or, once the
        response began, its connection is closed), and the supervisor checks whether the
        child is wedged.
    @param trusted_proxies: networks (CIDR text) of load balancers in front of funcplane,
        whose C{X-Forwarded-*}, C{CF-*} and other claims about the client are kept;
        everyone else's are dropped or replaced (L{funcplane.edge.forwarding}).
    @param limits: the L{ProxyLimits} of every connection.
    @param tails: an L{funcplane.interfaces.ITailSink}, told of finished requests while a
        tail is live (or L{None}).
    @ivar connections: the L{Shares} of the client addresses: their open connections.
    @ivar tunnels: the L{Tunnels} (WebSockets) open through the listener.
    """

    # Not "Starting factory <funcplane.edge.listener.ProxyFactory object at 0x...>".
    noisy = False

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
        tails=None,
    ):
        self.trusted = TrustedProxies(trusted_proxies)
        self.connections = Shares(limits.connections_per_ip)
        self.tunnels = Tunnels(limits.tunnels_per_version, limits.tunnels_per_client)
        self.routes = routes
        self.supervisor = supervisor
        self.pool = pool
        self.admin = admin
        self.limits = limits
        self.clock = clock
        self.request_timeout = request_timeout
        self.tails = tails

    def buildProtocol(self, addr):
        return ProxyChannel(self)


@implementer(IPushProducer)
class ProxyChannel(Protocol):
    """
    One client connection. Reads requests, answers them in order through
    L{funcplane.edge.exchange.Exchange}s, and is the producer of the client transport, so a
    client that reads slowly pauses the child that is answering it.

    @ivar forwarded_for: the client's address, as C{X-Forwarded-For} gives it.
    @ivar forwarded_proto: C{https} or C{http}, as C{X-Forwarded-Proto} gives it.
    @ivar trusted: whether the client is a proxy whose C{X-Forwarded-*} claims are kept.
    """

    def __init__(self, factory):
        self.factory = factory
        self._limits = factory.limits
        self._parser = HttpRequestParser(self)
        self._held = []
        self._proxying = False
        # The protocol the connection was handed to: the admin API's, or a Lingering.
        self._delegate = None
        self._queue = deque()
        # The request whose head is being read: its target and headers so far, its size.
        self._url = b""
        self._headers = None
        self._head_size = 0
        # The exchange whose body is being read, how much of it in how many chunks, and
        # how far its framing runs beyond what that allows.
        self._parsing = None
        self._received = 0
        self._chunks = 0
        self._framing = 0
        self._head_bytes = 0
        # Whether a request was refused before it was read whole.
        self._refused = False
        self._buffered = 0
        self._reading = True
        self.gate = None
        self.upstream_hold = None
        self.writes_paused = False
        self.secure = False
        self._deadline = Deadline(factory.clock)
        #: The deadline of the exchange being answered (one at a time per connection).
        self.request_deadline = Deadline(factory.clock)
        self.peer = None
        self.forwarded_for = None
        self.forwarded_proto = None
        self.trusted = False
        self._upgrading = None
        self._tunnel = None

    def connectionMade(self):
        self.write = self.transport.write
        self.gate = Gate(self.transport)
        #: Registered with the connection to the child that answers: while it is full,
        #: the client is not read.
        self.upstream_hold = Hold(self.gate, "upstream")
        self.secure = ISSLTransport.providedBy(self.transport)
        self.peer = getattr(self.transport.getPeer(), "host", "unix")
        # Counted even when refused: connectionLost gives it back either way.
        connections = self.factory.connections
        full = connections.full(self.peer)
        connections.add(self.peer)
        if full:
            self._reading = False
            self._parser = None
            self.transport.write(
                plain_response(503, "too many connections from your address; close some", True)
            )
            self.transport.loseConnection()
            return
        self.forwarded_for = self.peer.encode("ascii")
        self.forwarded_proto = b"https" if self.secure else b"http"
        self.trusted = self.factory.trusted.trusts(self.peer)
        self._deadline.set(self._limits.head_seconds, self._head_too_slow)

    # Deadlines: for a request's headers, and for the next request on an idle connection.

    def _stop_timers(self):
        self._deadline.stop()
        self.request_deadline.stop()

    def _between_requests(self):
        """
        Whether no request is being read.
        """
        return self._headers is None and self._parsing is None

    def _head_too_slow(self):
        if self._between_requests() and not self._held and not self._queue:
            # Nothing of a request arrived: just close.
            self._reading = False
            self.transport.loseConnection()
            return
        self._reject(408, "the request headers took too long")

    def _idle_too_long(self):
        if not self._queue and self._between_requests():
            self._reading = False
            self.transport.loseConnection()

    # Receiving.

    def dataReceived(self, data):
        delegate = self._delegate
        if delegate is not None:
            delegate.dataReceived(data)
            return
        if not self._reading:
            return
        if self._tunnel is not None:
            self._tunnel.from_client(data)
            return
        if self._held is not None:
            self._held.append(data)
        # The head's size is counted twice: exactly, as httptools reports each header
        # (L{on_url}, L{on_header}), and here in raw bytes, because httptools holds a header value
        # until it is complete, and a value that never ends would otherwise grow unseen.
        # So is a chunked body's framing, which it never reports: bytes fed, not delivered.
        body = self._parsing
        if body is None:
            self._head_bytes += len(data)
        elif body.head.body is CHUNKED:
            received, chunks = self._received, self._chunks
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
        except HttpParserUpgrade as e:
            exchange, self._upgrading = self._upgrading, None
            if exchange is None:
                # An upgrade to anything but WebSocket: the request is answered as an
                # ordinary one and nothing after it is read.
                self._stop_reading()
                return
            # Whatever follows a WebSocket request belongs to the WebSocket.
            self._parser = None
            self._tunnel = exchange.tunnel
            rest = data[e.args[0] :]
            if rest:
                self._tunnel.from_client(rest)
            return
        except HttpParserError as e:
            self._reject(400, f"malformed request: {e}")
            return
        if not self._reading:
            return
        if body is None:
            if self._parsing is None and self._head_bytes > self._limits.head_bytes:
                self._reject(431, "the request line and headers are too large")
        elif self._parsing is body and body.head.body is CHUNKED:
            delivered, chunks = self._received - received, self._chunks - chunks
            self._framing = framing_excess(self._framing, len(data), delivered, chunks)
            if self._framing > FRAMING_SLACK:
                self._reject(400, f"the chunked body's framing (chunk extensions, trailers) runs"
                             f" over {FRAMING_SLACK} bytes beyond its data; send plain chunk sizes")

    def on_message_begin(self):
        if self._reading:
            self._url = b""
            self._headers = []
            self._head_size = 0
            self._deadline.set(self._limits.head_seconds, self._head_too_slow)

    def on_url(self, url):
        if self._headers is not None:
            self._url += url
            if len(self._url) > self._limits.target_bytes:
                raise _Refuse(414, "the request target is too long")
            self._head_size += len(url)
            if self._head_size > self._limits.head_bytes:
                raise _Refuse(431, "the request line and headers are too large")

    def on_header(self, name, value):
        # After the head, only trailers come here; they are dropped. (Counted inline, as
        # on_url does: this runs for every header of every request.)
        headers = self._headers
        if headers is not None:
            headers.append((name, value))
            self._head_size += len(name) + len(value) + 4
            if self._head_size > self._limits.head_bytes:
                raise _Refuse(431, "the request line and headers are too large")

    def on_headers_complete(self):
        headers = self._headers
        if headers is None:
            return
        self._headers = None
        self._head_bytes = 0
        self._deadline.clear()
        parser = self._parser
        head = read_head(
            parser.get_method(),
            self._url,
            headers,
            parser.get_http_version() == "1.1",
            parser.should_keep_alive(),
        )
        if not self._proxying:
            # Broken Host headers are answered by the proxy, strictly.
            if head.host is not None and not self.factory.routes.is_function_host(head.host):
                raise _HandOff()
            self._begin_proxying()
        exchange = self._parsing = Exchange(self, head)
        self._received = self._framing = 0
        self._enqueue(exchange)

    def on_body(self, body):
        exchange = self._parsing
        if exchange is not None:
            self._received += len(body)
            if self._received > self._limits.body_bytes:
                raise _Refuse(413, f"the request body is over {self._limits.body_bytes} bytes")
            exchange.request_body(body)

    def on_chunk_header(self):
        self._chunks += 1

    def on_message_complete(self):
        exchange, self._parsing = self._parsing, None
        if exchange is None:
            return
        exchange.request_complete()
        if exchange.head.upgrade:
            self._upgrading = exchange
        elif not exchange.head.keep_alive:
            self._stop_reading()

    def _enqueue(self, exchange):
        self._queue.append(exchange)
        self.gate.set("pipeline", len(self._queue) > self._limits.pipeline)
        if len(self._queue) == 1:
            exchange.start()

    def _reject(self, status, message):
        """
        The request being read is broken: answer it with C{status} in its turn, read
        nothing more, and close (unless reading had already stopped).
        """
        if not self._reading:
            return
        self._begin_proxying()
        exchange, self._parsing = self._parsing, None
        self._headers = None
        self._reading = False
        self._parser = None
        self._refused = True
        if exchange is not None:
            # Its head was read: the exchange answers, or breaks off what it began.
            exchange.request_broken(status, message)
            return
        self._enqueue(Exchange(self, unreadable(status, message)))

    def _stop_reading(self):
        if not self._reading:
            return
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
        self._stop_timers()
        self._parser = None
        self._parsing = None
        self._headers = None
        data, self._held = b"".join(self._held), None
        self._delegate = self.factory.admin.buildProtocol(self.transport.getPeer())
        self._delegate.makeConnection(self.transport)
        self._delegate.dataReceived(data)

    def buffered(self, change):
        """
        Count request body bytes held in memory (or released, when negative).
        """
        self._buffered += change
        self.gate.set("buffered", self._buffered > self._limits.buffered)

    # Answering.

    def write(self, data):
        """
        Write to the client. (L{connectionMade} puts the transport's own C{write} in its
        place: every piece of every response comes through here.)
        """
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
        elif self._headers is None and self._parsing is None:
            self._deadline.set(self._limits.idle_seconds, self._idle_too_long)

    def abort(self):
        """
        A response broke off after it began: close at once so the client cannot take it
        for a complete one.
        """
        self._end_exchanges()
        self.transport.abortConnection()

    def _close(self):
        # A client whose request was not read whole may still be sending: a close now
        # would reset the connection, destroying the answer before the client reads it.
        linger = self._refused or not self._between_requests()
        self._end_exchanges()
        if not linger:
            self.transport.loseConnection()
            return
        if self._proxying:
            self.transport.unregisterProducer()
        limits = self._limits
        self._delegate = Lingering(self.factory.clock, limits.linger_seconds, limits.linger_bytes)
        self._delegate.makeConnection(self.transport)

    def _end_exchanges(self):
        """
        Read nothing more and drop every exchange not yet answered.
        """
        self._stop_timers()
        self._reading = False
        self._parser = None
        # What httptools still parses of the data being fed goes nowhere.
        self._parsing = self._headers = None
        queue, self._queue = self._queue, deque()
        for exchange in queue:
            exchange.client_gone()

    def connectionLost(self, reason):
        self.factory.connections.remove(self.peer)
        if self._delegate is not None:
            self._stop_timers()
            self._delegate.connectionLost(reason)
            return
        self._end_exchanges()

    # IPushProducer, for the client transport, which asks again on every write while it
    # is full: the exchange hears of the first.

    def pauseProducing(self):
        if not self.writes_paused:
            self.writes_paused = True
            if self._queue:
                self._queue[0].pause_response()

    def resumeProducing(self):
        if self.writes_paused:
            self.writes_paused = False
            if self._queue:
                self._queue[0].resume_response()

    def stopProducing(self):
        pass
