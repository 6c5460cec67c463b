"""
Superseded versions (L{funcplane.runtime.supervisor.Supervisor.retire}): a version that
serves no host but its own any more drops to the freeze tier as soon as its requests in
flight end, instead of running on until the freeze period or the idle timeout.
"""

import signal

from twisted.logger import capturedLogs

from funcplane.runtime.lifecycle import FROZEN, RUNNING, SUSPENDED, Lifecycle
from tests.runtime.test_supervisor import SupervisorCase


class RetireTests(SupervisorCase):
    """
    Retiring versions, with freezing on (the default of C{--freeze-after}).
    """

    lifecycle = Lifecycle(grace=7, idle_timeout=300, freeze_after=30)

    def events(self, captured):
        return [e for e in captured if e.get("log_namespace", "").startswith("funcplane.runtime")]

    def test_idle_frozen_at_once(self):
        """
        A running version with nothing in flight is frozen the moment it is retired, with
        an event naming it; its next request thaws it without a new process.
        """
        child = self.serve("a")
        with capturedLogs() as captured:
            self.supervisor.retire("a")
        self.assertEqual(self.supervisor.state("a"), FROZEN)
        self.assertEqual(child.signals, [signal.SIGSTOP])
        [event] = self.events(captured)
        self.assertEqual(
            (event["log_format"], event["function"], event["version"], event["why"]),
            (
                "froze {function}:{version} {why}; its next request thaws it",
                "hello",
                "v1",
                "now that it is superseded",
            ),
        )
        self.assertEqual(self.successResultOf(self.supervisor.ensure_running("a")), "/run/a.sock")
        self.assertEqual(child.signals, [signal.SIGSTOP, signal.SIGCONT])
        self.assertEqual(len(self.launcher.launched), 1)

    def test_busy_frozen_when_its_requests_end(self):
        """
        A version retired with requests in flight keeps serving them, and is frozen as the
        last one ends, long before the freeze period.
        """
        child = self.serve("a")
        first = self.supervisor.lease("a")
        second = self.supervisor.lease("a")
        self.supervisor.retire("a")
        self.assertEqual((self.supervisor.state("a"), child.signals), (RUNNING, []))
        first.release()
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        second.release()
        self.assertEqual((self.supervisor.state("a"), child.signals), (FROZEN, [signal.SIGSTOP]))

    def test_asked_for_again(self):
        """
        A version asked for (ensure_running, as before a host is pointed at it again)
        after it was retired and before its requests ended is left to the idle timers.
        """
        self.serve("a")
        lease = self.supervisor.lease("a")
        self.supervisor.retire("a")
        self.successResultOf(self.supervisor.ensure_running("a"))
        lease.release()
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.clock.advance(30)
        self.supervisor.reap()
        self.assertEqual(self.supervisor.state("a"), FROZEN)

    def test_once(self):
        """
        Retiring acts once: a retired version thawed by a request is frozen again by the
        freeze period, not as that request ends.
        """
        self.serve("a")
        self.supervisor.retire("a")
        self.serve("a")
        self.assertEqual(self.supervisor.state("a"), RUNNING)

    def test_warm_not_frozen(self):
        """
        A version that is some function's latest again is not frozen by a retirement.
        """
        self.serve("a")
        lease = self.supervisor.lease("a")
        self.supervisor.retire("a")
        self.warm.add("a")
        lease.release()
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.supervisor.retire("a")
        self.assertEqual(self.supervisor.state("a"), RUNNING)

    def test_not_running(self):
        """
        Retiring a version that is not running (unknown, or starting) does nothing.
        """
        self.supervisor.retire("nope")
        self.supervisor.ensure_running("a")
        self.supervisor.retire("a")
        self.launcher.launched[0].become_ready()
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.assertEqual(self.launcher.launched[0].signals, [])

    def test_forgotten_not_kept(self):
        """
        A version deleted while it was retiring is not remembered: nothing grows with the
        versions ever deleted.
        """
        self.serve("a")
        lease = self.supervisor.lease("a")
        self.supervisor.retire("a")
        self.supervisor.forget("a")
        self.assertEqual(self.supervisor._reaper.retiring, set())
        lease.release()

    def test_failing_signal_does_not_reach_the_request(self):
        """
        A freeze that raises, as the last request ends, is logged with the version; the
        request's release does not raise.
        """
        child = self.serve("a")
        lease = self.supervisor.lease("a")
        self.supervisor.retire("a")

        def broken(signum):
            raise OSError("no such process")

        child.signal = broken
        with capturedLogs() as captured:
            lease.release()
        [failure] = [e for e in captured if "log_failure" in e]
        self.assertEqual(failure["version_id"], "a")
        self.flushLoggedErrors(OSError)


class RetireWithoutFreezingTests(SupervisorCase):
    """
    Retiring versions with freezing off (C{--freeze-after 0}).
    """

    lifecycle = Lifecycle(grace=7, idle_timeout=300, freeze_after=None)

    def test_suspended(self):
        """
        Without a freeze tier, a retired version is suspended (SIGTERM, then its process
        is gone) once its requests end.
        """
        child = self.serve("a")
        lease = self.supervisor.lease("a")
        self.supervisor.retire("a")
        lease.release()
        self.assertEqual(self.supervisor.state("a"), SUSPENDED)
        self.assertEqual((child.signals, child.grace), ([signal.SIGTERM], 7))
