"""
The supervisor (L{funcplane.runtime.supervisor}) and its reaper
(L{funcplane.runtime.reaper}), driven by a Clock and fake children.
"""

import os
import signal
import tempfile

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ProcessTerminated
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from funcplane.errors import AtCapacity, StartFailed
from funcplane.interfaces import ISupervisor
from funcplane.runtime.lifecycle import (
    CRASHED,
    FROZEN,
    RUNNING,
    STARTING,
    STOPPED,
    SUSPENDED,
    Lifecycle,
    Runtime,
)
from funcplane.runtime.reaper import Reaper
from funcplane.runtime.supervisor import Supervisor
from funcplane.runtime.config import ConfigBuilder, RuntimeSettings
from funcplane.runtime.egress import EgressPolicy
from funcplane.runtime.process import CONTROL_FD, WorkerdLauncher
from funcplane.runtime.watchdog import SpinWatch
from tests.fakes import FakeLauncher, FakeProcessReactor, spec
from tests.runtime.test_config import SCHEMA


class SupervisorCase(SynchronousTestCase):
    """
    A supervisor on a Clock, with a fake launcher and a watchdog reading made-up CPU
    times; the base of the test classes below.
    """

    lifecycle = Lifecycle(grace=7)

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.launcher = FakeLauncher()
        self.loaded = []
        self.warm = set()
        self.cpu = {}
        self.supervisor = self.make()

    def make(self, **lifecycle):
        return Supervisor(
            self.clock,
            self.launcher,
            self.load,
            self.lifecycle if not lifecycle else Lifecycle(**dict(grace=7, **lifecycle)),
            is_warm=self.warm.__contains__,
            watch=SpinWatch(self.clock, cpu=lambda pid: self.cpu[pid].pop(0), sample=0.5, threshold=0.8),
            jitter=lambda: 1.0,
        )

    def load(self, version_id):
        self.loaded.append(version_id)
        return succeed(spec(version_id=version_id))

    def serve(self, version_id):
        """
        Serve one request on C{version_id}, starting it if needed; return its child.
        """
        lease = self.supervisor.lease(version_id)
        d = self.supervisor.ensure_running(version_id)
        for leaving in self.launcher.launched:
            # A version suspended to make room: it exits, then the new one is spawned.
            if leaving.pid is not None and signal.SIGTERM in leaving.signals:
                leaving.exit()
        child = self.launcher.launched[-1]
        if child.spec.id == version_id and child.pid is not None and not child._ready.done:
            child.become_ready()
        self.successResultOf(d)
        lease.release()
        return [c for c in self.launcher.launched if c.spec.id == version_id][-1]


