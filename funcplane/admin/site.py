"""
The admin API's twisted.web C{Site}, which L{funcplane.edge.listener.ProxyChannel} hands the
connections to that are not for function hosts.

Its connections have the deadlines of the function listener's (L{AdminLimits}): a
request's headers must arrive within C{head_seconds} of its first byte, its body within
C{body_seconds} of its headers, and an idle kept-alive connection closes after
C{idle_seconds}.  Twisted's own timeout is an idle timer that every byte resets, so a
client trickling a byte at a time would otherwise hold a connection forever.  Each request
is judged by the L{funcplane.admin.guard.AdminGuard} when its headers are in, before any
byte of its body is read.
"""

import json

import attrs
from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.server import Request, Site

from funcplane.admin.errors import admin_error, site_error
from funcplane.admin.guard import AdminGuard
from funcplane.admin.parse import Limits
from funcplane.admin.throttle import FailureThrottle
from funcplane.deadline import Deadline
from funcplane.edge.linger import Lingering
from funcplane.errors import RequestTooLarge

# Reason phrases Twisted's table lacks.
_REASONS = {421: b"Misdirected Request", 429: b"Too Many Requests"}


@attrs.frozen
class AdminLimits:
    """
    What one admin connection may make funcplane hold, and for how long.

    @ivar body_bytes: a request body (past it: 413, before it is read).
    @ivar head_seconds: from a request's first byte (or the connection's opening) to the
        end of its headers (past it: 408 and the connection closes).
    @ivar body_seconds: from the end of a request's headers to the end of its body (past
        it: 408 and the connection closes).
    @ivar idle_seconds: a kept-alive connection waiting for its next request is closed.
    @ivar auth_failures: failed authentications one client address may make a minute
        (past them: 429).
    """

    body_bytes: int = Limits().max_body_bytes
    head_seconds: float = 10.0
    body_seconds: float = 120.0
    idle_seconds: float = 60.0
    auth_failures: int = 10


class AdminRequest(Request):
    """
    A request to the admin API, judged when its headers are in: one the site's guard
    refuses (no token, a function host) is answered before any byte of its body is read.
    Its body may not exceed the site's C{max_body_bytes} (or, for an asset upload, the
    guard's L{AdminGuard.body_limit}): a larger one is refused as soon
    as that is known (from its Content-Length, or as a chunked body passes the limit),
    before it is read any further, with what the admin API answers for
    L{RequestTooLarge} (413).  A refused request's connection closes.  The routes rely on
    it: none of them sees a larger body, or a body nobody authenticated.
    """

    _refused = False
    _received = 0
    _limit = None

    def gotLength(self, length):
        site = self.channel.site
        # The request line, which twisted.web keeps on the channel until the body is in.
        command, path = self.channel._command, self.channel._path
        refusal = site.guard.refusal(self, command, path)
        self._limit = site.guard.body_limit(command, path, site.max_body_bytes)
        if refusal is not None:
            self._deny(*refusal)
        elif length is not None and length > self._limit:
            self._refuse(self._limit)
        super().gotLength(0 if self._refused else length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        limit = self._limit if self._limit is not None else self.channel.site.max_body_bytes
        if self._received > limit:
            self._refuse(limit)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if not self._refused:
            super().requestReceived(command, path, version)

    def _deny(self, status, headers, body):
        """
        Answer C{status} with C{headers} and C{body} before the body is read, and close
        the connection in stages, as L{_refuse} does.
        """
        self._refused = True
        self.requestHeaders.removeHeader(b"expect")
        reason = _REASONS.get(status) or RESPONSES.get(status, b"Error")
        head = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        head += b"".join(b"%s: %s\r\n" % header for header in headers)
        head += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        self.channel.switch_protocol(head + body, Lingering(self.channel.site.reactor))

    def _refuse(self, limit):
        self._refused = True
        status, document = admin_error(RequestTooLarge(f"request body is over {limit} bytes"))
        body = json.dumps(document).encode("utf-8")
        # Twisted answers "Expect: 100-continue" once gotLength returns: never a refusal.
        self.requestHeaders.removeHeader(b"expect")
        # The client may still be sending its body: a plain close would reset the
        # connection and could destroy the answer before the client reads it.  The
        # connection closes in stages instead (funcplane.edge.linger), and what still
        # arrives goes to the Lingering, never to the admin API.
        self.channel.switch_protocol(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, RESPONSES[status], len(body), body),
            Lingering(self.channel.site.reactor),
        )


