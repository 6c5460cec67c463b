"""
Tests for L{funcplane.schedule.runs} and L{funcplane.observe.scheduled}: one scheduled run
(woken, counted in flight, delivered) and how it is told: its outcome, a line in the logs,
an exception line, and a scheduled trace event for the tails carrying the lines printed
during the run.
"""

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import StartFailed
from funcplane.model import Target
from funcplane.observe.logbook import CONSOLE, EXCEPTION, RUNTIME, LogBook
from funcplane.observe.tails import SETTLE_SECONDS, Tails
from funcplane.observe.trace import TailFilter
from funcplane.runtime.delivery import NotDelivered
from funcplane.schedule.runs import ScheduledRunner
from tests.fakes import FakeSupervisor
from tests.observe.test_tails import FakeSocket, Spec

VERSION_ID = "1" * 32
V1 = Spec(VERSION_ID, "Hello", "v1")
TARGET = Target("Hello", VERSION_ID, "v1")
CRON = "*/5 * * * *"
TICK = 1_800_000_000.0


class RunnerCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(TICK)
        self.supervisor = FakeSupervisor()
        self.logbook = LogBook(self.clock)
        self.tails = Tails(self.clock, self.logbook, "func.local")
        self.delivered = []
        self.answer = succeed({"outcome": "ok"})
        self.runner = ScheduledRunner(self.clock, self.supervisor, self.deliver, self.logbook, self.tails)

    def deliver(self, socket_path, cron, scheduled_time):
        self.delivered.append((socket_path, cron, scheduled_time, self.supervisor.in_flight.get(VERSION_ID)))
        return self.answer

    def run_once(self, target=TARGET):
        return Deferred.fromCoroutine(self.runner.run(target, CRON, TICK))

    def tail(self, body=None):
        tail = self.tails.open("hello", TailFilter.parse(body or {}, "127.0.0.1"))
        socket = FakeSocket()
        self.tails.attached(tail, socket)
        return socket


class RunnerTests(RunnerCase):
    def test_ok(self):
        """
        The version is woken (C{ensure_running}) and counted in flight while the event is
        delivered to its socket; the outcome is C{ok}; the logs get one line saying so.
        """
        result = self.successResultOf(self.run_once())
        self.assertEqual(self.supervisor.asked, [VERSION_ID])
        self.assertEqual(self.delivered, [(f"/run/{VERSION_ID}.sock", CRON, TICK, 1)])
        self.assertEqual(self.supervisor.in_flight[VERSION_ID], 0)
        self.assertEqual((result.outcome, result.message, result.error), ("ok", None, None))
        [line] = self.logbook.lines([VERSION_ID])
        self.assertEqual((line.kind, line.level, line.function, line.version), (RUNTIME, "info", "Hello", "v1"))
        self.assertEqual(line.message, 'scheduled "*/5 * * * *" @ 2027-01-15T08:00:00.000Z - Ok (0 ms)')

    def test_exception(self):
        """
        A handler that threw is an C{exception} with its name, message and stack; its stack
        is an exception line in the logs, as an uncaught error's.
        """
        error = {"name": "RangeError", "message": "boom", "stack": "RangeError: boom\n    at x (worker.js:1:2)"}
        self.answer = succeed({"outcome": "exception", "error": error})
        result = self.successResultOf(self.run_once())
        self.assertEqual((result.outcome, result.error), ("exception", error))
        exception, summary = self.logbook.lines([VERSION_ID])
        self.assertEqual((exception.kind, exception.message), (EXCEPTION, error["stack"]))
        self.assertEqual(summary.level, "error")
        self.assertIn("Exception Thrown (0 ms): RangeError: boom", summary.message)

    def test_no_handler(self):
        """
        A version without a scheduled handler runs nothing: C{noHandler}, with the reason.
        """
        self.answer = succeed({"outcome": "noHandler", "message": "the version has no scheduled handler: x"})
        result = self.successResultOf(self.run_once())
        self.assertEqual((result.outcome, result.message), ("noHandler", "the version has no scheduled handler: x"))
        [line] = self.logbook.lines([VERSION_ID])
        self.assertEqual(line.level, "warn")
        self.assertIn("No Handler (0 ms): the version has no scheduled handler", line.message)

    def test_not_delivered(self):
        """
        A version that cannot be reached, that does not start, or that does not answer in
        time is C{unknown}, with why; the lease is released all the same.
        """
        self.answer = fail(NotDelivered("the scheduled handler did not finish within 900 seconds"))
        result = self.successResultOf(self.run_once())
        self.assertEqual((result.outcome, result.message), ("unknown", "the scheduled handler did not finish within 900 seconds"))
        self.supervisor.result = fail(StartFailed("SyntaxError: nope"))
        result = self.successResultOf(self.run_once())
        self.assertEqual((result.outcome, result.message), ("unknown", "the version did not start: SyntaxError: nope"))
        self.assertEqual(self.supervisor.in_flight[VERSION_ID], 0)

    def test_no_version(self):
        """
        A function with no deployed version runs nothing and says so; nothing is woken.
        """
        result = self.successResultOf(self.run_once(Target("Hello", None, None)))
        self.assertEqual((result.outcome, result.message), ("unknown", "Hello has no deployed version to run it"))
        self.assertEqual(self.supervisor.asked, [])

    def test_cancelled(self):
        """
        A run cancelled (funcplane stops) is recorded as C{canceled} and goes on as a
        cancellation; the lease is released.
        """
        self.answer = Deferred()
        d = self.run_once()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.supervisor.in_flight[VERSION_ID], 0)
        [line] = self.logbook.lines([VERSION_ID])
        self.assertIn("Canceled", line.message)


