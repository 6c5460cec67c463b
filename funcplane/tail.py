"""
Live tails, for C{wrangler tail}: every request a function answers, with the lines its
version printed meanwhile, as a stream of Cloudflare trace events on a WebSocket.

A tail is made by the API (L{Tails.open}), which answers with a WebSocket address; the tail
lives while that WebSocket is open, and ends when it closes, when the API deletes it, when
its function is deleted, or when it expires.  The address's id is the only credential
the WebSocket needs (wrangler sends no token there, as on Cloudflare), so it is 128 random
bits and appears in no log.

The proxy tells L{Tails.request_done} about each finished request, only while some tail is
open.  A child's lines reach funcplane a moment after it prints them, so an event waits
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

from funcplane import errors
from funcplane.cfjson import cf_id
from funcplane.deadline import Deadline
from funcplane.routing import canonical_host, plain_id, split_host
from funcplane.websocket import GOING_AWAY, NORMAL, WebSocketServer

# A tail ends this long after it is made, as Cloudflare's do.
TAIL_SECONDS = 6 * 3600
# A tail whose WebSocket has not connected this long after it was made is dropped.
CONNECT_SECONDS = 60
# A tail's WebSocket that sends nothing this long is closed (wrangler pings every 10 s):
# a client that vanished without closing does not hold a tail for hours.
SILENT_SECONDS = 60
# Lines a version prints this soon after a response still count as that request's.
SETTLE_SECONDS = 0.1
TAILS_PER_FUNCTION = 10
# The most lines one event carries; more are dropped and the event says C{truncated}.
LINES_PER_EVENT = 100
# The most lines of one version waiting for their request's event.
PENDING_LINES = 10_000
PROTOCOL = b"trace-v1"
# Request headers whose values a tail never shows.
REDACTED = frozenset([b"authorization", b"proxy-authorization", b"cookie"])
OUTCOMES = frozenset(["ok", "canceled", "exception", "exceededCpu", "exceededMemory", "unknown"])
_LEVELS = {"warning": "warn"}


@attrs.frozen
class Traced:
    """
    One request the proxy finished, as a tail sees it.

    @ivar outcome: C{ok} (the function answered), C{canceled} (the client left first) or
        C{unknown} (funcplane answered for it: it failed, or did not answer in time).
    @ivar status: the response's status, or L{None} if none was sent.
    """

    version_id: str
    host: bytes
    method: bytes
    target: bytes
    headers: tuple
    client: str
    secure: bool
    started: float
    status: object
    outcome: str


def _strings(value, what):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.InvalidRequest(f"the {what} filter must be a list of strings")
    return frozenset(value)


@attrs.frozen
class TailFilter:
    """
    Which events a tail receives: all of them unless a filter narrows it (every given
    filter must match).  See C{wrangler tail --help}.
    """

    sampling_rate: float = 1.0
    outcomes: object = None
    methods: object = None
    header: object = None
    clients: object = None
    query: object = None
    versions: object = None

    @classmethod
    def parse(cls, body, creator):
        """
        The filter a C{POST .../tails} body asks for (C{{"filters": [...]}}).

        @param creator: the address of whoever asks, which the client filter C{self} means.
        """
        entries = body.get("filters", [])
        if not isinstance(entries, list):
            raise errors.InvalidRequest("'filters' must be a list")
        found = {}
        for entry in entries:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise errors.InvalidRequest("each filter is an object with one key")
            [(key, value)] = entry.items()
            if key == "sampling_rate":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                    raise errors.InvalidRequest("sampling_rate must be a number above 0, at most 1")
                found["sampling_rate"] = float(value)
            elif key == "outcome":
                outcomes = _strings(value, "outcome")
                unknown = outcomes - OUTCOMES
                if unknown:
                    raise errors.InvalidRequest(f"unknown outcome {sorted(unknown)[0]!r}")
                found["outcomes"] = outcomes
            elif key == "method":
                found["methods"] = frozenset(m.upper() for m in _strings(value, "method"))
            elif key == "header":
                if not isinstance(value, dict) or not isinstance(value.get("key"), str):
                    raise errors.InvalidRequest("the header filter needs a 'key'")
                query = value.get("query")
                if query is not None and not isinstance(query, str):
                    raise errors.InvalidRequest("the header filter's 'query' must be a string")
                found["header"] = (value["key"].strip().lower().encode("latin-1", "replace"), query)
            elif key == "client_ip":
                found["clients"] = frozenset(
                    creator if ip == "self" else ip for ip in _strings(value, "client_ip")
                )
            elif key == "query":
                if not isinstance(value, str):
                    raise errors.InvalidRequest("the query filter must be a string")
                found["query"] = value
            elif key == "scriptVersion":
                found["versions"] = frozenset(plain_id(v) for v in _strings(value, "scriptVersion"))
            else:
                raise errors.InvalidRequest(
                    f"unknown filter {key!r}; funcplane knows sampling_rate, outcome, method,"
                    " header, client_ip, query and scriptVersion"
                )
        return cls(**found)

    def admits(self, traced, outcome, texts, random):
        """
        Whether an event passes: C{texts} are the messages it carries.
        """
        if self.outcomes is not None and outcome not in self.outcomes:
            return False
        if self.methods is not None and traced.method.decode("latin-1").upper() not in self.methods:
            return False
        if self.clients is not None and traced.client not in self.clients:
            return False
        if self.versions is not None and traced.version_id not in self.versions:
            return False
        if self.header is not None:
            key, query = self.header
            values = [v for k, v in traced.headers if k.lower() == key]
            if not values or (
                query is not None and query.encode("latin-1", "replace") not in values
            ):
                return False
        if self.query is not None and not any(self.query in text for text in texts):
            return False
        return self.sampling_rate >= 1 or random() < self.sampling_rate


@attrs.define(eq=False)
class Tail:
    """
    One tail: made by the API, then connected by one WebSocket (its L{socket}).
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