class SupervisorTests(SupervisorCase):
    def test_interface(self):
        """
        The supervisor provides ISupervisor, the seam the edge and the platform use.
        """
        verifyObject(ISupervisor, self.supervisor)

    def test_single_flight(self):
        """
        Requests arriving while a version starts share one start, and all get its socket
        once it is ready.
        """
        waiting = [self.supervisor.ensure_running("a") for _ in range(3)]
        self.assertEqual(len(self.launcher.launched), 1)
        self.assertEqual(self.supervisor.state("a"), STARTING)
        for d in waiting:
            self.assertNoResult(d)
        self.launcher.launched[0].become_ready()
        self.assertEqual([self.successResultOf(d) for d in waiting], ["/run/a.sock"] * 3)
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.assertEqual(self.supervisor.pid("a"), self.launcher.launched[0].pid)
        self.assertEqual(self.loaded, ["a"])

    def test_running_is_immediate(self):
        """
        A running version's socket is returned without starting anything.
        """
        self.supervisor.ensure_running("a")
        self.launcher.launched[0].become_ready()
        self.assertEqual(self.successResultOf(self.supervisor.ensure_running("a")), "/run/a.sock")
        self.assertEqual(len(self.launcher.launched), 1)

    def test_running_socket(self):
        """
        The proxy's fast path: the socket of a running version at once, L{None} for one
        that is unknown, starting, or stopped (the proxy then asks C{ensure_running}).
        """
        self.assertIsNone(self.supervisor.running_socket("a"))
        self.supervisor.ensure_running("a")
        self.assertIsNone(self.supervisor.running_socket("a"))
        self.launcher.launched[0].become_ready()
        self.assertEqual(self.supervisor.running_socket("a"), "/run/a.sock")
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.supervisor.stop("a")
        self.assertIsNone(self.supervisor.running_socket("a"))

    def test_start_failure_reaches_every_waiter(self):
        """
        A failed start fails every waiter with the runtime's error, after the process has
        gone, and leaves the version stopped so a later request tries again.
        """
        waiting = [self.supervisor.start(spec()), self.supervisor.ensure_running("id1")]
        child = self.launcher.launched[0]
        child._ready.fire(StartFailed("boom"))
        for d in waiting:
            self.assertNoResult(d)
        self.assertEqual(child.signals, [signal.SIGTERM])
        child.exit(ProcessTerminated(1))
        for d in waiting:
            self.assertEqual(str(self.failureResultOf(d, StartFailed).value), "boom")
        self.assertEqual(self.supervisor.state("id1"), STOPPED)
        self.supervisor.ensure_running("id1")
        self.assertEqual(len(self.launcher.launched), 2)

    def test_runtime(self):
        """
        What the API shows of a version: its state, pid, last request and restarts.
        """
        self.assertEqual(self.supervisor.runtime("a"), Runtime(STOPPED, None, None, 0))
        child = self.serve("a")
        self.assertEqual(self.supervisor.runtime("a"), Runtime(RUNNING, child.pid, 1000.0, 0))

    def test_crash(self):
        """
        A child that exits on its own is noticed at once, logged with its exit status and
        stderr, shown as crashed, and started again by the next request.
        """
        self.supervisor.ensure_running("a")
        child = self.launcher.launched[0]
        child.become_ready()
        with capturedLogs() as events:
            child.exit(ProcessTerminated(signal=9))
        self.assertEqual(self.supervisor.state("a"), CRASHED)
        [event] = events
        self.assertEqual((event["function"], event["version"], event["stderr"]), ("hello", "v1", "last words"))
        self.assertIn("signal 9", event["reason"])
        d = self.supervisor.ensure_running("a")
        self.launcher.launched[1].become_ready()
        self.assertEqual(self.successResultOf(d), "/run/a.sock")
        self.assertEqual(self.supervisor.state("a"), RUNNING)

    def test_stop(self):
        """
        stop() stops the child with the grace period and fires when it has exited; the
        version is then stopped, not crashed.
        """
        self.supervisor.ensure_running("a")
        child = self.launcher.launched[0]
        child.become_ready()
        d = self.supervisor.stop("a")
        self.assertEqual((child.signals, child.grace), ([signal.SIGTERM], 7))
        self.assertNoResult(d)
        child.exit()
        self.successResultOf(d)
        self.assertEqual(self.supervisor.state("a"), STOPPED)

    def test_stop_while_starting(self):
        """
        Stopping a version that is starting waits for the start, then stops it.
        """
        self.supervisor.ensure_running("a")
        d = self.supervisor.stop("a")
        child = self.launcher.launched[0]
        self.assertEqual(child.signals, [])
        child.become_ready()
        self.assertEqual(child.signals, [signal.SIGTERM])
        child.exit()
        self.successResultOf(d)

    def test_stop_unknown(self):
        """
        Stopping a version with no child does nothing.
        """
        self.successResultOf(self.supervisor.stop("nothing"))

    def test_stop_service(self):
        """
        Stopping the service stops every child and fires only when all have exited.
        """
        self.supervisor.startService()
        for name in "ab":
            self.supervisor.ensure_running(name)
            self.launcher.launched[-1].become_ready()
        d = self.supervisor.stopService()
        first, second = self.launcher.launched
        first.exit()
        self.assertNoResult(d)
        second.exit()
        self.successResultOf(d)

    def test_nothing_spawned_once_stopping(self):
        """
        A start still waiting for its spec when the service stops spawns nothing: it fails
        with StartFailed saying funcplane is stopping, and the stop does not wait for it.
        """
        held = Deferred()
        self.load = lambda version_id: held
        self.supervisor = self.make()
        self.supervisor.startService()
        waiting = self.supervisor.ensure_running("late")
        stopped = self.supervisor.stopService()
        held.callback(spec(version_id="late"))
        self.assertEqual(self.launcher.launched, [])
        self.assertEqual(str(self.failureResultOf(waiting, StartFailed).value), "funcplane is stopping")
        self.successResultOf(stopped)

    def test_synchronous_start(self):
        """
        A start that completes at once (the spec at hand, the child ready immediately)
        still answers its caller.
        """
        supervisor = Supervisor(self.clock, FakeLauncher(auto_ready=True), self.load)
        child = self.successResultOf(supervisor.start(spec(version_id="s")))
        self.assertEqual(child.spec.id, "s")
        self.assertEqual(self.successResultOf(supervisor.ensure_running("s")), "/run/s.sock")


