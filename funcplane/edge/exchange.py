"""
One proxied request: its head as the client sent it (a
L{funcplane.edge.http1.RequestHead}), routed to a version, relayed to that version's child
over an upstream connection, and the child's response relayed back.

An exchange's life is its C{state} (the states are defined below, each with what it
means); each arrow is one assignment in this module:

    QUEUED      -> CONNECTING (routed)          | ANSWERED
    CONNECTING  -> SENT (connected)             | ANSWERED
    SENT        -> RESPONDING (a response head) | TUNNELLING (a 101) | ANSWERED
                -> CONNECTING (the pooled connection was stale: send again, same child)
    RESPONDING  -> RELAYED (complete)           | BROKEN_OFF
    TUNNELLING  -> RELAYED (the child closed, or funcplane: idle or too old) | BROKEN_OFF
    any state before an end -> CLIENT_GONE

An end is entered once (L{Exchange._end}), and that is where everything held is let go:
the wait for the child, its connection, request bytes held, the deadline, the lease; and
the tails hear of the request then.
"""

from twisted.internet.error import ConnectError
from twisted.logger import Logger
from zope.interface import implementer

from funcplane.edge.forwarding import client_of, head_to_child
from funcplane.edge.http1 import CHUNK, CHUNKED, CONTINUE, LAST_CHUNK, LENGTH, NO_BODY
from funcplane.edge.http1 import UNTIL_CLOSE, UPGRADE, plain_response, response_head
from funcplane.edge.tunnel import Tunnel
from funcplane.edge.upstream import IUpstreamHandler
from funcplane.errors import AtCapacity, NoSuchVersion, StartFailed
from funcplane.observe.trace import Traced
from funcplane.routing import NotAFunctionHost, NotRouted

QUEUED = "queued"  # waiting its turn: a connection answers its requests one at a time
CONNECTING = "connecting"  # routed and leased; waiting for the child, and a connection to it
SENT = "sent"  # its head went to the child; nothing of the response yet
RESPONDING = "responding"  # the child's response head went to the client; its body streams
TUNNELLING = "tunnelling"  # the child switched protocols: a WebSocket (funcplane.edge.tunnel)
# The ends.
RELAYED = "relayed"  # the child's response, or its WebSocket, reached the client whole
ANSWERED = "answered"  # funcplane answered in the function's place (refused, failed, late...)
BROKEN_OFF = "broken off"  # the response began and cannot be finished: the connection aborts
CLIENT_GONE = "client gone"  # the client left first
ENDS = frozenset([RELAYED, ANSWERED, BROKEN_OFF, CLIENT_GONE])
# How a tail sees each end.
OUTCOMES = {RELAYED: "ok", ANSWERED: "unknown", BROKEN_OFF: "unknown", CLIENT_GONE: "canceled"}