def _ms(seconds):
    return int(seconds * 1000)


def _exception(entry):
    first, _, stack = entry.message.partition("\n")
    name, colon, message = first.partition(": ")
    if not colon or " " in name:
        name, message = "Error", first
    return {"name": name, "message": message, "stack": stack, "timestamp": _ms(entry.time)}


def event_json(function, traced, outcome, lines, truncated):
    """
    The trace event (as Cloudflare's tail sends) of C{traced}, whose version printed C{lines}
    (L{funcplane.logbook.LogEntry}s); C{error} lines are its uncaught exceptions.
    """
    scheme = "https" if traced.secure else "http"
    url = f"{scheme}://{traced.host.decode('latin-1')}{traced.target.decode('latin-1')}"
    headers = {}
    for name, value in traced.headers:
        name = name.decode("latin-1").lower()
        shown = "REDACTED" if name.encode("latin-1") in REDACTED else value.decode("latin-1")
        headers[name] = f"{headers[name]}, {shown}" if name in headers else shown
    event = {"request": {"url": url, "method": traced.method.decode("latin-1"), "headers": headers, "cf": {}}}
    if traced.status is not None:
        event["response"] = {"status": traced.status}
    return {
        "outcome": outcome,
        "scriptName": function,
        "scriptVersion": {"id": cf_id(traced.version_id)},
        "exceptions": [_exception(e) for e in lines if e.level == "error"],
        "logs": [
            {"message": [e.message], "level": _LEVELS.get(e.level, e.level), "timestamp": _ms(e.time)}
            for e in lines
            if e.level != "error"
        ],
        "eventTimestamp": _ms(traced.started),
        "event": event,
        "diagnosticsChannelEvents": [],
        "truncated": truncated,
    }


def _notice(clock, message):
    """
    A message wrangler prints in red (a Cloudflare tail's C{overload} event).
    """
    return {
        "outcome": "ok",
        "scriptName": None,
        "exceptions": [],
        "logs": [],
        "eventTimestamp": _ms(clock.seconds()),
        "event": {"type": "overload", "message": message},
    }


class Tails:
    """
    Every live tail, and the events they receive.

    @param clock: an C{IReactorTime}.
    @param logbook: the L{funcplane.logbook.LogBook} the functions' lines come from.
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
        # (when, function, traced) of the events waiting for their lines, soonest first.
        self._due = collections.deque()
        self._flush_call = None
        #: Whether any tail is connected: the proxy reports requests only then.
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
                self._lines.pop(tail.function, None)
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

    def request_done(self, traced):
        """
        The proxy finished C{traced}: its event goes out once its lines are in.
        """
        parts = split_host(canonical_host(traced.host), self._domain)
        if parts is None or parts[0] not in self._live:
            return
        function = parts[0]
        starts = self._queued.setdefault(function, {}).setdefault(traced.version_id, [])
        bisect.insort(starts, traced.started)
        # Every event waits as long, so they fall due in order: one timer serves them all.
        self._due.append((self._clock.seconds() + SETTLE_SECONDS, function, traced))
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(SETTLE_SECONDS, self._flush)

    def _flush(self):
        self._flush_call = None
        now = self._clock.seconds()
        due = self._due
        while due and due[0][0] <= now:
            _, function, traced = due.popleft()
            self._emit(function, traced)
        if due:
            self._flush_call = self._clock.callLater(due[0][0] - now, self._flush)

    def _claim(self, function, traced):
        """
        Take the lines of C{traced}'s version that belong to it: those printed from its
        start until a later request to the version started, and those printed earlier
        that no other request waiting to go out can claim.  Lines are in time order.
        """
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

    def _emit(self, function, traced):
        tails = self._live.get(function)
        if not tails:
            return
        lines, truncated = self._claim(function, traced)
        outcome = traced.outcome
        if outcome == "ok" and any(e.level == "error" for e in lines):
            outcome = "exception"
        texts = [e.message for e in lines]
        text = None
        for tail in list(tails):
            if not tail.filter.admits(traced, outcome, texts, self._random):
                continue
            if text is None:
                text = json.dumps(event_json(function, traced, outcome, lines, truncated))
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
                    _notice(
                        self._clock,
                        f"funcplane dropped {dropped} events while this tail read too slowly",
                    )
                )
            )
        socket.send_text(text)


class TailSocket(WebSocketServer):
    """
    The WebSocket of one tail.  It sends events and reads nothing but wrangler's
    C{{"debug": ...}} and pings; while its client reads too slowly (the transport pauses it),
    events are dropped and counted, and the count is told when it catches up.  A client
    silent for L{SILENT_SECONDS} is taken for gone.

    @param clock: an C{IReactorTime}.
    """

    def __init__(self, tails, tail, clock):
        super().__init__(max_message=4096)
        self._tails = tails
        self._tail = tail
        self._silence = Deadline(clock)
        self.paused = False

    def connectionMade(self):
        self._tails.attached(self._tail, self)
        self._silence.set(SILENT_SECONDS, self._silent)

    def dataReceived(self, data):
        self._silence.set(SILENT_SECONDS, self._silent)
        super().dataReceived(data)

    def _silent(self):
        self.close(GOING_AWAY, "nothing heard from the client in 60 s")
        self.transport.abortConnection()

    def message_received(self, text):
        # wrangler's only message, {"debug": false}, asks for nothing funcplane changes.
        pass

    def connectionLost(self, reason):
        self._silence.stop()
        self._tails.detached(self._tail)

    # IPushProducer, for the transport.

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False

    def stopProducing(self):
        self.paused = True