class IdleTests(SupervisorCase):
    lifecycle = Lifecycle(grace=7, idle_timeout=60)

    def setUp(self):
        super().setUp()
        self.supervisor.startService()
        self.addCleanup(self.supervisor.stopService)

    def test_interval(self):
        """
        The reaper looks every quarter of the idle timeout, at most every 5 seconds.
        """
        self.assertEqual(Lifecycle(idle_timeout=60).reap_interval, 5.0)
        self.assertEqual(Lifecycle(idle_timeout=2).reap_interval, 0.5)

    def test_suspended_after_timeout_not_before(self):
        """
        A version idle for the idle timeout is suspended (SIGTERM, grace), with an event
        saying so; not a reap earlier.
        """
        child = self.serve("a")
        self.clock.advance(55)
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        with capturedLogs() as events:
            self.clock.advance(5)
        self.assertEqual(self.supervisor.state("a"), SUSPENDED)
        self.assertEqual((child.signals, child.grace), ([signal.SIGTERM], 7))
        self.assertEqual([formatEvent(e) for e in events], ["suspended hello:v1 due to inactivity"])
        self.assertEqual((events[0]["function"], events[0]["version"]), ("hello", "v1"))
        child.exit()
        self.assertEqual(self.supervisor.state("a"), SUSPENDED)
        self.assertIsNone(self.supervisor.pid("a"))

    def test_never_with_request_in_flight(self):
        """
        A version with a request in flight is not suspended, however long it takes; its
        idle time counts from the end of the request.
        """
        self.serve("a")
        lease = self.supervisor.lease("a")
        self.clock.advance(600)
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        lease.release()
        self.clock.advance(55)
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.clock.advance(5)
        self.assertEqual(self.supervisor.state("a"), SUSPENDED)

    def test_latest_stays_warm(self):
        """
        A warm version (a function's latest) is never suspended, however long it is idle.
        """
        self.warm.add("a")
        self.serve("a")
        self.clock.advance(600)
        self.assertEqual(self.supervisor.state("a"), RUNNING)

    def test_scale_to_zero(self):
        """
        With scale-to-zero a warm version is suspended at the idle timeout like any other.
        """
        self.warm.add("a")
        self.supervisor = self.make(idle_timeout=60, scale_to_zero=True)
        self.supervisor.startService()
        self.addCleanup(self.supervisor.stopService)
        self.serve("a")
        self.clock.advance(60)
        self.assertEqual(self.supervisor.state("a"), SUSPENDED)

    def test_wake_single_flight(self):
        """
        Requests to a suspended version share one start and are all answered.
        """
        self.serve("a")
        self.clock.advance(60)
        old = self.launcher.launched[0]
        old.exit()
        waiting = [self.supervisor.ensure_running("a") for _ in range(3)]
        self.assertEqual(len(self.launcher.launched), 2)
        self.assertEqual(self.supervisor.state("a"), STARTING)
        self.launcher.launched[1].become_ready()
        self.assertEqual([self.successResultOf(d) for d in waiting], ["/run/a.sock"] * 3)

    def test_request_during_suspension(self):
        """
        A request that arrives while the old child is still exiting starts a new one; the
        old child's exit is no crash.
        """
        old = self.serve("a")
        self.clock.advance(60)
        new = self.serve("a")
        self.assertIsNot(new, old)
        old.exit()
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.assertEqual(self.supervisor.pid("a"), new.pid)
        self.assertEqual(self.supervisor.runtime("a").restarts, 0)


