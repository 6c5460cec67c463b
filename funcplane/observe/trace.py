"""
Cloudflare trace events, as C{wrangler tail} receives them (protocol C{trace-v1}): what
the edge tells about a finished request (L{Traced}), which events a tail asks for
(L{TailFilter}), and the event's JSON (L{event_json}).
"""

import attrs

from funcplane import errors
from funcplane.ids import cf_id, plain_id
from funcplane.observe.logbook import EXCEPTION

# Request headers whose values a tail never shows.
REDACTED = frozenset([b"authorization", b"proxy-authorization", b"cookie"])
OUTCOMES = frozenset(["ok", "canceled", "exception", "exceededCpu", "exceededMemory", "unknown"])
_LEVELS = {"warning": "warn"}


@attrs.frozen
class Traced:
    """
    One request the edge finished, as a tail sees it.

    @ivar function: the function its host names (lower case).
    @ivar outcome: C{ok} (the function answered), C{canceled} (the client left first) or
        C{unknown} (funcplane answered for it: it failed, or did not answer in time).
    @ivar status: the response's status, or L{None} if none was sent.
    """

    function: str
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


def _ms(seconds):
    return int(seconds * 1000)


def _exception(entry):
    first, _, stack = entry.message.partition("\n")
    name, colon, message = first.partition(": ")
    if not colon or " " in name:
        name, message = "Error", first
    return {"name": name, "message": message, "stack": stack, "timestamp": _ms(entry.time)}


def threw(lines):
    """
    Whether C{lines} hold an uncaught exception (not merely a C{console.error}).
    """
    return any(e.kind == EXCEPTION for e in lines)


def lines_json(lines):
    """
    C{(exceptions, logs)} of a trace event carrying C{lines}: uncaught exceptions apart,
    everything else (C{console.error} included) at its own level.
    """
    exceptions = [_exception(e) for e in lines if e.kind == EXCEPTION]
    logs = [
        {"message": [e.message], "level": _LEVELS.get(e.level, e.level), "timestamp": _ms(e.time)}
        for e in lines
        if e.kind != EXCEPTION
    ]
    return exceptions, logs


def event_json(traced, outcome, lines, truncated):
    """
    The trace event (as Cloudflare's tail sends) of C{traced}, whose version printed C{lines}
    (L{funcplane.observe.logbook.LogEntry}s): its uncaught exceptions go in C{exceptions},
    everything else, C{console.error} included, in C{logs} at its own level.
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
    exceptions, logs = lines_json(lines)
    return {
        "outcome": outcome,
        "scriptName": traced.function,
        "scriptVersion": {"id": cf_id(traced.version_id)},
        "exceptions": exceptions,
        "logs": logs,
        "eventTimestamp": _ms(traced.started),
        "event": event,
        "diagnosticsChannelEvents": [],
        "truncated": truncated,
    }


def overload_notice(clock, message):
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
