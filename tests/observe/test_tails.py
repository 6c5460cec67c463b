"""
Tests for L{funcplane.observe.tails}: filters, the life of a tail, and the events it receives, with
a Clock, a real LogBook and a fake L{ITailSocket}.
"""

import json
from collections import namedtuple

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyClass

from funcplane import errors
from funcplane.interfaces import ITailSocket
from funcplane.observe.logbook import LogBook
from funcplane.observe.tails import (
    CONNECT_SECONDS,
    LINES_PER_EVENT,
    PENDING_LINES,
    SETTLE_SECONDS,
    TAIL_SECONDS,
    TAILS_PER_FUNCTION,
    Tails,
)
from funcplane.observe.trace import TailFilter, Traced

Spec = namedtuple("Spec", "id function version")
V1 = Spec("1" * 32, "hello", "v1")
V2 = Spec("2" * 32, "hello", "v2")
OTHER = Spec("3" * 32, "other", "v1")
V1_UUID = "11111111-1111-1111-1111-111111111111"


@implementer(ITailSocket)
class FakeSocket:
    """
    Keeps what a tail sends it, and how it was closed.
    """

    def __init__(self):
        self.paused = False
        self.sent = []
        self.closed = None

    def send_text(self, text):
        self.sent.append(json.loads(text))

    def close(self, code, reason):
        self.closed = (code, reason)


verifyClass(ITailSocket, FakeSocket)


def traced(clock, spec=V1, host=b"hello.func.local", function="hello", **changes):
    values = dict(
        function=function,
        version_id=spec.id,
        host=host,
        method=b"GET",
        target=b"/path?q=1",
        headers=((b"Host", host), (b"Authorization", b"Bearer s3cret"), (b"X-Tag", b"a")),
        client="203.0.113.9",
        secure=False,
        started=clock.seconds(),
        status=200,
        outcome="ok",
    )
    values.update(changes)
    return Traced(**values)


class FilterTests(SynchronousTestCase):
    def admits(self, tail_filter, outcome="ok", texts=(), random=lambda: 0.5, **changes):
        return tail_filter.admits(traced(Clock(), **changes), outcome, list(texts), random)

    def test_no_filters(self):
        """
        An empty body or an empty list admits every event.
        """
        for body in [{}, {"filters": []}]:
            tail_filter = TailFilter.parse(body, "198.51.100.1")
            self.assertEqual(tail_filter, TailFilter())
            self.assertTrue(self.admits(tail_filter))

    def test_each_filter(self):
        """
        Each of wrangler's filters narrows what passes: outcome, method, header (key, or key
        and value), client address (C{self} is whoever made the tail), search text, version,
        and sampling.
        """
        def parse(*entries):
            return TailFilter.parse({"filters": list(entries)}, "198.51.100.1")

        outcome = parse({"outcome": ["exception", "unknown"]})
        self.assertTrue(self.admits(outcome, "exception"))
        self.assertFalse(self.admits(outcome, "ok"))
        method = parse({"method": ["post"]})
        self.assertTrue(self.admits(method, method=b"POST"))
        self.assertFalse(self.admits(method))
        header = parse({"header": {"key": "x-tag"}})
        self.assertTrue(self.admits(header))
        self.assertFalse(self.admits(header, headers=()))
        valued = parse({"header": {"key": "X-Tag", "query": "b"}})
        self.assertFalse(self.admits(valued))
        self.assertTrue(self.admits(valued, headers=((b"x-tag", b"b"),)))
        client = parse({"client_ip": ["self"]})
        self.assertTrue(self.admits(client, client="198.51.100.1"))
        self.assertFalse(self.admits(client))
        query = parse({"query": "needle"})
        self.assertTrue(self.admits(query, texts=["a needle here"]))
        self.assertFalse(self.admits(query, texts=["hay"]))
        version = parse({"scriptVersion": V1_UUID})
        self.assertTrue(self.admits(version))
        self.assertFalse(self.admits(version, version_id=V2.id))
        sampled = parse({"sampling_rate": 0.25})
        self.assertTrue(self.admits(sampled, random=lambda: 0.2))
        self.assertFalse(self.admits(sampled, random=lambda: 0.3))
        both = parse({"method": ["GET"]}, {"query": "needle"})
        self.assertFalse(self.admits(both, texts=["hay"]))
        self.assertTrue(self.admits(both, texts=["needle"]))

    def test_bad_filters(self):
        """
        A malformed filter is refused with a message naming it.
        """
        cases = [
            ({"filters": {}}, "must be a list"),
            ({"filters": [{"method": ["GET"], "query": "x"}]}, "one key"),
            ({"filters": [{"sampling_rate": 0}]}, "sampling_rate"),
            ({"filters": [{"sampling_rate": True}]}, "sampling_rate"),
            ({"filters": [{"outcome": ["fine"]}]}, "unknown outcome 'fine'"),
            ({"filters": [{"method": [1]}]}, "method filter"),
            ({"filters": [{"header": {"query": "x"}}]}, "needs a 'key'"),
            ({"filters": [{"query": 5}]}, "query filter"),
            ({"filters": [{"colour": "red"}]}, "unknown filter 'colour'"),
        ]
        for body, message in cases:
            error = self.assertRaises(errors.InvalidRequest, TailFilter.parse, body, "::1")
            self.assertIn(message, str(error))


class TailsCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.logbook = LogBook(self.clock)
        ids = iter(f"{i:032x}" for i in range(1, 1000))
        self.draws = []
        self.tails = Tails(self.clock, self.logbook, "func.local", random=self.draw, new_id=lambda: next(ids))

    def draw(self):
        self.draws.append(True)
        return 0.0

    def connect(self, function="hello", tail_filter=TailFilter()):
        tail = self.tails.open(function, tail_filter)
        socket = FakeSocket()
        self.tails.attached(self.tails.waiting(tail.id), socket)
        return tail, socket

    def request(self, spec=V1, lines=(), after=(), host=b"hello.func.local", **changes):
        """
        One request to C{spec} at C{host}: it starts, prints C{lines}, ends, then C{after}
        arrive.  As the proxy does, it is reported only if the tails are watching its host.
        """
        function = self.tails.watching(host)
        request = traced(self.clock, spec, host=host, function=function, **changes)
        for line in lines:
            self.clock.advance(0.001)
            self.logbook.add(spec, *line)
        self.clock.advance(0.002)
        if function is not None:
            self.tails.request_done(request)
        for line in after:
            self.logbook.add(spec, *line)
        self.clock.advance(0.001)
        return request


class LifeTests(TailsCase):
    def test_waiting_then_taken(self):
        """
        A new tail waits for one WebSocket; once taken, or if unknown, it cannot be taken.
        """
        tail = self.tails.open("hello", TailFilter())
        self.assertEqual((tail.id, tail.function), ("0" * 31 + "1", "hello"))
        self.assertEqual(tail.expires_at, self.clock.seconds() + TAIL_SECONDS)
        self.assertFalse(self.tails.active)
        self.tails.attached(self.tails.waiting(tail.id), FakeSocket())
        self.assertTrue(self.tails.active)
        self.assertRaises(errors.NoSuchTail, self.tails.waiting, tail.id)
        self.assertRaises(errors.NoSuchTail, self.tails.waiting, "f" * 32)

    def test_never_connected(self):
        """
        A tail nobody connects to is dropped after CONNECT_SECONDS.
        """
        tail = self.tails.open("hello", TailFilter())
        self.clock.advance(CONNECT_SECONDS - 1)
        self.assertIs(self.tails.waiting(tail.id), tail)
        self.clock.advance(1)
        self.assertRaises(errors.NoSuchTail, self.tails.waiting, tail.id)
        self.assertEqual(self.tails.count(), 0)

    def test_expires(self):
        """
        A connected tail is closed (1000) when it expires, and the tails go quiet.
        """
        _, socket = self.connect()
        self.clock.advance(TAIL_SECONDS - 1)
        self.assertIsNone(socket.closed)
        self.clock.advance(1)
        self.assertEqual(socket.closed, (1000, "tail expired"))
        self.assertFalse(self.tails.active)
        self.assertEqual(self.logbook.followers(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_delete(self):
        """
        Deleting a tail closes its socket; deleting it again, or through another function's
        name, does nothing.
        """
        tail, socket = self.connect()
        self.tails.delete("other", tail.id)
        self.assertIsNone(socket.closed)
        self.tails.delete("hello", tail.id)
        self.assertEqual(socket.closed, (1000, "tail deleted"))
        self.tails.delete("hello", tail.id)
        self.assertEqual(self.tails.count(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_socket_closed(self):
        """
        When the client closes the socket the tail ends without a close frame.
        """
        tail, socket = self.connect()
        self.tails.detached(tail)
        self.assertIsNone(socket.closed)
        self.assertFalse(self.tails.active)
        self.assertEqual(self.tails.count(), 0)

    def test_function_deleted(self):
        """
        Deleting a function ends its tails and no other's.
        """
        _, mine = self.connect("hello")
        _, theirs = self.connect("other")
        self.tails.end_function("hello")
        self.assertEqual(mine.closed, (1000, "tail the function was deleted"))
        self.assertIsNone(theirs.closed)
        self.assertTrue(self.tails.active)

    def test_stopping(self):
        """
        When funcplane stops, every tail closes with 1001 and no event is left to go out.
        """
        _, socket = self.connect()
        self.tails.open("hello", TailFilter())
        self.request()
        self.tails.close()
        self.assertEqual(socket.closed, (1001, "tail funcplane is stopping"))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.tails.count(), 0)

    def test_limit(self):
        """
        A function has at most TAILS_PER_FUNCTION tails, connected or waiting; another
        function is not held back by them.
        """
        for _ in range(TAILS_PER_FUNCTION):
            self.tails.open("hello", TailFilter())
        error = self.assertRaises(errors.TooManyTails, self.tails.open, "hello", TailFilter())
        self.assertIn("end one first", str(error))
        self.tails.open("other", TailFilter())


class EventTests(TailsCase):
    def test_event(self):
        """
        A finished request reaches the tail SETTLE_SECONDS later, in Cloudflare's shape,
        with its lines, its URL and headers (secrets redacted) and its status.
        """
        _, socket = self.connect()
        started = self.clock.seconds()
        self.request(lines=[("log", "hello from /path")])
        self.assertEqual(socket.sent, [])
        self.clock.advance(SETTLE_SECONDS)
        [event] = socket.sent
        self.assertEqual(
            event,
            {
                "outcome": "ok",
                "scriptName": "hello",
                "scriptVersion": {"id": V1_UUID},
                "exceptions": [],
                "logs": [{"message": ["hello from /path"], "level": "log", "timestamp": int((started + 0.001) * 1000)}],
                "eventTimestamp": int(started * 1000),
                "event": {
                    "request": {
                        "url": "http://hello.func.local/path?q=1",
                        "method": "GET",
                        "headers": {"host": "hello.func.local", "authorization": "REDACTED", "x-tag": "a"},
                        "cf": {},
                    },
                    "response": {"status": 200},
                },
                "diagnosticsChannelEvents": [],
                "truncated": False,
            },
        )

    def test_exception(self):
        """
        An uncaught error makes the outcome C{exception} and is listed apart from the logs.
        """
        _, socket = self.connect()
        self.request(
            lines=[("log", "before"), ("error", "TypeError: kaboom\n    at index.js:5:36", "exception")],
            status=500,
        )
        self.clock.advance(SETTLE_SECONDS)
        [event] = socket.sent
        self.assertEqual(event["outcome"], "exception")
        self.assertEqual([log["message"] for log in event["logs"]], [["before"]])
        [exception] = event["exceptions"]
        self.assertEqual(
            (exception["name"], exception["message"], exception["stack"]),
            ("TypeError", "kaboom", "    at index.js:5:36"),
        )

    def test_console_error_is_a_log(self):
        """
        A console.error line is a log at level error, as on Cloudflare: the outcome stays
        C{ok} and C{exceptions} empty; console.warn is a log at level warn.
        """
        _, socket = self.connect()
        self.request(lines=[("error", "TypeError: shown, not thrown"), ("warn", "careful")])
        self.clock.advance(SETTLE_SECONDS)
        [event] = socket.sent
        self.assertEqual((event["outcome"], event["exceptions"]), ("ok", []))
        self.assertEqual(
            [(log["level"], log["message"]) for log in event["logs"]],
            [("error", ["TypeError: shown, not thrown"]), ("warn", ["careful"])],
        )

    def test_other_outcomes(self):
        """
        A request the client left is C{canceled}, one funcplane answered for C{unknown},
        and one with no response has no C{response}.
        """
        _, socket = self.connect()
        self.request(outcome="canceled", status=None)
        self.request(outcome="unknown", status=504)
        self.clock.advance(SETTLE_SECONDS)
        self.assertEqual([e["outcome"] for e in socket.sent], ["canceled", "unknown"])
        self.assertNotIn("response", socket.sent[0]["event"])
        self.assertEqual(socket.sent[1]["event"]["response"], {"status": 504})

    def test_lines_follow_their_request(self):
        """
        Back-to-back requests each get the lines printed from their start until the next
        one's, even when they arrive after the response; lines printed before any request
        go with the first.
        """
        _, socket = self.connect()
        self.logbook.add(V1, "log", "starting up")
        self.clock.advance(0.01)
        self.request(target=b"/a", lines=[("log", "a1")], after=[("log", "a2")])
        self.request(target=b"/b", lines=[("log", "b1")], after=[("log", "b2")])
        self.request(target=b"/c", lines=[])
        self.clock.advance(SETTLE_SECONDS)
        self.assertEqual(
            [(e["event"]["request"]["url"][-2:], [l["message"][0] for l in e["logs"]]) for e in socket.sent],
            [("/a", ["starting up", "a1", "a2"]), ("/b", ["b1", "b2"]), ("/c", [])],
        )

    def test_versions_apart(self):
        """
        Lines of one version never go with another version's request, nor do other
        functions' requests reach the tail.
        """
        _, socket = self.connect()
        self.logbook.add(V2, "log", "from v2")
        self.logbook.add(OTHER, "log", "from other")
        self.request(V1, lines=[("log", "from v1")])
        self.request(OTHER, host=b"other.func.local")
        self.request(V1, host=b"admin.example")
        self.clock.advance(SETTLE_SECONDS)
        [event] = socket.sent
        self.assertEqual([l["message"] for l in event["logs"]], [["from v1"]])
        self.request(V2, host=b"v2.hello.func.local")
        self.clock.advance(SETTLE_SECONDS)
        self.assertEqual([l["message"] for l in socket.sent[1]["logs"]], [["from v2"]])

    def test_truncated(self):
        """
        An event carries at most LINES_PER_EVENT lines, the last ones, and says so.
        """
        _, socket = self.connect()
        self.request(lines=[("log", f"line {i}") for i in range(LINES_PER_EVENT + 5)])
        self.clock.advance(SETTLE_SECONDS)
        [event] = socket.sent
        self.assertTrue(event["truncated"])
        self.assertEqual(len(event["logs"]), LINES_PER_EVENT)
        self.assertEqual(event["logs"][-1]["message"], [f"line {LINES_PER_EVENT + 4}"])

    def test_unclaimed_lines_bounded(self):
        """
        Lines nobody claims are kept up to PENDING_LINES for a version; past that the oldest
        go, and the next event of that version says it is truncated.
        """
        _, socket = self.connect()
        for i in range(PENDING_LINES + 1):
            self.logbook.add(V1, "log", f"line {i}")
        self.assertLessEqual(len(self.tails._lines["hello"][V1.id]), PENDING_LINES)
        self.clock.advance(0.001)
        self.request(V1)
        self.request(V1)
        self.clock.advance(SETTLE_SECONDS)
        first, second = socket.sent
        self.assertEqual((first["truncated"], second["truncated"]), (True, False))
        self.assertEqual(first["logs"][-1]["message"], [f"line {PENDING_LINES}"])
        self.assertEqual(second["logs"], [])

    def test_names_in_any_case(self):
        """
        A tail made for C{Hello} follows the function that answers at C{hello.func.local},
        whose lines name it C{Hello}; deleting C{HELLO} ends it.
        """
        tail = self.tails.open("Hello", TailFilter())
        socket = FakeSocket()
        self.tails.attached(self.tails.waiting(tail.id), socket)
        upper = Spec(V1.id, "Hello", "v1")
        self.request(upper, lines=[("log", "seen")], host=b"HELLO.func.local")
        self.clock.advance(SETTLE_SECONDS)
        self.assertEqual([(e["scriptName"], e["logs"][0]["message"]) for e in socket.sent], [("hello", ["seen"])])
        self.tails.end_function("HELLO")
        self.assertEqual(socket.closed, (1000, "tail the function was deleted"))

    def test_filtered_per_tail(self):
        """
        Each tail gets only what its filter admits; sampling draws only for a tail that
        samples.
        """
        _, everything = self.connect()
        _, posts = self.connect(tail_filter=TailFilter(methods=frozenset(["POST"])))
        _, sampled = self.connect(tail_filter=TailFilter(sampling_rate=0.5))
        self.request(method=b"GET")
        self.request(method=b"POST")
        self.clock.advance(SETTLE_SECONDS)
        self.assertEqual(len(everything.sent), 2)
        self.assertEqual([e["event"]["request"]["method"] for e in posts.sent], ["POST"])
        self.assertEqual(len(sampled.sent), 2)
        self.assertEqual(len(self.draws), 2)

    def test_slow_reader(self):
        """
        While a socket is paused its events are dropped and counted; the next event it gets
        is preceded by a notice of how many were dropped.
        """
        _, socket = self.connect()
        socket.paused = True
        self.request()
        self.request()
        self.clock.advance(SETTLE_SECONDS)
        self.assertEqual(socket.sent, [])
        socket.paused = False
        self.request()
        self.clock.advance(SETTLE_SECONDS)
        notice, event = socket.sent
        self.assertEqual(
            notice["event"],
            {"type": "overload", "message": "funcplane dropped 2 events while this tail read too slowly"},
        )
        self.assertEqual(event["outcome"], "ok")

    def test_quiet_without_tails(self):
        """
        With no tail connected, lines are not kept and requests schedule nothing.
        """
        tail = self.tails.open("hello", TailFilter())
        self.logbook.add(V1, "log", "unheard")
        self.request()
        self.assertEqual(self.logbook.followers(), 0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # the connect deadline
        socket = FakeSocket()
        self.tails.attached(self.tails.waiting(tail.id), socket)
        self.request()
        self.clock.advance(SETTLE_SECONDS)
        self.assertEqual([e["logs"] for e in socket.sent], [[]])
