"""
One proxied request: the request as the client sent it, routed to a version, relayed to
that version's child over an upstream connection, and its response relayed back.

Each hop frames the body itself: a request body keeps its Content-Length or is re-chunked
towards the child, and a response body keeps its Content-Length or is chunked (or, for an
HTTP/1.0 client, ended by the close) towards the client. Hop-by-hop headers are dropped both
ways, C{X-Forwarded-*} are set by funcplane, and a response gains no header the function did
not send beyond its framing.
"""

from http import HTTPStatus

from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from funcplane.errors import AtCapacity, NoSuchVersion, StartFailed
from funcplane.routing import NotAFunctionHost, NotRouted
from funcplane.observe.trace import Traced
from funcplane.edge.upstream import CHUNKED, NO_BODY, UPGRADE, IUpstreamHandler

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
UPGRADE_HEADERS = b"Connection: Upgrade\r\nUpgrade: websocket\r\n"



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



@implementer(IUpstreamHandler)
class Exchange:
    """
    One request and its response: routes it, waits for its child, relays it.

    @param channel: the L{funcplane.edge.listener.ProxyChannel} the request came on.
    """

    log = Logger()

    def __init__(self, channel):
        self._channel = channel
        self._factory = channel.factory
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
        self._socket_path = None
        self._pinned = False
        self.upgrade = False
        self._tunnel = False
        self._early = []
        self._status = None
        self._relayed = False
        self._tailed = None

    def _values(self, name):
        return [value for key, value in self.headers if key.lower() == name]

    def _header(self, name):
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def _tokens(self, name):
        return {
            token.strip().lower() for value in self._values(name) for token in value.split(b",")
        }

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
        self.upgrade = (
            http11
            and method == b"GET"
            and b"websocket" in self._tokens(b"upgrade")
            and b"upgrade" in self._tokens(b"connection")
        )
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
                self._break_off()
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
        try:
            self._version_id = self._factory.routes.resolve(self.host, self._header)
        except NotAFunctionHost:
            self._plain(
                421,
                f"{self.host.decode('ascii', 'replace')} is not a function host; "
                "reach the admin API on a connection of its own",
            )
            self._finish()
            return
        except NotRouted as e:
            self._plain(404, str(e))
            self._finish()
            return
        tails = self._factory.tails
        if tails is not None and tails.active:
            function = tails.watching(self.host)
            if function is not None:
                self._tailed = (function, self._factory.clock.seconds())
        self._lease = self._factory.supervisor.lease(self._version_id)
        self._timer = self._channel.request_deadline
        self._timer.set(self._factory.request_timeout, self._timed_out)
        self._connect()

    def _connect(self):
        self._waiting = None
        factory = self._factory
        if self._pinned:
            path = self._socket_path
        else:
            path = factory.supervisor.running_socket(self._version_id)
        if path is not None:
            # The common case, a running version with an idle connection, takes no Deferred.
            self._socket_path = path
            upstream = factory.pool.take_idle(path)
            if upstream is not None:
                self._attach(upstream)
                return
            d = factory.pool.acquire(path)
        else:
            d = factory.supervisor.ensure_running(self._version_id)
            d.addCallback(self._remember_socket)
            d.addCallback(factory.pool.acquire)
        self._waiting = d
        d.addCallbacks(self._attach, self._not_connected)

    def _remember_socket(self, path):
        self._socket_path = path
        return path

    def _connect_later(self):
        self._connect_attempts += 1
        self._waiting = self._factory.clock.callLater(CONNECT_RETRY_SECONDS, self._connect)

    def _attach(self, upstream):
        self._waiting = None
        if self._gone or self._complete or self._abandoned:
            upstream.finished(reusable=True)
            return
        self._upstream = upstream
        upstream.transport.registerProducer(_Hold(self._channel.gate, "upstream"), True)
        if self._channel.writes_paused:
            self.pause_response()
        upstream.send(
            self, self._upstream_head(), head_request=self.method == b"HEAD", upgrade=self.upgrade
        )
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
        peer = channel.peer
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
        if self.upgrade:
            head.append(UPGRADE_HEADERS)
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
        if (
            failure.check(ConnectError)
            and not self._pinned
            and self._connect_attempts < CONNECT_ATTEMPTS
        ):
            # The child just died and funcplane has not heard yet (its exit is reported a
            # moment later): nothing was sent, so try again once it has.
            self._connect_later()
            return
        if failure.check(NoSuchVersion):
            status, message = 404, str(failure.value)
        elif failure.check(StartFailed):
            status, message = 503, f"the function could not start: {failure.value}"
        elif failure.check(AtCapacity):
            status, message = 503, str(failure.value)
        elif failure.check(ConnectError):
            # The child this request was pinned to has died.
            status, message = 502, "the function did not answer"
        else:
            self.log.failure("could not reach the function at {host}", failure, host=self.host)
            status, message = 502, "the function did not answer"
        self._plain(status, message)
        self._finish()

    # The response, as the upstream connection parses it.

    def response_head(self, status, reason, headers, framing):
        if self._gone:
            return
        if framing is UPGRADE:
            self._open_tunnel(reason, headers)
            return
        self._status = status
        self._relayed = True
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
        if self._unread_body() or not self.keep_alive or self.upgrade:
            # After a request that asked to upgrade, the client may already be sending
            # WebSocket frames: nothing more on this connection is read as HTTP.
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

    # A WebSocket, once the child has switched protocols.

    def _open_tunnel(self, reason, headers):
        """
        The child accepted the upgrade: pass its 101 on, and from here relay bytes as
        they are, both ways, for as long as both ends keep the connection.
        """
        self._tunnel = True
        self._responded = True
        self._status = 101
        self._relayed = True
        self._clear_timer()
        head = [b"HTTP/1.1 101 %s\r\n" % (reason,)]
        for name, value in forwardable(headers):
            head += (name, b": ", value, b"\r\n")
        head += (UPGRADE_HEADERS, b"\r\n")
        self._channel.write(b"".join(head))
        early, self._early = self._early, []
        if early:
            self._channel.buffered(-sum(map(len, early)))
            self._upstream.write(b"".join(early))

    def tunnel_from_client(self, data):
        """
        Bytes the client sent after its upgrade request.  Until the child has switched
        protocols they are held (never sent: if the child refuses, they must not reach it
        as a request); then they are relayed.
        """
        if self._gone or self._complete:
            return
        if self._tunnel:
            self._upstream.write(data)
            return
        self._early.append(data)
        self._channel.buffered(len(data))

    def tunnel_data(self, data):
        if not self._gone:
            self._channel.write(data)

    def tunnel_closed(self):
        self._detach()
        if self._gone or self._complete:
            return
        self.close_after = True
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
            # answered, so send it again on another, to the same child only.  If that
            # child is gone, this request may be what killed it, and a new child must
            # not be given it a second time.
            self._pinned = True
            self._connect_later()
            return
        if self._responded:
            self.log.info(
                "the function at {host} broke off its response: {reason}",
                host=self.host,
                reason=reason.getErrorMessage(),
            )
            self._break_off()
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
        if self._timer is not None:
            self._timer.set(self._factory.request_timeout, self._timed_out)

    def _clear_timer(self):
        if self._timer is not None:
            self._timer.clear()
            self._timer = None

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
            self._break_off()
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
        if self._unread_body() or not self.keep_alive or self.upgrade:
            self.close_after = True
        self._responded = True
        self._status = status
        self._channel.write(
            plain_response(status, message, self.close_after, head_only=self.method == b"HEAD")
        )

    def _break_off(self):
        """
        The response began and cannot be completed: close the client's connection at
        once, so it cannot take what it got for the whole.
        """
        self._complete = True
        self._relayed = False
        self._settle()
        self._channel.abort()

    def _finish(self):
        self._complete = True
        self._drop_pending()
        self._settle()
        self._channel.exchange_done(self)

    def _settle(self):
        self._clear_timer()
        if self._lease is not None:
            lease, self._lease = self._lease, None
            lease.release()
        if self._tailed is not None:
            self._trace()

    def _trace(self):
        """
        Tell the tails about this request, now that it ended.
        """
        (function, started), self._tailed = self._tailed, None
        if self._gone and not self._complete:
            outcome = "canceled"
        else:
            outcome = "ok" if self._relayed else "unknown"
        self._factory.tails.request_done(
            Traced(
                function=function,
                version_id=self._version_id,
                host=self.host,
                method=self.method,
                target=self.url,
                headers=tuple(self.headers),
                client=self._channel.peer,
                secure=self._channel.secure,
                started=started,
                status=self._status,
                outcome=outcome,
            )
        )

    def _drop_pending(self):
        held = self._pending_size + sum(map(len, self._early))
        if held:
            self._channel.buffered(-held)
        self._pending = []
        self._pending_size = 0
        self._early = []

    def client_gone(self):
        if self._gone:
            return
        self._gone = True
        self._drop_pending()
        self._settle()
        if not self._complete:
            self._abandon_upstream()
