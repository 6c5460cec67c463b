import signal

from twisted.internet.error import ProcessTerminated
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.internet.defer import succeed

from funcplane.errors import StartFailed
from funcplane.runtime.supervisor import CRASHED, RUNNING, STARTING, STOPPED, Supervisor
from tests.fakes import FakeLauncher, spec


class SupervisorTests(SynchronousTestCase):
    def setUp(self):
        self.launcher = FakeLauncher()
        self.loaded = []
        self.supervisor = Supervisor(self.launcher, self.load, grace=7)

    def load(self, version_id):
        self.loaded.append(version_id)
        return succeed(spec(version_id=version_id))

    def test_single_flight(self):
        """
        Requests arriving while a version starts share one start, and all get its socket
        once it is ready.
        """
        waiting = [self.supervisor.socket_for("a") for _ in range(3)]
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
        self.supervisor.socket_for("a")
        self.launcher.launched[0].become_ready()
        self.assertEqual(self.successResultOf(self.supervisor.socket_for("a")), "/run/a.sock")
        self.assertEqual(len(self.launcher.launched), 1)

    def test_start_failure_reaches_every_waiter(self):
        """
        A failed start fails every waiter with the runtime's error, after the process has
        gone, and leaves the version stopped so a later request tries again.
        """
        waiting = [self.supervisor.start(spec()), self.supervisor.socket_for("id1")]
        child = self.launcher.launched[0]
        child._ready.fire(StartFailed("boom"))
        for d in waiting:
            self.assertNoResult(d)
        self.assertEqual(child.signals, [signal.SIGTERM])
        child.exit(ProcessTerminated(1))
        for d in waiting:
            self.assertEqual(str(self.failureResultOf(d, StartFailed).value), "boom")
        self.assertEqual(self.supervisor.state("id1"), STOPPED)
        self.supervisor.socket_for("id1")
        self.assertEqual(len(self.launcher.launched), 2)

    def test_crash(self):
        """
        A child that exits on its own is noticed at once, logged with its exit status and
        stderr, shown as crashed, and started again by the next request.
        """
        self.supervisor.socket_for("a")
        child = self.launcher.launched[0]
        child.become_ready()
        with capturedLogs() as events:
            child.exit(ProcessTerminated(signal=9))
        self.assertEqual(self.supervisor.state("a"), CRASHED)
        [event] = events
        self.assertEqual((event["function"], event["version"], event["stderr"]), ("hello", "v1", "last words"))
        self.assertIn("signal 9", event["reason"])
        d = self.supervisor.socket_for("a")
        self.launcher.launched[1].become_ready()
        self.assertEqual(self.successResultOf(d), "/run/a.sock")
        self.assertEqual(self.supervisor.state("a"), RUNNING)

    def test_stop(self):
        """
        stop() stops the child with the grace period and fires when it has exited; the
        version is then stopped, not crashed.
        """
        self.supervisor.socket_for("a")
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
        self.supervisor.socket_for("a")
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
            self.supervisor.socket_for(name)
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
        supervisor = Supervisor(FakeLauncher(auto_ready=True), self.load)
        child = self.successResultOf(supervisor.start(spec(version_id="s")))
        self.assertEqual(child.spec.id, "s")
        self.assertEqual(self.successResultOf(supervisor.socket_for("s")), "/run/s.sock")
