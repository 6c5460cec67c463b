"""
Starting every function's latest version when funcplane starts: a few at a time, and never
past the running budget.
"""

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from funcplane.model import FunctionRoutes
from funcplane.platform import Platform
from funcplane.routing import RouteTable
from funcplane.runtime.lifecycle import RUNNING, Lifecycle
from funcplane.runtime.supervisor import Supervisor
from tests.fakes import FakeLauncher, spec


def functions(count):
    return [FunctionRoutes(f"f{i}", f"id{i}", {"v1": f"id{i}"}, {}) for i in range(count)]


class StartLatestTests(SynchronousTestCase):
    """
    L{Platform.start_latest}, on a real supervisor with fake children.
    """

    def setUp(self):
        self.launcher = FakeLauncher()

    def platform(self, scale_to_zero=False, **lifecycle):
        self.supervisor = Supervisor(
            Clock(), self.launcher, lambda version_id: succeed(spec(version_id=version_id)),
            Lifecycle(scale_to_zero=scale_to_zero, **lifecycle),
        )
        return Platform(
            Clock(), None, self.supervisor, RouteTable("func.local"), scale_to_zero=scale_to_zero
        )

    def test_scale_to_zero(self):
        """
        With --scale-to-zero nothing is started at boot, and the log says why; each
        version starts on its first request.
        """
        platform = self.platform(scale_to_zero=True)
        with capturedLogs() as events:
            self.successResultOf(Deferred.fromCoroutine(platform.start_latest(functions(3))))
        self.assertEqual(self.launcher.launched, [])
        self.assertEqual(
            [formatEvent(e) for e in events],
            ["no version is started before its first request (--scale-to-zero)"],
        )

    def test_within_budget(self):
        """
        With --max-running 3 and ten functions, three latest versions start, no running one
        is suspended to make room for another, and the log says the rest start on demand.
        """
        platform = self.platform(max_running=3)
        with capturedLogs() as events:
            d = Deferred.fromCoroutine(platform.start_latest(functions(10)))
            self.assertEqual([c.spec.id for c in self.launcher.launched], ["id0", "id1", "id2"])
            for child in self.launcher.launched:
                child.become_ready()
            self.successResultOf(d)
        self.assertEqual(len(self.launcher.launched), 3)
        self.assertEqual([c.signals for c in self.launcher.launched], [[], [], []])
        self.assertEqual(
            [formatEvent(e) for e in events if e.get("log_namespace", "").startswith("funcplane.boot")],
            ["started the latest version of 3 of 10 functions; the others start on their first"
             " request (--max-running)"],
        )

    def test_a_few_at_a_time(self):
        """
        Without a budget every latest version starts, but no more than four at once.
        """
        platform = self.platform()
        d = Deferred.fromCoroutine(platform.start_latest(functions(6)))
        self.assertEqual(len(self.launcher.launched), 4)
        self.launcher.launched[0].become_ready()
        self.assertEqual(len(self.launcher.launched), 5)
        for child in self.launcher.launched[1:]:
            child.become_ready()
        self.launcher.launched[-1].become_ready()
        self.assertEqual(len(self.launcher.launched), 6)
        self.successResultOf(d)

    def test_failure_logged(self):
        """
        A latest version that cannot start is logged; the others still start.
        """
        platform = self.platform()
        with capturedLogs() as events:
            d = Deferred.fromCoroutine(platform.start_latest(functions(2)))
            self.launcher.launched[0].fail_start(RuntimeError("broken"))
            self.launcher.launched[1].become_ready()
            self.successResultOf(d)
        failures = [e for e in events if "log_failure" in e]
        self.assertEqual([formatEvent(e) for e in failures], ["could not start the latest version of f0"])
        self.flushLoggedErrors(RuntimeError)

    def test_cancelled(self):
        """
        Cancelled (funcplane is stopping), it starts nothing more, not even when the starts
        under way end, and logs no failure; those starts go on in the supervisor, which
        stops them when it stops.
        """
        platform = self.platform()
        with capturedLogs() as events:
            d = Deferred.fromCoroutine(platform.start_latest(functions(10)))
            self.assertEqual(len(self.launcher.launched), 4)
            d.cancel()
            self.failureResultOf(d, CancelledError)
            for child in self.launcher.launched:
                child.become_ready()
        self.assertEqual(len(self.launcher.launched), 4)
        self.assertEqual([self.supervisor.state(f"id{i}") for i in range(4)], [RUNNING] * 4)
        self.assertEqual([e for e in events if "log_failure" in e], [])
