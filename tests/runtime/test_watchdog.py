"""
Telling a spinning process from a waiting one.
"""

import os

import signal

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from funcplane.runtime.lifecycle import RUNNING, STOPPED, Lifecycle
from funcplane.runtime.supervisor import Supervisor
from funcplane.runtime.watchdog import SpinWatch, cpu_seconds, wanted_seconds
from tests.runtime.test_supervisor import SupervisorCase


class SpinWatchTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.readings = []
        self.watch = SpinWatch(self.clock, cpu=self.read, sample=0.5, threshold=0.8)

    def read(self, pid):
        reading = self.readings.pop(0)
        if isinstance(reading, Exception):
            raise reading
        return reading

    def test_share_over_the_sample(self):
        """
        The share is the CPU seconds used over the sample's half second; 0.9 of a CPU is
        spinning, 0.1 is not.
        """
        self.readings = [3.0, 3.45]
        d = self.watch.share(42)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        share = self.successResultOf(d)
        self.assertAlmostEqual(share, 0.9)
        self.assertTrue(self.watch.spinning(share))
        self.assertFalse(self.watch.spinning(0.1))

    def test_gone_process(self):
        """
        A process that exits before or during the sample is not spinning.
        """
        self.readings = [FileNotFoundError()]
        d = self.watch.share(42)
        self.clock.advance(0)
        self.assertIsNone(self.successResultOf(d))
        self.readings = [3.0, ProcessLookupError()]
        d = self.watch.share(42)
        self.clock.advance(0.5)
        self.assertIsNone(self.successResultOf(d))
        self.assertFalse(self.watch.spinning(None))

    def test_reads_proc(self):
        """
        cpu_seconds reads a live process's CPU time from /proc, and raises for a pid that
        does not exist.
        """
        self.assertGreater(cpu_seconds(os.getpid()), 0)
        self.assertRaises(OSError, cpu_seconds, 2**22 + 17)

    def test_wanted_sums_threads(self):
        """
        wanted_seconds adds what every thread of a process ran and waited to run (in
        nanoseconds, as schedstat says), skipping a thread that has ended; it reads a live
        process, and raises for a pid that does not exist.
        """
        proc = self.mktemp()
        for task, line in (("7", b"1500000000 500000000 12\n"), ("8", b"250000000 750000000 3\n")):
            os.makedirs(os.path.join(proc, "7", "task", task))
            with open(os.path.join(proc, "7", "task", task, "schedstat"), "wb") as f:
                f.write(line)
        os.makedirs(os.path.join(proc, "7", "task", "9"))
        self.assertEqual(wanted_seconds(7, proc=proc), 3.0)
        self.assertGreater(wanted_seconds(os.getpid()), 0)
        self.assertRaises(OSError, wanted_seconds, 2**22 + 17)


class QuotaTests(SynchronousTestCase):
    """
    The spin threshold is a share of what the child may use: its CPU quota when that is
    less than a core.
    """

    def test_half_a_core(self):
        """
        Under --child-cpu 0.5 a child spinning at its quota (0.48 of a core, throttled) is
        spinning; one waiting (0.05) is not.
        """
        watch = SpinWatch(Clock(), quota=0.5)
        self.assertAlmostEqual(watch.threshold, 0.4)
        self.assertTrue(watch.spinning(0.48))
        self.assertFalse(watch.spinning(0.05))

    def test_quota_of_a_core_or_more(self):
        """
        A quota of a core or more, or none, leaves the threshold a share of one core: a
        spinning isolate keeps one core busy at most.
        """
        for quota in [None, 1, 2.0]:
            self.assertAlmostEqual(SpinWatch(Clock(), quota=quota).threshold, 0.8)
        self.assertFalse(SpinWatch(Clock(), quota=2).spinning(0.5))


class QuotaSupervisorTests(SupervisorCase):
    """
    The supervisor judging with the watch of a child's quota.
    """

    def test_kills_throttled_spinner(self):
        """
        With the watch of a half-core quota, a child that used 0.225 s of CPU over the
        half-second watch (0.9 of its quota, and never 0.8 of a core) is killed.
        """
        self.supervisor = Supervisor(
            self.clock, self.launcher, self.load, Lifecycle(grace=7),
            watch=SpinWatch(self.clock, cpu=lambda pid: self.cpu[pid].pop(0), quota=0.5),
        )
        child = self.serve("a")
        self.cpu[child.pid] = [10.0, 10.225]
        with capturedLogs() as events:
            self.supervisor.request_timed_out("a")
            self.clock.advance(0.5)
        self.assertEqual(child.signals, [signal.SIGKILL])
        self.assertAlmostEqual(events[0]["percent"], 45.0)
        self.assertEqual(self.supervisor.state("a"), STOPPED)