class FreezeTests(SupervisorCase):
    lifecycle = Lifecycle(grace=7, idle_timeout=60, freeze_after=10)

    def setUp(self):
        super().setUp()
        self.supervisor.startService()
        self.addCleanup(self.supervisor.stopService)

    def test_interval(self):
        """
        With freezing, the reaper looks every quarter of freeze_after, the shorter wait.
        """
        self.assertEqual(self.lifecycle.reap_interval, 2.5)

    def test_frozen_then_thawed(self):
        """
        A version idle for freeze_after is frozen (SIGSTOP), with an event; its next
        request thaws it (SIGCONT) and gets its socket at once, with no new process.
        """
        child = self.serve("a")
        self.clock.advance(7.5)
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        with capturedLogs() as events:
            self.clock.advance(2.5)
        self.assertEqual(self.supervisor.state("a"), FROZEN)
        self.assertEqual(child.signals, [signal.SIGSTOP])
        self.assertEqual([formatEvent(e) for e in events], ["froze hello:v1 due to inactivity; its next request thaws it"])
        self.assertIsNone(self.supervisor.running_socket("a"))
        self.assertEqual(self.successResultOf(self.supervisor.ensure_running("a")), "/run/a.sock")
        self.assertEqual(child.signals, [signal.SIGSTOP, signal.SIGCONT])
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.assertEqual(len(self.launcher.launched), 1)

    def test_frozen_then_suspended(self):
        """
        A frozen version still idle at the idle timeout is suspended like a running one.
        """
        child = self.serve("a")
        self.clock.pump([2.5] * 23)
        self.assertEqual(self.supervisor.state("a"), FROZEN)
        self.clock.advance(2.5)
        self.assertEqual(self.supervisor.state("a"), SUSPENDED)
        self.assertEqual((child.signals, child.grace), ([signal.SIGSTOP, signal.SIGTERM], 7))

    def test_not_warm_nor_busy(self):
        """
        A function's latest version is never frozen (it stays running unless
        scale-to-zero), nor is a version with a request in flight.
        """
        self.warm.add("a")
        self.serve("a")
        self.serve("b")
        lease = self.supervisor.lease("b")
        self.clock.advance(30)
        self.assertEqual((self.supervisor.state("a"), self.supervisor.state("b")), (RUNNING, RUNNING))
        lease.release()
        self.clock.advance(10)
        self.assertEqual(self.supervisor.state("b"), FROZEN)

    def test_frozen_count_against_budget(self):
        """
        Frozen children still hold their memory: they count against --max-running and are
        the first to be suspended to make room.
        """
        supervisor = self.make(idle_timeout=60, freeze_after=10, max_running=2)
        self.supervisor = supervisor
        self.serve("a")
        self.serve("b")
        supervisor.reap()
        self.clock.advance(10)
        supervisor.reap()
        self.assertEqual(supervisor.running_count(), 2)
        self.serve("c")
        self.assertEqual(sorted(supervisor.state(v) for v in "abc"), [FROZEN, RUNNING, SUSPENDED])


