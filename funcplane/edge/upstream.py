"""
HTTP/1.1 connections from the proxy to the children: one request at a time on each, kept
alive and pooled per child socket.

A connection does not interpret what it relays. It writes the request head and body bytes
it is given and reports the response to its handler (see L{IUpstreamHandler}) as it is
parsed: the head, each piece of the body, the end, or a failure.
"""

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import Interface, implementer

from funcplane.deadline import Deadline
from funcplane.edge.http1 import CHUNKED, FRAMING_SLACK, HOP_BY_HOP, LENGTH, NO_BODY, UNTIL_CLOSE
from funcplane.edge.http1 import UPGRADE, framing_excess, without_named
from funcplane.interfaces import IUpstreamPool

# workerd closes idle keep-alive connections after 15 s; give ours up before that.
IDLE_SECONDS = 10.0
IDLE_PER_SOCKET = 64


log = Logger()


class ResponseHeadTooLarge(HttpParserError):
    """
    A child's status line and headers are over the limit.
    """


class IUpstreamHandler(Interface):
    """
    Receives one response from an L{UpstreamConnection}.
    """

    def response_head(status, reason, headers, framing):
        """
        The final (non-1xx) status line and headers have arrived.

        @param headers: a list of C{(name, value)} byte pairs: the child's end-to-end
            headers, in its order (the hop-by-hop ones, and those its C{Connection} header
            names, are left out).
        @param framing: how the body is delimited: L{NO_BODY}, L{LENGTH}, L{CHUNKED} or
            L{UNTIL_CLOSE}; or L{UPGRADE}, a C{101} to a request that asked to upgrade,
            after which the connection carries L{tunnel_data} until L{tunnel_closed}.
        """

    def response_body(data):
        """
        A piece of the (de-chunked) response body.
        """

    def response_done(connection):
        """
        The response is complete. The handler must hand C{connection} back with
        L{UpstreamConnection.finished}.
        """

    def tunnel_data(data):
        """
        Bytes from the child after a C{101}, to relay as they are.
        """

    def tunnel_closed():
        """
        The child closed the connection after a C{101}.
        """

    def upstream_failed(reason, stale):
        """
        The connection broke before the response was complete.

        @param stale: C{True} when the connection came from the pool and nothing of the
            response had arrived: the child closed it as it was reused, and the handler may
            send an idempotent request again on another connection. A request that broke a
            fresh connection is never sent again: it may be what killed the child.
        """