class VerdictTests(SupervisorCase):
    """
    A request that arrives while a version's child is judged (a request to it timed out)
    waits for the verdict, and gets its own outcome: the same child if it is not
    spinning, a fresh one if it was killed.
    """

    lifecycle = Lifecycle(grace=7)

    def test_waits_then_fresh_child(self):
        """
        While the wedged child is watched, the fast path gives no socket and a new request
        waits; once the child is killed, the request is served by a new child, never by
        the killed one.
        """
        wedged = self.serve("a")
        self.cpu[wedged.pid] = [10.0, 10.45]
        self.supervisor.request_timed_out("a")
        self.assertIsNone(self.supervisor.running_socket("a"))
        d = self.supervisor.ensure_running("a")
        self.assertNoResult(d)
        self.clock.advance(0.5)
        self.assertEqual(wedged.signals, [signal.SIGKILL])
        self.assertNoResult(d)
        [_, fresh] = self.launcher.launched
        fresh.become_ready()
        self.assertEqual(self.successResultOf(d), fresh.socket_path)
        self.assertEqual(self.supervisor.pid("a"), fresh.pid)
        self.assertEqual(self.supervisor.state("a"), RUNNING)
        self.assertEqual(self.supervisor.running_socket("a"), fresh.socket_path)

    def test_waits_then_same_child(self):
        """
        When the watched child is not spinning (a slow fetch), the waiting requests go to
        it as soon as the verdict is in, and nothing is spawned.
        """
        child = self.serve("a")
        self.cpu[child.pid] = [10.0, 10.05]
        self.supervisor.request_timed_out("a")
        waiting = [self.supervisor.ensure_running("a") for _ in range(3)]
        for d in waiting:
            self.assertNoResult(d)
        self.clock.advance(0.5)
        self.assertEqual([self.successResultOf(d) for d in waiting], [child.socket_path] * 3)
        self.assertEqual((child.signals, len(self.launcher.launched)), ([], 1))
        self.assertEqual(self.supervisor.running_socket("a"), child.socket_path)

    def test_warm_version_single_start(self):
        """
        A killed warm version starts again by itself; the requests that waited for the
        verdict share that start, one new process.
        """
        self.supervisor.startService()
        self.addCleanup(self.supervisor.stopService)
        self.warm.add("a")
        wedged = self.serve("a")
        self.cpu[wedged.pid] = [10.0, 10.45]
        self.supervisor.request_timed_out("a")
        waiting = [self.supervisor.ensure_running("a") for _ in range(2)]
        self.clock.advance(0.5)
        self.assertEqual(len(self.launcher.launched), 2)
        self.launcher.launched[-1].become_ready()
        self.assertEqual({self.successResultOf(d) for d in waiting}, {"/run/a.sock"})
        self.assertEqual(self.supervisor.pid("a"), self.launcher.launched[-1].pid)

    def test_stopped_while_judged(self):
        """
        A version stopped while it is judged is not killed a second time; a request that
        waited is served by a new child.
        """
        child = self.serve("a")
        self.cpu[child.pid] = [10.0, 10.45]
        self.supervisor.request_timed_out("a")
        d = self.supervisor.ensure_running("a")
        self.supervisor.stop("a")
        child.exit()
        self.assertEqual(self.supervisor.state("a"), STOPPED)
        self.clock.advance(0.5)
        self.assertEqual(child.signals, [signal.SIGTERM])
        self.launcher.launched[-1].become_ready()
        self.assertEqual(self.successResultOf(d), "/run/a.sock")
        self.assertEqual(len(self.launcher.launched), 2)

    def test_watch_failing(self):
        """
        A watch that fails (it cannot read the child) is logged, counts as not spinning,
        and the requests that waited go on to the same child.
        """
        child = self.serve("a")
        # The second reading raises something the watch does not expect.
        self.cpu[child.pid] = [10.0]
        self.supervisor.request_timed_out("a")
        d = self.supervisor.ensure_running("a")
        self.clock.advance(0.5)
        self.assertEqual(self.successResultOf(d), child.socket_path)
        self.assertEqual(child.signals, [])
        self.assertEqual(len(self.flushLoggedErrors(IndexError)), 1)
        self.assertEqual(self.supervisor.running_socket("a"), child.socket_path)
