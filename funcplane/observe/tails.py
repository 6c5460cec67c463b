"""
Live tails, for C{wrangler tail}: every request a function answers, with the lines its
version printed meanwhile, as a stream of Cloudflare trace events on a WebSocket.

A tail is made by the Cloudflare API (L{Tails.open}), which answers with a WebSocket
address; the tail lives while that WebSocket is open, and ends when it closes, when the
API deletes it, when its function is deleted, or when it expires.  The address's id is
the only credential the WebSocket needs (wrangler sends no token there, as on
Cloudflare), so it is 128 random bits and appears in no log.  The WebSocket itself is
the admin side's (L{funcplane.admin.cloudflare.tails}); here it is only an
L{funcplane.interfaces.ITailSocket}.

The edge asks L{Tails.watching} at a request's start whether a tail watches its function
(only while some tail is connected), and if so tells L{Tails.request_done} when it ends;
the events' shape and filters are in L{funcplane.observe.trace}.  A child's lines reach
funcplane a moment after it prints them, so an event waits
L{SETTLE_SECONDS}, then carries the lines its version printed from the request's start until
the next request to that version started.  When one version answers several requests at
once, a line may land in a neighbour's event.
"""

import bisect
import collections
import json
import random
import secrets

import attrs
from twisted.logger import Logger
from zope.interface import implementer

from funcplane import errors
from funcplane.interfaces import ITailSink
from funcplane.observe.scheduled import ScheduledRun, scheduled_admitted, scheduled_event_json
from funcplane.observe.trace import TailFilter, event_json, overload_notice, threw
from funcplane.routing import canonical_host, split_host

# A tail ends this long after it is made, as Cloudflare's do.
TAIL_SECONDS = 6 * 3600
# A tail whose WebSocket has not connected this long after it was made is dropped.
CONNECT_SECONDS = 60
# Lines a version prints this soon after a response still count as that request's.
SETTLE_SECONDS = 0.1
TAILS_PER_FUNCTION = 10
# The most lines one event carries; more are dropped and the event says C{truncated}.
LINES_PER_EVENT = 100
# The most lines of one version waiting for their request's event.
PENDING_LINES = 10_000
# The WebSocket close codes (RFC 6455 7.4.1) a tail's socket is closed with: the tail
# ended, or funcplane is stopping.
NORMAL = 1000
GOING_AWAY = 1001


@attrs.define(eq=False)
class Tail:
    """
    One tail: made by the API, then connected by one WebSocket (its L{socket}, an
    L{funcplane.interfaces.ITailSocket}).
    """

    id: str
    function: str
    filter: TailFilter
    expires_at: float
    socket: object = None
    timer: object = None
    dropped: int = 0


def _time(entry):
    return entry.time


