"""
Whether a child may start (L{funcplane.runtime.admission}): the running budget, which
never gives a function's latest version up for traffic to an older one, and funcplane's
file descriptors (L{funcplane.runtime.descriptors}).
"""

import os
import resource
import shutil
import signal
import tempfile

from twisted.internet.defer import succeed
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import AtCapacity
from funcplane.runtime.host import ChildRuntime, RuntimeChoices
from funcplane.runtime.descriptors import DescriptorReserve, count_open, raise_open_files_limit
from funcplane.runtime.lifecycle import RUNNING, STOPPED, SUSPENDED, Lifecycle
from funcplane.runtime.supervisor import Supervisor
from funcplane.runtime.watchdog import SpinWatch
from tests.fakes import FakeProcessReactor, spec
from tests.runtime.test_supervisor import SupervisorCase
from tests.test_service import FakeMachine


class LatestProtectedTests(SupervisorCase):
    """
    Under --max-running, a function's latest (warm) version is never suspended to make
    room for a version that is not one.
    """

    lifecycle = Lifecycle(grace=7, max_running=2)

    def test_old_version_never_evicts_latest(self):
        """
        With both running versions functions' latest and idle, a request for an old
        version (a WebSocket to it, say) is refused with AtCapacity saying why; neither
        latest is signalled, and nothing is spawned.
        """
        self.warm.update({"a", "b"})
        a, b = self.serve("a"), self.serve("b")
        failure = self.failureResultOf(self.supervisor.ensure_running("old"), AtCapacity)
        self.assertEqual(
            str(failure.value),
            "2 versions are running (--max-running): the busy ones serve requests and the idle"
            " ones are functions' latest versions, which a request for another version never"
            " suspends; try again shortly, or raise --max-running",
        )
        self.assertEqual((a.signals, b.signals), ([], []))
        self.assertEqual([self.supervisor.state(v) for v in "ab"], [RUNNING, RUNNING])
        self.assertEqual(len(self.launcher.launched), 2)
        self.assertEqual(self.supervisor.state("old"), STOPPED)

    def test_busy_old_versions_keep_latest(self):
        """
        The case found: tunnels keep two old versions busy while the latest ones are idle.
        A third old version is refused, and the latest versions still serve.
        """
        self.supervisor = self.make(max_running=4)
        self.warm.update({"a", "b"})
        self.serve("a")
        self.serve("b")
        tunnels = [self.supervisor.lease("old1"), self.supervisor.lease("old2")]
        for version_id in ["old1", "old2"]:
            self.supervisor.ensure_running(version_id)
            self.launcher.launched[-1].become_ready()
        self.failureResultOf(self.supervisor.ensure_running("old3"), AtCapacity)
        self.assertEqual(self.supervisor.running_socket("a"), "/run/a.sock")
        self.assertEqual(self.supervisor.running_socket("b"), "/run/b.sock")
        for lease in tunnels:
            lease.release()

    def test_old_version_evicts_old_version(self):
        """
        An idle version that is no latest makes room for an old version, even when a
        latest one was used less recently.
        """
        self.warm.add("a")
        a = self.serve("a")
        self.clock.advance(1)
        self.serve("old1")
        self.serve("old2")
        self.assertEqual(self.supervisor.state("old1"), SUSPENDED)
        self.assertEqual((self.supervisor.state("a"), a.signals), (RUNNING, []))

    def test_latest_may_evict_latest(self):
        """
        A latest version may take the place of another idle latest, the least recently
        used.
        """
        self.warm.update({"a", "b", "c"})
        self.serve("a")
        self.clock.advance(1)
        self.serve("b")
        self.serve("c")
        self.assertEqual([self.supervisor.state(v) for v in "abc"], [SUSPENDED, RUNNING, RUNNING])

    def test_deploy_may_evict_latest(self):
        """
        A deploy starts a version that is about to be its function's latest: it may take
        an idle latest version's place.
        """
        self.warm.update({"a", "b"})
        a = self.serve("a")
        self.clock.advance(1)
        self.serve("b")
        d = self.supervisor.start(spec("new"))
        self.assertEqual(a.signals, [signal.SIGTERM])
        a.exit()
        self.launcher.launched[-1].become_ready()
        self.assertEqual(self.successResultOf(d).spec.id, "new")

    def test_scale_to_zero(self):
        """
        With --scale-to-zero no version is warm, so any idle one makes room.
        """
        self.supervisor = self.make(max_running=2, scale_to_zero=True)
        self.warm.update({"a", "b"})
        self.serve("a")
        self.serve("b")
        self.serve("old")
        self.assertEqual(self.supervisor.state("a"), SUSPENDED)


