import os
import signal
import tempfile

from twisted.internet.defer import succeed
from twisted.internet.error import ProcessTerminated
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import AtCapacity, StartFailed
from funcplane.runtime.supervisor import (
    CRASHED,
    FROZEN,
    RUNNING,
    STARTING,
    STOPPED,
    SUSPENDED,
    Lifecycle,
    Runtime,
    Supervisor,
)
from funcplane.runtime.config import ConfigBuilder, RuntimeSettings
from funcplane.runtime.egress import EgressPolicy
from funcplane.runtime.process import CONTROL_FD, WorkerdLauncher
from funcplane.runtime.watchdog import SpinWatch
from tests.fakes import FakeLauncher, FakeProcessReactor, spec
from tests.runtime.test_config import SCHEMA


class SupervisorCase(SynchronousTestCase):
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
        self.warm.add("a")
        self.serve("a")
        self.clock.advance(600)
        self.assertEqual(self.supervisor.state("a"), RUNNING)

    def test_scale_to_zero(self):
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
        self.assertIn("90% of a CPU", formatEvent(events[0]))
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
