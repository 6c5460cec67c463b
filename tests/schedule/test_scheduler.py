"""
Tests for L{funcplane.schedule.scheduler}: cron triggers fired on a L{Clock}, on time, once per
scheduled time, never late after downtime, never twice after a restart.
"""

from datetime import datetime, timezone

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from funcplane.schedule.cron import parse_cron
from funcplane.errors import InvalidCron, InvalidRequest, NoSuchFunction
from funcplane.model import Target
from funcplane.observe.logbook import LogBook
from funcplane.schedule.runs import RunResult
from funcplane.schedule.scheduler import SETTLE_SECONDS, Scheduler
from funcplane.store.schedules import SQLiteSchedules
from tests.fakes import deployment, memory_store, spec_for

NEW_YEAR = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
MINUTE = 60.0


class FakeRunner:
    """
    Records runs; each answers at once, or waits for the test when C{hold}.
    """

    def __init__(self):
        self.runs = []
        self.hold = False
        self.waiting = []

    def run(self, target, cron, scheduled_time):
        self.runs.append((target.version_id, cron, scheduled_time))
        result = RunResult(
            function=target.function, version=target.version, version_id=target.version_id,
            cron=cron, scheduled_time=scheduled_time, started=scheduled_time, ended=scheduled_time,
            outcome="ok",
        )
        if self.hold:
            d = Deferred()
            self.waiting.append((d, result))
            return d
        return succeed(result)


class BrokenClaims:
    """
    Stored schedules whose next C{claims_failing} claims fail.
    """

    def __init__(self, schedules):
        self._schedules = schedules
        self.claims_failing = 0

    def __getattr__(self, name):
        return getattr(self._schedules, name)

    def claim(self, function, cron, tick):
        if self.claims_failing:
            self.claims_failing -= 1
            return fail(RuntimeError("the disk is full"))
        return self._schedules.claim(function, cron, tick)