class BudgetTests(SupervisorCase):
    lifecycle = Lifecycle(grace=7, max_running=2)

    def test_least_recently_used_idle_makes_room(self):
        """
        At max_running, starting another version suspends the idle one used least
        recently; the others are not signalled.
        """
        a = self.serve("a")
        self.clock.advance(1)
        self.serve("b")
        self.clock.advance(1)
        self.serve("a")
        self.serve("c")
        self.assertEqual(self.supervisor.state("b"), SUSPENDED)
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.assertEqual(a.signals, [])

    def test_room_made_before_spawning(self):
        """
        The version suspended to make room has exited before the new one is spawned: there
        are never more than max_running processes, even for a moment.
        """
        a = self.serve("a")
        self.serve("b")
        d = self.supervisor.ensure_running("c")
        self.assertEqual(a.signals, [signal.SIGTERM])
        self.assertEqual(len(self.launcher.launched), 2)
        self.assertEqual(self.supervisor.state("c"), STARTING)
        self.assertEqual(self.supervisor.running_count(), 2)
        a.exit()
        self.assertEqual(len(self.launcher.launched), 3)
        self.launcher.launched[-1].become_ready()
        self.assertEqual(self.successResultOf(d), "/run/c.sock")

    def test_warm_kept_over_older(self):
        """
        To make room, an idle version that is not warm is suspended before a warm one,
        even one used less recently.
        """
        self.warm.add("a")
        self.serve("a")
        self.clock.advance(1)
        self.serve("b")
        self.serve("c")
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.assertEqual(self.supervisor.state("b"), SUSPENDED)

    def test_all_busy(self):
        """
        When every running version has a request in flight, nothing is started and the
        request fails with AtCapacity.
        """
        self.serve("a")
        self.serve("b")
        leases = [self.supervisor.lease("a"), self.supervisor.lease("b")]
        failure = self.failureResultOf(self.supervisor.ensure_running("c"), AtCapacity)
        self.assertIn("2 versions are running", str(failure.value))
        self.assertEqual(len(self.launcher.launched), 2)
        leases[0].release()
        self.serve("c")
        self.assertEqual(self.supervisor.state("a"), SUSPENDED)


class CrashTests(SupervisorCase):
    lifecycle = Lifecycle(grace=7, stable=10, backoff_initial=1, backoff_max=4)

    def setUp(self):
        super().setUp()
        self.supervisor.startService()
        self.addCleanup(self.supervisor.stopService)

    def crash(self):
        child = [c for c in self.launcher.launched if c.pid is not None][-1]
        child.exit(ProcessTerminated(1))

    def test_warm_restarts_with_backoff(self):
        """
        A warm version that keeps crashing restarts by itself: at once, then after 1, 2, 4,
        4 seconds; meanwhile its requests fail at once with the reason.
        """
        self.warm.add("a")
        self.serve("a")
        delays = []
        for _ in range(5):
            self.crash()
            launched = len(self.launcher.launched)
            self.clock.advance(0)
            waited = 0.0
            while len(self.launcher.launched) == launched:
                failure = self.failureResultOf(self.supervisor.ensure_running("a"), StartFailed)
                self.assertEqual(failure.value.reason, "CrashLoop")
                self.assertIn("last error: last words", str(failure.value))
                self.clock.advance(0.5)
                waited += 0.5
            delays.append(waited)
            self.launcher.launched[-1].become_ready()
            self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.assertEqual(delays, [0, 1, 2, 4, 4])
        self.assertEqual(self.supervisor.runtime("a").restarts, 5)

    def test_stable_run_resets_backoff(self):
        """
        A warm version that ran for the stable period before it crashed again restarts at
        once: its backoff starts over.
        """
        self.warm.add("a")
        self.serve("a")
        self.crash()
        self.clock.advance(0)
        self.launcher.launched[-1].become_ready()
        self.clock.advance(10)
        self.crash()
        self.clock.advance(0)
        self.assertEqual(len(self.launcher.launched), 3)

    def test_cold_restarts_on_request(self):
        """
        A version that is not warm stays crashed until its next request starts it.
        """
        self.serve("a")
        with capturedLogs() as events:
            self.crash()
        self.assertIn("exited unexpectedly", formatEvent(events[0]))
        self.clock.advance(100)
        self.assertEqual((self.supervisor.state("a"), len(self.launcher.launched)), (CRASHED, 1))
        self.serve("a")
        self.assertEqual(self.supervisor.state("a"), RUNNING)

    def test_wake_failure_backs_off(self):
        """
        A version that served before and now fails to start backs off like a crash.
        """
        self.serve("a")
        self.supervisor.stop("a")
        self.launcher.launched[0].exit()
        lease = self.supervisor.lease("a")
        d = self.supervisor.ensure_running("a")
        self.launcher.launched[-1].fail_start(StartFailed("Uncaught Error: gone bad"))
        self.failureResultOf(d, StartFailed)
        lease.release()
        self.assertEqual(self.supervisor.state("a"), CRASHED)
        self.assertEqual(len(self.launcher.launched), 2)