@implementer(ITailSink)
class Tails:
    """
    Every live tail, and the events they receive.

    @param clock: an C{IReactorTime}.
    @param logbook: the L{funcplane.observe.logbook.LogBook} the functions' lines come from.
    @param domain: the functions' domain, to tell a request's function by its host.
    @param random: returns a float in [0, 1), for sampling.
    """

    log = Logger()

    def __init__(self, clock, logbook, domain, random=random.random, new_id=lambda: secrets.token_hex(16)):
        self._clock = clock
        self._logbook = logbook
        self._domain = domain
        self._random = random
        self._new_id = new_id
        self._tails = {}
        self._live = {}
        self._lines = {}
        self._queued = {}
        self._overflowed = set()
        self._unfollow = None
        # (when, traced) of the events waiting for their lines, soonest first.
        self._due = collections.deque()
        self._flush_call = None
        #: Whether any tail is connected: the edge reports requests only then.
        self.active = False

    # Tails, as the API and the WebSocket make and end them.

    def open(self, function, tail_filter):
        """
        Make a tail of C{function}; its WebSocket must connect within L{CONNECT_SECONDS}.
        Function names are compared as hosts are, in lower case.
        """
        function = function.lower()
        if sum(1 for t in self._tails.values() if t.function == function) >= TAILS_PER_FUNCTION:
            raise errors.TooManyTails(
                f"{function} already has {TAILS_PER_FUNCTION} live tails; end one first"
            )
        tail = Tail(
            id=self._new_id(),
            function=function,
            filter=tail_filter,
            expires_at=self._clock.seconds() + TAIL_SECONDS,
        )
        self._tails[tail.id] = tail
        tail.timer = self._clock.callLater(CONNECT_SECONDS, self._end, tail, "never connected")
        return tail

    def waiting(self, tail_id):
        """
        The tail C{tail_id} if it exists and no WebSocket has taken it yet.
        """
        tail = self._tails.get(tail_id)
        if tail is None or tail.socket is not None:
            raise errors.NoSuchTail(
                "no tail is waiting at this address: it ended, expired or is in use;"
                " make a new one with wrangler tail"
            )
        return tail

    def delete(self, function, tail_id):
        """
        End a tail of C{function}.  A tail that already ended is no error: wrangler deletes
        the tail after its WebSocket closed.
        """
        tail = self._tails.get(tail_id)
        if tail is not None and tail.function == function.lower():
            self._end(tail, "deleted", NORMAL)

    def end_function(self, function):
        """
        End every tail of C{function}, which was deleted.
        """
        function = function.lower()
        for tail in [t for t in self._tails.values() if t.function == function]:
            self._end(tail, "the function was deleted", NORMAL)

    def close(self):
        """
        End every tail (funcplane is stopping).
        """
        for tail in list(self._tails.values()):
            self._end(tail, "funcplane is stopping", GOING_AWAY)
        if self._flush_call is not None:
            self._flush_call.cancel()
            self._flush_call = None
        self._due.clear()

    def attached(self, tail, socket):
        """
        C{socket} (an L{funcplane.interfaces.ITailSocket}) connected for C{tail}, which
        L{waiting} gave out: its events go there until it ends or expires.
        """
        tail.socket = socket
        tail.timer.cancel()
        remaining = max(0, tail.expires_at - self._clock.seconds())
        tail.timer = self._clock.callLater(remaining, self._end, tail, "expired", NORMAL)
        self._live.setdefault(tail.function, []).append(tail)
        if self._unfollow is None:
            self._unfollow = self._logbook.follow(None, self._line)
        self.active = True
        self.log.info("a tail of {function} connected", function=tail.function)

    def detached(self, tail):
        """
        C{tail}'s socket closed: the tail ends.
        """
        if self._tails.get(tail.id) is tail:
            self._end(tail, "closed")

    def _end(self, tail, why, code=None):
        if self._tails.pop(tail.id, None) is None:
            return
        if tail.timer is not None and tail.timer.active():
            tail.timer.cancel()
        socket, tail.socket = tail.socket, None
        live = self._live.get(tail.function, [])
        if tail in live:
            live.remove(tail)
            if not live:
                del self._live[tail.function]
                self._overflowed.difference_update(self._lines.pop(tail.function, ()))
                self._queued.pop(tail.function, None)
            self.log.info("a tail of {function} ended: {why}", function=tail.function, why=why)
        if not self._live:
            self.active = False
            if self._unfollow is not None:
                self._unfollow()
                self._unfollow = None
        if socket is not None and code is not None:
            socket.close(code, f"tail {why}")

    def count(self):
        return len(self._tails)

    # Events.

    def _line(self, entry):
        function = entry.function.lower()
        if function not in self._live:
            return
        versions = self._lines.setdefault(function, {})
        lines = versions.setdefault(entry.version_id, [])
        lines.append(entry)
        if len(lines) > PENDING_LINES:
            # Nothing claims them fast enough: the oldest go, and the next event says so.
            del lines[: PENDING_LINES // 2]
            self._overflowed.add(entry.version_id)

    def watching(self, host):
        """
        The function a request to C{host} reaches, if a tail of it is connected; else
        L{None}, and the edge reports nothing of that request.
        """
        parts = split_host(canonical_host(host), self._domain)
        if parts is None or parts[0] not in self._live:
            return None
        return parts[0]

    def request_done(self, traced):
        """
        The edge finished C{traced}: its event goes out once its lines are in.
        """
        if traced.function not in self._live:
            return
        starts = self._queued.setdefault(traced.function, {}).setdefault(traced.version_id, [])
        bisect.insort(starts, traced.started)
        # Every event waits as long, so they fall due in order: one timer serves them all.
        self._due.append((self._clock.seconds() + SETTLE_SECONDS, traced))
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(SETTLE_SECONDS, self._flush)

    def scheduled_done(self, run):
        """
        A scheduled run of a watched function ended (a
        L{funcplane.observe.scheduled.ScheduledRun}): its event goes out once its lines are
        in, which are claimed as a request's are.
        """
        self.request_done(run)

    def _flush(self):
        self._flush_call = None
        now = self._clock.seconds()
        due = self._due
        while due and due[0][0] <= now:
            self._emit(due.popleft()[1])
        if due:
            self._flush_call = self._clock.callLater(due[0][0] - now, self._flush)

    def _claim(self, traced):
        """
        Take the lines of C{traced}'s version that belong to it: those printed from its
        start until a later request to the version started, and those printed earlier
        that no other request waiting to go out can claim.  Lines are in time order.
        """
        function = traced.function
        queues = self._queued.get(function, {})
        starts = queues.get(traced.version_id, [])
        at = bisect.bisect_left(starts, traced.started)
        if at < len(starts) and starts[at] == traced.started:
            del starts[at]
        if not starts:
            queues.pop(traced.version_id, None)
        later = bisect.bisect_right(starts, traced.started)
        cutoff = starts[later] if later < len(starts) else float("inf")
        earliest = min(starts[0] if starts else float("inf"), traced.started)
        versions = self._lines.get(function, {})
        lines = versions.get(traced.version_id)
        truncated = traced.version_id in self._overflowed
        self._overflowed.discard(traced.version_id)
        if lines is None:
            return [], truncated
        def index(moment):
            return bisect.bisect_left(lines, moment, key=_time)
        stragglers, begin, end = index(earliest), index(traced.started), index(cutoff)
        mine = lines[:stragglers] + lines[begin:end]
        del lines[begin:end]
        del lines[:stragglers]
        if not lines:
            del versions[traced.version_id]
        return mine[-LINES_PER_EVENT:], truncated or len(mine) > LINES_PER_EVENT

    def _emit(self, traced):
        tails = self._live.get(traced.function)
        if not tails:
            return
        lines, truncated = self._claim(traced)
        outcome = traced.outcome
        if outcome == "ok" and threw(lines):
            outcome = "exception"
        texts = [e.message for e in lines]
        text = None
        scheduled = isinstance(traced, ScheduledRun)
        admits = scheduled_admitted if scheduled else TailFilter.admits
        for tail in list(tails):
            if not admits(tail.filter, traced, outcome, texts, self._random):
                continue
            if text is None:
                render = scheduled_event_json if scheduled else event_json
                text = json.dumps(render(traced, outcome, lines, truncated))
            self._send(tail, text)

    def _send(self, tail, text):
        socket = tail.socket
        if socket.paused:
            tail.dropped += 1
            return
        if tail.dropped:
            dropped, tail.dropped = tail.dropped, 0
            socket.send_text(
                json.dumps(
                    overload_notice(
                        self._clock,
                        f"funcplane dropped {dropped} events while this tail read too slowly",
                    )
                )
            )
        socket.send_text(text)