class _Response:
    """
    Parses one response (httptools calls it back) and passes it on to the handler. Once
    it is complete it ignores anything further, so a new response never sees the end of an
    old one.

    Its head is counted as it arrives, in raw bytes (httptools holds a header value until
    it ends, and one that never ends would grow unseen), and exactly, header by header; a
    chunked body's framing and trailers, which httptools does not report, are counted as
    what was fed and not delivered (L{funcplane.edge.http1.framing_excess}). Each header's
    name is looked at once, as it arrives: whether it frames the body, whether it goes no
    further than this hop.
    """

    __slots__ = (
        ("_connection", "_handler", "_head_request", "_upgrade", "_head_limit", "_head_size")
        + ("_head_bytes", "_delivered", "_chunks", "_framing", "_reason", "_headers")
        + ("_length", "_coded", "_named", "_parser", "started", "framing", "done")
    )

    def __init__(self, connection, handler, head_request, head_limit, upgrade=False):
        self._connection = connection
        self._handler = handler
        self._head_request = head_request
        self._upgrade = upgrade
        self._head_limit = head_limit
        self._head_size = 0
        self._head_bytes = 0
        self._delivered = 0
        self._chunks = 0
        self._framing = 0
        self._reason = b""
        # The end-to-end headers; whether a Content-Length and a Transfer-Encoding came;
        # the values of the Connection headers (or None).
        self._headers = []
        self._length = self._coded = False
        self._named = None
        self._parser = HttpResponseParser(self)
        self.started = False
        self.framing = None
        self.done = False

    @property
    def tunnel(self):
        return self.framing is UPGRADE

    def feed(self, data):
        if data:
            self.started = True
        framing = self.framing
        if framing is None:
            self._head_bytes += len(data)
        elif framing is CHUNKED:
            delivered, chunks = self._delivered, self._chunks
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as e:
            if self.framing is not UPGRADE:
                raise HttpParserError("the child switched protocols unasked")
            rest = data[e.args[0] :]
            if rest:
                self._handler.tunnel_data(rest)
            return
        if self.done:
            return
        if self.framing is None:
            if self._head_bytes > self._head_limit:
                raise ResponseHeadTooLarge(f"the response headers are over {self._head_limit} bytes")
        elif framing is CHUNKED:
            delivered, chunks = self._delivered - delivered, self._chunks - chunks
            self._framing = framing_excess(self._framing, len(data), delivered, chunks)
            if self._framing > FRAMING_SLACK:
                raise HttpParserError(
                    f"the chunked body's framing runs over {FRAMING_SLACK} bytes beyond its data"
                )

    def on_status(self, reason):
        self._reason += reason
        self._head_size += len(reason)
        if self._head_size > self._head_limit:
            raise ResponseHeadTooLarge(f"the response headers are over {self._head_limit} bytes")

    def on_header(self, name, value):
        if self.framing is not None:
            # A trailer: dropped.
            return
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._head_limit:
            raise ResponseHeadTooLarge(f"the response headers are over {self._head_limit} bytes")
        lower = name.lower()
        if lower not in HOP_BY_HOP:
            if lower == b"content-length":
                self._length = True
            self._headers.append((name, value))
        elif lower == b"transfer-encoding":
            self._coded = True
        elif lower == b"connection":
            self._named = [value] if self._named is None else self._named + [value]

    def on_headers_complete(self):
        status = self._parser.get_status_code()
        headers = self._headers
        if self._named is not None:
            headers = without_named(headers, self._named)
        if status == 101:
            if not self._upgrade:
                raise HttpParserError("the child switched protocols unasked")
            self.framing = UPGRADE
            self._handler.response_head(status, self._reason, headers, UPGRADE)
            return
        if status < 200:
            # An interim response (100 Continue, 103 Early Hints): wait for the final one.
            self._reason = b""
            self._headers = []
            self._length = self._coded = False
            self._named = None
            return
        if self._head_request or status == 204 or status == 304:
            self.framing = NO_BODY
        elif self._length:
            self.framing = LENGTH
        elif self._coded:
            self.framing = CHUNKED
        else:
            self.framing = UNTIL_CLOSE
        self._handler.response_head(status, self._reason, headers, self.framing)
        if self.framing is NO_BODY and self._head_request and not self.done:
            # httptools cannot be told a response answers a HEAD; it is complete here.
            self._complete()

    def on_body(self, body):
        if not self.done:
            self._delivered += len(body)
            self._handler.response_body(body)

    def on_chunk_header(self):
        self._chunks += 1

    def on_message_complete(self):
        if self.framing not in (None, UPGRADE) and not self.done:
            self._complete()

    def keep_alive(self):
        return self.framing in (NO_BODY, LENGTH, CHUNKED) and self._parser.should_keep_alive()

    def _complete(self):
        self.done = True
        self._connection._response_complete(self)

    def closed(self):
        """
        The connection ended: a body delimited by the close is complete, anything else
        failed.
        """
        if self.done:
            return True
        if self.framing is UNTIL_CLOSE:
            self._complete()
            return True
        return False


@implementer(IUpstreamHandler)
class _Discard:
    """
    The handler of an abandoned request: the rest of its response is dropped.
    """

    def response_head(self, status, reason, headers, framing):
        pass

    def response_body(self, data):
        pass

    def response_done(self, connection):
        connection.finished(reusable=False)

    def tunnel_data(self, data):
        pass

    def tunnel_closed(self):
        pass

    def upstream_failed(self, reason, stale):
        pass