class TailEventTests(RunnerCase):
    def test_event_shape(self):
        """
        A watched function's run is a scheduled trace event (as wrangler prints them:
        C{event} has C{cron} and C{scheduledTime} in ms, no request), carrying the lines
        its version printed while it ran, console and exception apart.
        """
        socket = self.tail()
        self.answer = Deferred()
        d = self.run_once()
        self.logbook.add(V1, "log", "cleaning up", kind=CONSOLE)
        self.answer.callback({"outcome": "ok"})
        self.successResultOf(d)
        self.clock.advance(SETTLE_SECONDS)
        [event] = socket.sent
        self.assertEqual(event["event"], {"cron": CRON, "scheduledTime": int(TICK * 1000)})
        self.assertEqual(
            (event["outcome"], event["scriptName"], event["scriptVersion"]),
            ("ok", "hello", {"id": "11111111-1111-1111-1111-111111111111"}),
        )
        self.assertEqual([log["message"] for log in event["logs"]][0], ["cleaning up"])
        self.assertEqual(event["exceptions"], [])
        self.assertEqual(event["eventTimestamp"], int(TICK * 1000))

    def test_exception_event(self):
        """
        A handler's exception is in the event's C{exceptions}, and its outcome is
        C{exception}.
        """
        socket = self.tail()
        error = {"name": "TypeError", "message": "late", "stack": "TypeError: late\n    at y"}
        self.answer = succeed({"outcome": "exception", "error": error})
        self.successResultOf(self.run_once())
        self.clock.advance(SETTLE_SECONDS)
        [event] = socket.sent
        self.assertEqual(event["outcome"], "exception")
        self.assertEqual([(e["name"], e["message"]) for e in event["exceptions"]], [("TypeError", "late")])

    def test_not_run_event_says_why(self):
        """
        A run that did not reach the handler is an C{unknown} event whose logs say why.
        """
        socket = self.tail()
        self.answer = succeed({"outcome": "noHandler", "message": "the version has no scheduled handler: x"})
        self.successResultOf(self.run_once())
        self.clock.advance(SETTLE_SECONDS)
        [event] = socket.sent
        self.assertEqual(event["outcome"], "unknown")
        self.assertIn(["[funcplane] the version has no scheduled handler: x"], [log["message"] for log in event["logs"]])

    def test_filters(self):
        """
        A filter on the method, a header or the client never passes a scheduled event (it
        has no request); one on the outcome or the version applies as to a request.
        """
        sockets = {
            "method": self.tail({"filters": [{"method": ["GET"]}]}),
            "header": self.tail({"filters": [{"header": {"key": "x"}}]}),
            "client": self.tail({"filters": [{"client_ip": ["1.2.3.4"]}]}),
            "ok": self.tail({"filters": [{"outcome": ["ok"]}]}),
            "failed": self.tail({"filters": [{"outcome": ["exception"]}]}),
            "version": self.tail({"filters": [{"scriptVersion": ["11111111-1111-1111-1111-111111111111"]}]}),
        }
        self.successResultOf(self.run_once())
        self.clock.advance(SETTLE_SECONDS)
        self.assertEqual(
            {name: len(socket.sent) for name, socket in sockets.items()},
            {"method": 0, "header": 0, "client": 0, "ok": 1, "failed": 0, "version": 1},
        )