# A child's socket refusing a connection is retried this often, this far apart.
CONNECT_ATTEMPTS = 5
CONNECT_RETRY_SECONDS = 0.02
# Requests that may be sent again when a child failed before answering (RFC 9110 9.2.2).
IDEMPOTENT = frozenset([b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"])


@implementer(IUpstreamHandler)
class Exchange:
    """
    One request and its response: routes it, waits for its child, relays it.

    Beside its C{state}, two things about an exchange change on their own course, and are
    kept apart from it: whether the client has sent the whole request (C{_request_read}:
    a body streams in through every state up to C{RESPONDING}, as a child may answer
    before it is in), and whether the client's connection closes after this response
    (C{close_after}: decided along the way by the client's keep-alive, a body left unread,
    a response delimited by the close, a refusal, a timeout). C{_framing} says how the
    response body is framed towards the client once its head is relayed.

    @param channel: the L{funcplane.edge.listener.ProxyChannel} the request came on.
    @ivar head: the L{funcplane.edge.http1.RequestHead}.
    @ivar state: where the exchange is in its life (see the module).
    @ivar close_after: whether the client's connection closes once this exchange ends;
        the channel reads it.
    @ivar tunnel: for a request that asks to upgrade, its L{funcplane.edge.tunnel.Tunnel};
        else L{None}.
    """

    __slots__ = (
        ("head", "state", "close_after", "tunnel", "_channel", "_factory", "_deadline")
        + ("_request_read", "_refusal", "_framing", "_status", "_version_id", "_lease")
        + ("_tailed", "_waiting", "_upstream", "_pending", "_connect_attempts", "_pinned")
    )

    log = Logger()

    def __init__(self, channel, head):
        self.head = head
        self.state = QUEUED
        self.close_after = False
        self._channel = channel
        factory = self._factory = channel.factory
        if head.upgrade:
            self.tunnel = Tunnel(channel, factory.clock, factory.limits, self._tunnel_expired)
        else:
            self.tunnel = None
        # One request deadline per connection, as one exchange at a time is answered.
        self._deadline = channel.request_deadline
        self._request_read = False
        # (status, message) to answer with in its turn instead of relaying.
        self._refusal = None
        self._framing = None
        self._status = None
        self._version_id = None
        self._lease = None
        # (function, started) while a tail watches the request.
        self._tailed = None
        # While CONNECTING: the Deferred of the child or its connection, or the retry.
        self._waiting = None
        # While SENT, RESPONDING or TUNNELLING: the connection to the child.
        self._upstream = None
        # Body pieces held until there is a connection to the child.
        self._pending = None
        self._connect_attempts = 0
        # The socket of the child a request sent again must go back to.
        self._pinned = None
        if head.malformed is not None:
            self.answer_with(*head.malformed)
        else:
            body, limit = head.body, factory.limits.body_bytes
            if body is not None and body is not CHUNKED and body > limit:
                self.answer_with(413, f"the request body is over {limit} bytes", close=True)

    def __repr__(self):
        return f"<Exchange {self.state} {self.head!r}>"

    def _host(self):
        """
        The request's Host, as text for a log line.
        """
        return self.head.host.decode("ascii", "replace")

    # The request, as the channel reads it.

    def answer_with(self, status, message, close=False):
        """
        Answer with C{status} instead of relaying, when the request's turn comes, and
        close the connection after it when C{close}.
        """
        if self._refusal is None:
            self._refusal = (status, message)
            if close:
                self.close_after = True

    def request_body(self, data):
        """
        A piece of the body: sent on, or held until there is a connection to the child.
        """
        upstream = self._upstream
        if upstream is not None:
            if self.head.body is CHUNKED:
                data = CHUNK % (len(data), data)
            upstream.write(data)
        elif self._refusal is None and (self.state is QUEUED or self.state is CONNECTING):
            if self._pending is None:
                self._pending = [data]
            else:
                self._pending.append(data)
            self._channel.buffered(len(data))

    def request_complete(self):
        """
        The client has sent the whole request.
        """
        self._request_read = True
        upstream = self._upstream
        if upstream is not None and self.head.body is CHUNKED:
            upstream.write(LAST_CHUNK)

    def request_broken(self, status, message):
        """
        The body turned out malformed after the head was read: answer C{status} (in its
        turn, if that has not come), or break the response off if it began; then close.
        """
        self.close_after = True
        state = self.state
        if state is QUEUED:
            self.answer_with(status, message)
        elif state is CONNECTING or state is SENT:
            self._answer(status, message)
        elif state is RESPONDING or state is TUNNELLING:
            self._break_off()

    # Relaying.

    def start(self):
        """
        Its turn has come: answer it, or route it and connect to its version's child.
        """
        if self._refusal is not None:
            self._answer(*self._refusal)
            return
        head = self.head
        factory = self._factory
        try:
            self._version_id = factory.routes.resolve(head.host, head.header)
        except NotAFunctionHost:
            self._answer(
                421, f"{self._host()} is not a function host; reach the admin API on a connection of its own"
            )
            return
        except NotRouted as e:
            self._answer(404, str(e))
            return
        tails = factory.tails
        if tails is not None and tails.active:
            function = tails.watching(head.host)
            if function is not None:
                self._tailed = (function, factory.clock.seconds())
        if head.upgrade:
            client = client_of(head, self._channel, factory.trusted)
            refusal = self.tunnel.admit(factory.tunnels, self._version_id, client)
            if refusal is not None:
                self._answer(503, refusal)
                return
        self._lease = factory.supervisor.lease(self._version_id)
        self._deadline.set(factory.request_timeout, self._timed_out)
        self.state = CONNECTING
        self._connect()

    def _connect(self):
        self._waiting = None
        factory = self._factory
        path = self._pinned
        if path is None:
            path = factory.supervisor.running_socket(self._version_id)
        if path is not None:
            # The common case, a running version with an idle connection, takes no Deferred.
            upstream = factory.pool.take_idle(path)
            if upstream is not None:
                self._attach(upstream)
                return
            d = factory.pool.acquire(path)
        else:
            d = factory.supervisor.ensure_running(self._version_id)
            d.addCallback(factory.pool.acquire)
        self._waiting = d
        d.addCallbacks(self._attach, self._not_connected)

    def _connect_later(self):
        self._connect_attempts += 1
        self._waiting = self._factory.clock.callLater(CONNECT_RETRY_SECONDS, self._connect)

    def _attach(self, upstream):
        self._waiting = None
        if self.state is not CONNECTING:
            upstream.finished(reusable=True)
            return
        self.state = SENT
        self._upstream = upstream
        channel = self._channel
        upstream.transport.registerProducer(channel.upstream_hold, True)
        if channel.writes_paused:
            upstream.transport.pauseProducing()
        head = self.head
        request = head_to_child(head, channel, self._factory.trusted)
        upstream.send(self, request, head_request=head.method == b"HEAD", upgrade=head.upgrade)
        pending = self._pending
        if head.expect_continue and not self._request_read and pending is None:
            channel.write(CONTINUE)
        if pending is not None:
            self._pending = None
            channel.buffered(-sum(map(len, pending)))
            if head.body is CHUNKED:
                pending = [CHUNK % (len(data), data) for data in pending]
            upstream.write(b"".join(pending))
        if self._request_read and head.body is CHUNKED:
            upstream.write(LAST_CHUNK)

    def _not_connected(self, failure):
        self._waiting = None
        if self.state is not CONNECTING:
            return
        retry = self._pinned is None and self._connect_attempts < CONNECT_ATTEMPTS
        if retry and failure.check(ConnectError):
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
            self.log.failure("could not reach the function at {host}", failure, host=self._host())
            status, message = 502, "the function did not answer"
        self._answer(status, message)

    # The response, as the upstream connection parses it.

    def response_head(self, status, reason, headers, framing):
        if self.state is not SENT:
            return
        if framing is UPGRADE:
            self.state = TUNNELLING
            self._status = 101
            # A WebSocket may stay open and quiet for as long as both ends like.
            self._deadline.clear()
            self.tunnel.open(self._upstream, reason, headers)
            return
        self._status = status
        if framing is NO_BODY or framing is LENGTH:
            self._framing = framing
        elif self.head.http11:
            self._framing = CHUNKED
        else:
            # An HTTP/1.0 client learns where the body ends from the close.
            self._framing = UNTIL_CLOSE
            self.close_after = True
        self.state = RESPONDING
        self._channel.write(
            response_head(status, reason, headers, self._framing is CHUNKED, self._closing())
        )
        self._deadline.set(self._factory.request_timeout, self._timed_out)

    def response_body(self, data):
        if self.state is not RESPONDING:
            return
        self._deadline.set(self._factory.request_timeout, self._timed_out)
        if self._framing is CHUNKED:
            data = CHUNK % (len(data), data)
        self._channel.write(data)

    def response_done(self, upstream):
        self._detach()
        upstream.finished(reusable=self._request_read)
        if self.state is not RESPONDING:
            return
        if self._framing is CHUNKED:
            self._channel.write(LAST_CHUNK)
        self._end(RELAYED)
        self._channel.exchange_done(self)

    def tunnel_data(self, data):
        self.tunnel.from_child(data)

    def tunnel_closed(self):
        self._detach()
        self._tunnel_ended()

    def _tunnel_expired(self, why):
        if self.state is TUNNELLING:
            self.log.info("closed a WebSocket to {host}: {why}", host=self._host(), why=why)
            self._tunnel_ended()

    def _tunnel_ended(self):
        if self.state is TUNNELLING:
            self.close_after = True
            self._end(RELAYED)
            self._channel.exchange_done(self)

    def upstream_failed(self, reason, stale):
        upstream = self._upstream
        self._detach()
        state = self.state
        head = self.head
        if state is RESPONDING:
            self.log.info("the function at {host} broke off its response: {reason}",
                          host=self._host(), reason=reason.getErrorMessage())
            self._break_off()
        elif state is SENT:
            attempts = self._connect_attempts
            if stale and head.body is None and head.method in IDEMPOTENT and attempts < CONNECT_ATTEMPTS:
                # A kept-alive connection the child closed as it was reused: nothing was
                # answered, so send it again on another, to the same child only.  If that
                # child is gone, this request may be what killed it, and a new child must
                # not be given it a second time.
                self._pinned = upstream.key
                self.state = CONNECTING
                self._connect_later()
                return
            self.log.info("the function at {host} did not answer: {reason}",
                          host=self._host(), reason=reason.getErrorMessage())
            self._answer(502, "the function did not answer")

    # Time.

    def _timed_out(self):
        state = self.state
        if state is not CONNECTING and state is not SENT and state is not RESPONDING:
            return
        seconds = self._factory.request_timeout
        self.log.info("the function at {host} did not answer within {seconds:g} s",
                      host=self._host(), seconds=seconds)
        self._factory.supervisor.request_timed_out(self._version_id)
        if state is RESPONDING:
            self._break_off()
            return
        self.close_after = True
        self._answer(504, f"the function did not answer within {seconds:g} seconds")

    # Flow control: while the client cannot take more, the child's connection is not read
    # (the channel calls these); while the child's connection is full, the client is not.

    def pause_response(self):
        if self._upstream is not None:
            self._upstream.transport.pauseProducing()

    def resume_response(self):
        if self._upstream is not None:
            self._upstream.transport.resumeProducing()

    def _detach(self):
        upstream, self._upstream = self._upstream, None
        if upstream is None:
            return
        upstream.transport.unregisterProducer()
        channel = self._channel
        channel.gate.resume("upstream")
        if channel.writes_paused:
            # Attached, the child's connection is paused exactly while the client's is.
            upstream.transport.resumeProducing()

    # Ending.

    def _closing(self):
        """
        Whether the client's connection closes after the response now being sent; a body
        still to come would otherwise be read as the next request.
        """
        head = self.head
        if not head.keep_alive or (head.body and not self._request_read):
            self.close_after = True
        return self.close_after

    def _answer(self, status, message):
        """
        Answer in the function's place, with a short plain-text response.
        """
        self._status = status
        self._channel.write(
            plain_response(status, message, self._closing(), head_only=self.head.method == b"HEAD")
        )
        self._end(ANSWERED)
        self._channel.exchange_done(self)

    def _break_off(self):
        """
        The response began and cannot be completed: close the client's connection at
        once, so it cannot take what it got for the whole.
        """
        self._end(BROKEN_OFF)
        self._channel.abort()

    def client_gone(self):
        """
        The client's connection closed, or is being closed, before this exchange ended.
        """
        if self.state not in ENDS:
            self._end(CLIENT_GONE)

    def _end(self, state):
        """
        Enter C{state}, one of the L{ENDS}, and let go of everything held.
        """
        started = self.state is not QUEUED
        self.state = state
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            waiting.cancel()
        upstream = self._upstream
        if upstream is not None:
            # Its response is not wanted any more.
            self._detach()
            upstream.abandon()
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._channel.buffered(-sum(map(len, pending)))
        if self.tunnel is not None:
            self.tunnel.close()
        if started:
            # The connection's request deadline is this exchange's once it has begun.
            self._deadline.clear()
        lease = self._lease
        if lease is not None:
            self._lease = None
            lease.release()
        if self._tailed is not None:
            self._trace(state)

    def _trace(self, state):
        """
        Tell the tails about this request, now that it ended in C{state}.
        """
        (function, started), self._tailed = self._tailed, None
        head, channel = self.head, self._channel
        traced = Traced(
            function=function, version_id=self._version_id, host=head.host,
            method=head.method, target=head.target, headers=tuple(head.headers),
            client=channel.peer, secure=channel.secure, started=started,
            status=self._status, outcome=OUTCOMES[state],
        )
        self._factory.tails.request_done(traced)