class AdminChannel(HTTPChannel):
    """
    An admin connection, which a request may switch to another protocol (a WebSocket).
    After the switch every byte and the connection's end go to that protocol, still through
    this channel and the L{funcplane.edge.listener.ProxyChannel} beneath it, which keep their
    accounting (Twisted's own WebSocket resource does the same, with a private method).
    """

    _switched = None
    _deadline = None
    # Whether no byte of the next request has arrived yet.
    _awaiting_head = False
    _timed_out = False

    def connectionMade(self):
        super().connectionMade()
        self._limits = self.site.limits
        self._deadline = Deadline(self.site.reactor)
        self._deadline.set(self._limits.head_seconds, self.loseConnection)
        self._awaiting_head = True

    def switch_protocol(self, head, protocol):
        """
        Send C{head} (the C{101 Switching Protocols} response) and hand the connection to
        C{protocol}.  The request that asked stays unfinished: nothing more is read as HTTP.
        """
        self.setTimeout(None)
        self._stop_deadline()
        self.transport.write(head)
        self._switched = protocol
        protocol.makeConnection(self.transport)

    def dataReceived(self, data):
        if self._switched is not None:
            self._switched.dataReceived(data)
            return
        if self._timed_out:
            return
        if self._awaiting_head and not self._handlingRequest:
            self._awaiting_head = False
            self._deadline.set(self._limits.head_seconds, self._head_too_slow)
        super().dataReceived(data)

    def allHeadersReceived(self):
        self._deadline.clear()
        if self.length != 0:
            self._deadline.set(self._limits.body_seconds, self._body_too_slow)
        super().allHeadersReceived()

    def allContentReceived(self):
        self._deadline.clear()
        super().allContentReceived()

    def requestDone(self, request):
        # The next request's head deadline runs from its first byte, which may have
        # arrived (pipelined) while this one was answered.
        self._awaiting_head = True
        if self.persistent and any(self._dataBuffer):
            self._awaiting_head = False
            self._deadline.set(self._limits.head_seconds, self._head_too_slow)
        super().requestDone(request)

    def _head_too_slow(self):
        seconds = self._limits.head_seconds
        self._time_out(b"", f"the request headers took too long: send them within {seconds:g} s")

    def _body_too_slow(self):
        if self.requests and self.requests[-1]._refused:
            return
        seconds = self._limits.body_seconds
        self._time_out(
            getattr(self, "_path", b"").split(b"?", 1)[0],
            f"the request body took too long: send it within {seconds:g} s",
        )

    def _time_out(self, path, message):
        """
        Answer 408 in the error shape of the API C{path} names, read nothing more, and
        close (aborting if the client does not let the answer out).
        """
        self._timed_out = True
        status, document = site_error(path, 408, message)
        body = json.dumps(document).encode("utf-8")
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()

    def _stop_deadline(self):
        if self._deadline is not None:
            self._deadline.stop()

    def connectionLost(self, reason):
        self._stop_deadline()
        switched, self._switched = self._switched, None
        super().connectionLost(reason)
        if switched is not None:
            switched.connectionLost(reason)


class AdminSite(Site):
    """
    The admin API's Site: L{AdminChannel}s reading L{AdminRequest}s, judged by C{guard},
    within C{limits} (an L{AdminLimits}), timed on C{clock} (an C{IReactorTime}).
    """

    requestFactory = AdminRequest
    protocol = AdminChannel

    def __init__(self, resource, guard, clock, limits):
        super().__init__(resource, timeout=limits.idle_seconds, reactor=clock)
        self.guard = guard
        self.limits = limits
        self.max_body_bytes = limits.body_bytes
        self.displayTracebacks = False


def admin_site(routes, admin, checker, clock, limits=AdminLimits(), trusted_proxies=(), uploads=None):
    """
    The Site serving C{admin} (a resource) for every host but the functions'.

    @param checker: has C{check(request)}, which raises L{funcplane.errors.Unauthorized}
        without the admin token.
    @param clock: an C{IReactorTime}, for the deadlines and the failed-authentication
        counts.
    @param limits: the L{AdminLimits}.
    @param trusted_proxies: networks (CIDR text) of load balancers whose
        C{X-Forwarded-For} names the client whose failures are counted.
    @param uploads: checks asset uploads' session tokens (see L{AdminGuard}), or L{None}.
    """
    throttle = FailureThrottle(clock, limits.auth_failures)
    guard = AdminGuard(routes, checker, throttle, trusted_proxies, uploads)
    return AdminSite(admin, guard, clock, limits)