class SchedulerCase(SynchronousTestCase):
    """
    A started scheduler on a L{Clock} at 00:01 on 2026-01-01, over a real store holding
    C{hello} (version C{v1}, id C{id1}), with a L{FakeRunner}.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NEW_YEAR + MINUTE)  # 00:01
        self.store = memory_store(self)
        d = deployment(function="hello", version="v1")
        self.successResultOf(self.store.publish(d, spec_for(d, "id1"), 1.0, "dep1", None))
        self.schedules = BrokenClaims(SQLiteSchedules(self.store))
        self.runner = FakeRunner()
        self.logbook = LogBook(self.clock)
        self.scheduler = self.started()

    def started(self, clock=None):
        scheduler = Scheduler(clock or self.clock, self.schedules, self.runner, self.logbook)
        self.successResultOf(scheduler.startService())
        self.addCleanup(lambda: scheduler.running and scheduler.stopService())
        return scheduler

    def put(self, *crons, scheduler=None):
        scheduler = scheduler or self.scheduler
        return self.successResultOf(Deferred.fromCoroutine(scheduler.put("hello", [parse_cron(c) for c in crons])))

    def run_now(self, function, cron=None):
        return Deferred.fromCoroutine(self.scheduler.run_now(function, cron))

    def at(self, minute, second=0.0):
        """
        Advance the clock to 00:mm:ss.
        """
        self.clock.advance(NEW_YEAR + minute * MINUTE + second - self.clock.seconds())


class SchedulerTests(SchedulerCase):
    def test_fires_on_time(self):
        """
        A schedule fires at each time its expression names, not a moment before, on the
        function's latest version, with that time.
        """
        self.put("*/5 * * * *")
        self.at(4, 59.9)
        self.assertEqual(self.runner.runs, [])
        self.at(5)
        self.assertEqual(self.runner.runs, [("id1", "*/5 * * * *", NEW_YEAR + 5 * MINUTE)])
        self.at(10)
        self.assertEqual([r[2] for r in self.runner.runs], [NEW_YEAR + 5 * MINUTE, NEW_YEAR + 10 * MINUTE])
        self.assertEqual(self.scheduler.scheduled(), {("hello", "*/5 * * * *"): NEW_YEAR + 15 * MINUTE})

    def test_not_backfilled(self):
        """
        Times missed while funcplane was down do not run late: a scheduler started at
        00:07 first fires at 00:10, and a clock that jumps ahead runs once, not once per
        missed time.
        """
        self.put("*/5 * * * *")
        self.scheduler.stopService()
        self.at(7)
        self.scheduler = self.started()
        self.at(9, 59)
        self.assertEqual(self.runner.runs, [])
        self.at(10)
        self.assertEqual(len(self.runner.runs), 1)
        self.at(42)
        self.assertEqual([r[2] for r in self.runner.runs], [NEW_YEAR + 10 * MINUTE, NEW_YEAR + 15 * MINUTE])
        self.assertEqual(self.scheduler.scheduled(), {("hello", "*/5 * * * *"): NEW_YEAR + 45 * MINUTE})

    def test_not_twice_after_restart(self):
        """
        A time that ran before a restart does not run again, even if the new process's
        clock says it is still due (the database records the last time each schedule
        fired for).
        """
        self.put("*/5 * * * *")
        self.at(5)
        self.assertEqual(len(self.runner.runs), 1)
        self.scheduler.stopService()
        behind = Clock()
        behind.advance(NEW_YEAR + 4 * MINUTE)
        with capturedLogs() as events:
            again = self.started(behind)
            behind.advance(MINUTE)
        self.assertEqual(len(self.runner.runs), 1)
        self.assertIn("already ran", " ".join(e["log_format"] for e in events))
        behind.advance(5 * MINUTE)
        self.assertEqual(len(self.runner.runs), 2)
        again.stopService()

    def test_slow_run(self):
        """
        A run still going when its schedule's next time comes neither delays nor skips that
        time, and its end sets no second timer.
        """
        self.put("* * * * *")
        self.runner.hold = True
        self.at(2)
        self.at(3)
        self.assertEqual([r[2] for r in self.runner.runs], [NEW_YEAR + 2 * MINUTE, NEW_YEAR + 3 * MINUTE])
        for d, result in self.runner.waiting:
            d.callback(result)
        self.assertEqual(self.scheduler.scheduled(), {("hello", "* * * * *"): NEW_YEAR + 4 * MINUTE})
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_failure_logged_next_fires(self):
        """
        A run that fails (here, the database) is logged with the schedule and the time, and
        the next time still fires.
        """
        self.put("* * * * *")
        self.schedules.claims_failing = 1
        with capturedLogs() as events:
            self.at(2)
        [failed] = [e for e in events if e["log_level"] == LogLevel.critical]
        self.assertEqual((failed["function"], failed["cron"], failed["tick"]), ("hello", "* * * * *", NEW_YEAR + 2 * MINUTE))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.runner.runs, [])
        self.at(3)
        self.assertEqual(self.runner.runs, [("id1", "* * * * *", NEW_YEAR + 3 * MINUTE)])

    def test_put_takes_effect_at_once(self):
        """
        Putting schedules cancels the timers of those that went and sets those of new ones
        at once; one put twice (or with a repeat) sets one timer.
        """
        self.put("*/5 * * * *", "0 * * * *")
        self.put("*/2 * * * *", "0 * * * *", "*/2 * * * *")
        self.assertEqual(
            self.scheduler.scheduled(),
            {("hello", "*/2 * * * *"): NEW_YEAR + 2 * MINUTE, ("hello", "0 * * * *"): NEW_YEAR + 60 * MINUTE},
        )
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)
        self.at(2)
        self.at(4)
        self.assertEqual([r[1:] for r in self.runner.runs], [("*/2 * * * *", NEW_YEAR + 2 * MINUTE), ("*/2 * * * *", NEW_YEAR + 4 * MINUTE)])
        self.put()
        self.assertEqual((self.scheduler.scheduled(), self.clock.getDelayedCalls()), ({}, []))

    def test_deleted_function_stops(self):
        """
        A function deleted (its schedules go with it) stops firing: at its next time
        nothing runs and its timer is gone.
        """
        self.put("* * * * *")
        self.successResultOf(self.store.delete_function("hello"))
        self.at(2)
        self.assertEqual(self.runner.runs, [])
        self.assertEqual((self.scheduler.scheduled(), self.clock.getDelayedCalls()), ({}, []))

    def test_stop_cancels(self):
        """
        Stopping cancels every timer and the runs in flight, and fires once they ended.
        """
        self.put("* * * * *")
        self.runner.hold = True
        self.at(2)
        [(run, _)] = self.runner.waiting
        self.successResultOf(self.scheduler.stopService())
        self.assertTrue(run.called)
        self.assertEqual(self.scheduler.scheduled(), {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_loads_stored(self):
        """
        Started, the scheduler sets a timer for each stored schedule, computed from now.
        """
        self.put("*/5 * * * *", "0 0 * * 2")
        self.scheduler.stopService()
        self.assertEqual(
            self.started().scheduled(),
            {("hello", "*/5 * * * *"): NEW_YEAR + 5 * MINUTE, ("hello", "0 0 * * 2"): NEW_YEAR + 4 * 86400},
        )


class RunNowTests(SchedulerCase):
    def test_default_first_schedule(self):
        """
        Run by hand with no cron, the first schedule runs now on the latest version; the
        answer comes once the lines printed meanwhile are in.
        """
        self.put("0 * * * *", "*/5 * * * *")
        d = self.run_now("hello")
        self.assertNoResult(d)
        self.clock.advance(SETTLE_SECONDS)
        result, lines = self.successResultOf(d)
        self.assertEqual((result.cron, result.version_id), ("0 * * * *", "id1"))
        self.assertEqual(self.runner.runs, [("id1", "0 * * * *", NEW_YEAR + MINUTE)])
        self.assertEqual(lines, [])

    def test_any_valid_cron(self):
        """
        Any valid expression may be run by hand, one of the function's or not; an invalid
        one is refused, and so is a run with no cron when the function has none.
        """
        d = self.run_now("hello", "*/7 * * * *")
        self.clock.advance(SETTLE_SECONDS)
        self.assertEqual(self.successResultOf(d)[0].cron, "*/7 * * * *")
        self.failureResultOf(self.run_now("hello", "0 0 * * 0"), InvalidCron)
        failure = self.failureResultOf(self.run_now("hello"), InvalidRequest)
        self.assertIn("hello has no cron triggers; give the cron expression", str(failure.value))
        self.failureResultOf(self.run_now("nope", "* * * * *"), NoSuchFunction)

    def test_target_none(self):
        """
        A function whose schedules run nowhere (no version) still answers, from the runner.
        """
        self.put("* * * * *")
        self.schedules.target = lambda function: succeed(Target("hello", None, None))
        d = self.run_now("hello")
        self.assertEqual(self.successResultOf(d)[1], [])