class DescriptorAdmissionTests(SupervisorCase):
    """
    Before each spawn the supervisor counts funcplane's free descriptors; below the
    reserve it refuses the start, and starts again once they are freed.
    """

    def setUp(self):
        super().setUp()
        self.open = 100
        self.counted = 0
        self.reserve = DescriptorReserve(reserve=200, count=self.count, limit=lambda: 1024)
        self.supervisor = Supervisor(
            self.clock,
            self.launcher,
            self.load,
            Lifecycle(grace=7),
            watch=SpinWatch(self.clock, cpu=lambda pid: 0.0),
            jitter=lambda: 1.0,
            descriptors=self.reserve,
        )

    def count(self):
        self.counted += 1
        return self.open

    def test_refused_below_reserve_and_recovers(self):
        """
        With fewer free descriptors than the reserve, a start fails with AtCapacity naming
        the numbers and what to do, spawns nothing and leaves the version to start later
        (no crash backoff); a running version keeps serving; once descriptors are free, the
        same version starts.  The shortage is logged once, and so is the recovery.
        """
        self.serve("a")
        self.open = 900
        with capturedLogs() as events:
            failures = [
                self.failureResultOf(self.supervisor.ensure_running("b"), AtCapacity) for _ in range(3)
            ]
            self.assertEqual(
                str(failures[0].value),
                "funcplane has 124 of its 1024 file descriptors free, fewer than the 200 it keeps"
                " for the versions already running (--fd-reserve), so no other version starts until"
                " some close; raise funcplane's open files limit (LimitNOFILE= in its systemd unit,"
                " or ulimit -n) or lower --max-running",
            )
            self.assertEqual(len(self.launcher.launched), 1)
            self.assertEqual(self.supervisor.state("b"), STOPPED)
            self.assertEqual(self.supervisor.running_socket("a"), "/run/a.sock")
            self.open = 800
            self.serve("b")
        self.assertEqual(self.supervisor.state("b"), RUNNING)
        self.assertEqual(
            [(e["log_level"].name, e["free"]) for e in events if "free" in e],
            [("warn", 124), ("info", 224)],
        )
        self.assertIn("224 file descriptors are free again", formatEvent(events[1]))

    def test_counted_once_a_spawn(self):
        """
        Descriptors are counted once a spawn, never for a request to a running version,
        nor for requests that join a start already under way.
        """
        self.serve("a")
        self.assertEqual(self.counted, 1)
        for _ in range(5):
            self.successResultOf(self.supervisor.ensure_running("a"))
            self.supervisor.running_socket("a")
        waiting = [self.supervisor.ensure_running("b") for _ in range(3)]
        self.assertEqual(self.counted, 2)
        self.launcher.launched[-1].become_ready()
        self.assertEqual([self.successResultOf(d) for d in waiting], ["/run/b.sock"] * 3)

    def test_no_limit(self):
        """
        With no soft limit of open files nothing is refused.
        """
        reserve = DescriptorReserve(reserve=10**9, count=lambda: 10**6, limit=lambda: None)
        self.assertIsNone(reserve.check())


class OpenFilesLimitTests(SynchronousTestCase):
    """
    Raising the soft limit of open files to the hard limit at start, as Go's runtime does.
    """

    def setUp(self):
        self.set = []

    def limits(self, soft, hard, refuse=None):
        def setrlimit(which, value):
            self.assertEqual(which, resource.RLIMIT_NOFILE)
            if refuse is not None:
                raise refuse
            self.set.append(value)

        return dict(getrlimit=lambda which: (soft, hard), setrlimit=setrlimit, ceiling=lambda: 1048576)

    def test_raised_to_hard(self):
        """
        A soft limit of 1,024 under a hard one of 524,288 (a default systemd unit) is
        raised to 524,288.
        """
        self.assertEqual(raise_open_files_limit(**self.limits(1024, 524288)), (1024, 524288, None))
        self.assertEqual(self.set, [(524288, 524288)])

    def test_already_at_hard(self):
        """
        A soft limit at the hard one is left alone.
        """
        self.assertEqual(raise_open_files_limit(**self.limits(4096, 4096)), (4096, 4096, None))
        self.assertEqual(self.set, [])

    def test_unlimited_hard(self):
        """
        An unlimited hard limit raises the soft one to the kernel's ceiling (nr_open),
        since Linux refuses an unlimited soft limit of open files.
        """
        limits = self.limits(1024, resource.RLIM_INFINITY)
        self.assertEqual(raise_open_files_limit(**limits), (1024, 1048576, None))
        self.assertEqual(self.set, [(1048576, resource.RLIM_INFINITY)])

    def test_refused(self):
        """
        When the kernel refuses, the limit stays and the reason is returned.
        """
        before, after, error = raise_open_files_limit(**self.limits(1024, 524288, OSError("no")))
        self.assertEqual((before, after, error), (1024, 1024, "no"))

    def test_count_open(self):
        """
        count_open counts this process's descriptors: one more while a file is open.
        """
        before = count_open()
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            self.assertEqual(count_open(), before + 1)
        finally:
            os.close(fd)


class RuntimeStartTests(SynchronousTestCase):
    """
    The runtime part raises the limit of open files when it starts, and says so.
    """

    def start(self, open_files):
        run_dir = tempfile.mkdtemp(prefix="fp")
        self.addCleanup(shutil.rmtree, run_dir, True)
        runtime = ChildRuntime(
            FakeProcessReactor(),
            RuntimeChoices(workerd="/opt/workerd", run_dir=run_dir, data_dir="/data"),
            machine=FakeMachine(),
            in_thread=lambda f, *args: succeed(f(*args)),
            open_files=open_files,
        )
        with capturedLogs() as events:
            runtime.startService()
        self.addCleanup(runtime.stopService)
        return [(e["log_level"].name, formatEvent(e)) for e in events if "open" in e["log_format"]
                or "files" in e["log_format"]]

    def test_raised(self):
        """
        A raised limit is logged with both numbers; a high one needs no warning.
        """
        self.assertEqual(
            self.start(lambda: (1024, 524288, None)),
            [("info", "raised the open files limit from 1024 to 524288 (the hard limit)")],
        )

    def test_not_raised_and_low(self):
        """
        A limit that could not be raised, and one that stays low, are warned about with
        what to do.
        """
        self.assertEqual(
            self.start(lambda: (1024, 1024, "not permitted")),
            [
                ("warn", "funcplane could not raise its open files limit (1024): not permitted"),
                ("warn", "funcplane may open only 1024 files: each running version takes about 3 and"
                         " each request 1 or 2; raise its hard limit (LimitNOFILE= in its systemd unit)"
                         " to run more than a few hundred versions"),
            ],
        )