class UpstreamConnection(Protocol):
    """
    One keep-alive HTTP/1.1 connection to a child.

    @ivar key: the child's socket path; the pool files the connection under it.
    @ivar reused: C{True} once the connection has carried a request before.
    """

    def __init__(self, pool, key):
        self._pool = pool
        self.key = key
        self.reused = False
        self._handler = None
        self._response = None
        #: When an idle connection expires (L{UpstreamPool} sets it).
        self.idle_deadline = Deadline(pool.clock)
        self._lost = []

    def expire(self):
        """
        Idle too long: the pool lets the connection go.
        """
        self._pool.expire(self)

    def when_lost(self):
        """
        A Deferred that fires when the connection is lost.
        """
        d = Deferred()
        self._lost.append(d)
        return d

    def send(self, handler, head, head_request=False, upgrade=False):
        """
        Start a request: write its head and report its response to C{handler}.

        @param head: the request line and headers, ending with the empty line.
        @param head_request: C{True} for a HEAD request, whose response has no body.
        @param upgrade: C{True} for a request that asks to switch to WebSocket: a C{101}
            turns the connection into a tunnel (it never goes back to the pool).
        """
        self._handler = handler
        self._response = _Response(
            self, handler, head_request, self._pool.response_head_bytes, upgrade
        )
        self.transport.write(head)

    def write(self, data):
        """
        Write request body bytes, already framed.
        """
        self.transport.write(data)

    def abandon(self):
        """
        The client went away: close the connection; its response is not wanted.
        """
        self._handler = _Discard()
        if self._response is not None:
            self._response._handler = self._handler
        self.transport.loseConnection()

    def finished(self, reusable):
        """
        The handler is done with the connection: keep it for another request when
        C{reusable} and the child allows it (or no request was sent on it), else close it.
        """
        response, self._response = self._response, None
        self._handler = None
        if reusable and (response is None or response.keep_alive()):
            self.reused = True
            self._pool.release(self)
        else:
            self.transport.loseConnection()

    def _response_complete(self, response):
        if response is self._response:
            self._handler.response_done(self)

    def dataReceived(self, data):
        response = self._response
        if response is not None and response.framing is UPGRADE:
            self._handler.tunnel_data(data)
            return
        if response is None or response.done:
            # Nothing was asked, or the child sent more than one response: it cannot be
            # trusted with another request.
            self.transport.loseConnection()
            return
        try:
            response.feed(data)
        except HttpParserError as e:
            log.info(
                "a child's response could not be read ({socket}): {error}",
                socket=self.key,
                error=str(e.__context__ or e),
            )
            self.transport.abortConnection()

    def connectionLost(self, reason):
        self._pool.forget(self)
        lost, self._lost = self._lost, []
        for d in lost:
            d.callback(None)
        response, handler = self._response, self._handler
        if response is None or handler is None:
            return
        if response.tunnel:
            self._response = self._handler = None
            handler.tunnel_closed()
            return
        if response.closed():
            return
        self._response = self._handler = None
        handler.upstream_failed(reason, stale=self.reused and not response.started)


class _Quiet(Factory):
    """
    Connects one protocol without logging the factory's start and stop.
    """

    noisy = False


@implementer(IUpstreamPool)
class UpstreamPool:
    """
    Idle keep-alive connections to the children, by socket path.

    @param connect: C{connect(socket_path, protocol)} connects C{protocol} and returns a
        Deferred that fires with it (by default over a unix socket).
    """

    def __init__(
        self,
        reactor,
        connect=None,
        idle_seconds=IDLE_SECONDS,
        per_socket=IDLE_PER_SOCKET,
        response_head_bytes=64 * 1024,
    ):
        self._reactor = reactor
        self.clock = reactor
        self.response_head_bytes = response_head_bytes
        self._connect = connect or self._connect_unix
        self._idle_seconds = idle_seconds
        self._per_socket = per_socket
        self._idle = {}

    def _connect_unix(self, socket_path, protocol):
        endpoint = UNIXClientEndpoint(self._reactor, socket_path)
        return endpoint.connect(_Quiet.forProtocol(lambda: protocol))

    def acquire(self, socket_path):
        connection = self.take_idle(socket_path)
        if connection is not None:
            return succeed(connection)
        return self._connect(socket_path, UpstreamConnection(self, socket_path))

    def take_idle(self, socket_path):
        idle = self._idle.get(socket_path)
        if not idle:
            return None
        connection = idle.pop()
        if not idle:
            del self._idle[socket_path]
        connection.idle_deadline.clear()
        return connection

    def release(self, connection):
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) >= self._per_socket:
            connection.transport.loseConnection()
            return
        idle.append(connection)
        connection.idle_deadline.set(self._idle_seconds, connection.expire)

    def expire(self, connection):
        self.forget(connection)
        connection.transport.loseConnection()

    def forget(self, connection):
        """
        C{connection} was lost: it is no longer idle.
        """
        connection.idle_deadline.stop()
        idle = self._idle.get(connection.key, [])
        if connection in idle:
            idle.remove(connection)
            if not idle:
                del self._idle[connection.key]

    def idle_count(self, socket_path=None):
        if socket_path is not None:
            return len(self._idle.get(socket_path, []))
        return sum(map(len, self._idle.values()))

    def close(self):
        """
        Close every idle connection; the Deferred fires when they are gone.
        """
        idle = [c for connections in self._idle.values() for c in connections]
        waiting = [connection.when_lost() for connection in idle]
        for connection in idle:
            connection.transport.loseConnection()
        return gatherResults(waiting).addCallback(lambda _: None)