class ReaperTests(SupervisorCase):
    """
    A reaper tick that meets a failing version logs it with the version and goes on; the
    loop keeps running, and if it ends anyway the end is logged.
    """

    lifecycle = Lifecycle(grace=7, idle_timeout=60, freeze_after=10)

    def setUp(self):
        super().setUp()
        self.supervisor.startService()
        self.addCleanup(self.supervisor.stopService)

    def failures(self, events):
        return [
            (e["version_id"], e["function"], e["version"], str(e["log_failure"].value))
            for e in events
            if "log_failure" in e
        ]

    def test_signal_raising(self):
        """
        A child whose signal raises is logged with its version when the reaper tries to
        freeze it, the next version is still frozen, and the loop goes on: both are
        suspended at the idle timeout.
        """
        a = self.serve("a")
        b = self.serve("b")

        def broken(signum):
            raise OSError("signal failed")

        a.signal = broken
        with capturedLogs() as events:
            self.clock.advance(10)
        self.assertEqual(self.failures(events), [("a", "hello", "v1", "signal failed")])
        self.assertEqual(
            [e["log_format"] for e in events if "log_failure" in e],
            ["could not reap {function}:{version} ({version_id}); the others are reaped on"],
        )
        self.assertEqual((self.supervisor.state("a"), self.supervisor.state("b")), (RUNNING, FROZEN))
        self.assertEqual(b.signals, [signal.SIGSTOP])
        self.clock.pump([2.5] * 20)
        self.assertEqual((self.supervisor.state("a"), self.supervisor.state("b")), (SUSPENDED, SUSPENDED))
        self.assertEqual((a.grace, b.signals), (7, [signal.SIGSTOP, signal.SIGTERM]))
        # Each tick from 10 s to 57.5 s tried to freeze a again, and said so.
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 20)

    def test_take_out_failing(self):
        """
        A suspension that fails, at once or later, is logged with its version; versions
        that fall idle later are still suspended.
        """
        self.supervisor = self.make(idle_timeout=60)
        self.supervisor.startService()
        self.addCleanup(self.supervisor.stopService)
        a = self.serve("a")
        b = self.serve("b")

        def raising(grace):
            raise RuntimeError("stop raised")

        a.stop = raising
        b.stop = lambda grace: fail(RuntimeError("stop failed"))
        self.clock.advance(55)
        c = self.serve("c")
        with capturedLogs() as events:
            self.clock.advance(5)
        self.assertEqual(
            self.failures(events),
            [("a", "hello", "v1", "stop raised"), ("b", "hello", "v1", "stop failed")],
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        self.assertEqual(self.supervisor.state("c"), RUNNING)
        self.clock.advance(55)
        self.assertEqual(self.supervisor.state("c"), SUSPENDED)
        self.assertEqual(c.signals, [signal.SIGTERM])

    def test_loop_end_logged(self):
        """
        Should a tick fail outside any one version, the LoopingCall stops and its end is
        logged with the error, rather than lost in an unhandled Deferred.
        """

        def versions():
            raise RuntimeError("no versions")

        reaper = Reaper(self.clock, Lifecycle(idle_timeout=60), versions, lambda v: False, None)
        reaper.start()
        with capturedLogs() as events:
            self.clock.advance(15)
        [event] = events
        self.assertEqual(
            event["log_format"],
            "the reaper stopped: idle versions are no longer frozen or suspended",
        )
        self.assertEqual(str(event["log_failure"].value), "no versions")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class WedgeTests(SupervisorCase):
    lifecycle = Lifecycle(grace=7)

    def test_spinning_child_killed(self):
        """
        After a request timed out, a child that used most of a CPU while it was watched is
        SIGKILLed, and the next request starts a new one.
        """
        child = self.serve("a")
        self.cpu[child.pid] = [10.0, 10.45]
        with capturedLogs() as events:
            self.supervisor.request_timed_out("a")
            self.supervisor.request_timed_out("a")
            self.clock.advance(0.5)
        self.assertEqual(child.signals, [signal.SIGKILL])
        self.assertIn("it ran or waited for a CPU 90% of the time", formatEvent(events[0]))
        self.assertEqual(self.supervisor.state("a"), STOPPED)
        child.exit(ProcessTerminated(signal=9))
        self.assertEqual(self.supervisor.state("a"), STOPPED)
        self.assertEqual(self.supervisor.runtime("a").restarts, 1)
        self.assertIsNot(self.serve("a"), child)

    def test_waiting_child_kept(self):
        """
        A child whose request is slow but that is not busy (it waits on I/O) is kept.
        """
        child = self.serve("a")
        self.cpu[child.pid] = [10.0, 10.05]
        self.supervisor.request_timed_out("a")
        self.clock.advance(0.5)
        self.assertEqual(child.signals, [])
        self.assertEqual(self.supervisor.state("a"), RUNNING)


class ProcessReactorTests(SynchronousTestCase):
    """
    The supervisor driving the real launcher and children on a fake process reactor.
    """

    def setUp(self):
        self.reactor = FakeProcessReactor()
        run_dir = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.unlink(os.path.join(run_dir, f)) for f in os.listdir(run_dir)])
        launcher = WorkerdLauncher(
            self.reactor, "/opt/workerd", run_dir, ConfigBuilder(RuntimeSettings(egress=EgressPolicy()), SCHEMA)
        )
        self.supervisor = Supervisor(
            self.reactor, launcher, lambda version_id: succeed(spec(version_id=version_id)),
            Lifecycle(idle_timeout=60, grace=10),
        )
        self.supervisor.startService()
        self.ready = lambda spawned: spawned["protocol"].childDataReceived(
            CONTROL_FD, b'{"event":"listen","socket":"http","port":0}\n'
        )

    def test_suspension_escalates(self):
        """
        An idle child is sent SIGTERM when it is suspended, and SIGKILL if it is still
        there after the grace period; a request meanwhile starts a new process.
        """
        d = self.supervisor.ensure_running("a")
        first = self.reactor.spawned[0]
        self.ready(first)
        first_socket = self.successResultOf(d)
        self.reactor.advance(60)
        self.assertEqual(first["transport"].signals, [signal.SIGTERM, signal.SIGCONT])
        self.assertEqual(self.supervisor.state("a"), SUSPENDED)
        d = self.supervisor.ensure_running("a")
        self.assertEqual(len(self.reactor.spawned), 2)
        self.ready(self.reactor.spawned[1])
        self.assertNotEqual(self.successResultOf(d), first_socket)
        self.reactor.advance(10)
        self.assertEqual(first["transport"].signals, [signal.SIGTERM, signal.SIGCONT, signal.SIGKILL])
        first["transport"].exit(ProcessTerminated(signal=9))
        self.assertEqual(self.supervisor.state("a"), RUNNING)
