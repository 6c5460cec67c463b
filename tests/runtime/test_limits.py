"""
Per-child limits: what L{detect} finds in a fake /proc and cgroup tree, what a confinement
writes, and how the launcher uses it.
"""

import errno
import os
import resource
import shutil
import signal
import subprocess
import tempfile

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ProcessTerminated
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from funcplane.errors import StartFailed
from funcplane.observe.logbook import LogBook
from funcplane.runtime import limits
from funcplane.runtime.config import ConfigBuilder, RuntimeSettings
from funcplane.runtime.egress import EgressPolicy
from funcplane.runtime.limits import (
    ADDRESS_SPACE_BASE,
    MiB,
    ChildLimits,
    CgroupPart,
    IChildLimits,
    IConfinement,
    RlimitPart,
    detect,
)
from funcplane.runtime.process import CONTROL_FD, WorkerdLauncher
from tests.fakes import FakeProcessReactor, spec
from tests.runtime.test_config import SCHEMA
from tests.runtime.test_process import READY


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def mountinfo(*mounts):
    """
    /proc/self/mountinfo lines for C{(root, mountpoint, fstype, options)} mounts.
    """
    return "".join(
        f"{30 + i} 20 0:{40 + i} {root} {point} rw,nosuid - {fstype} cgroup {options}\n"
        for i, (root, point, fstype, options) in enumerate(mounts)
    ) + "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"


class Machine:
    """
    A fake /proc/self and cgroup tree under a temporary directory.
    """

    def __init__(self, test_case):
        self.root = tempfile.mkdtemp(prefix="fpcg")
        self.proc = os.path.join(self.root, "proc")
        self.data_dir = os.path.join(self.root, "data")
        self.sys = os.path.join(self.root, "sys")

    def v1(self, memory="/svc/a", cpu="/", memory_root="/"):
        write(os.path.join(self.proc, "self", "cgroup"), f"5:memory:{memory}\n2:cpu,cpuacct:{cpu}\n0::/\n")
        write(
            os.path.join(self.proc, "self", "mountinfo"),
            mountinfo(
                (memory_root, f"{self.sys}/memory", "cgroup", "rw,memory"),
                ("/", f"{self.sys}/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
                ("/", f"{self.sys}/unified", "cgroup2", "rw"),
            ),
        )
        write(f"{self.sys}/unified/cgroup.controllers", "hugetlb\n")
        os.makedirs(f"{self.sys}/memory{memory}", exist_ok=True)
        os.makedirs(f"{self.sys}/cpu,cpuacct{cpu}", exist_ok=True)

    def v2(self, own="/system.slice/funcplane.service", controllers="cpuset cpu io memory pids"):
        write(os.path.join(self.proc, "self", "cgroup"), f"0::{own}\n")
        write(os.path.join(self.proc, "self", "mountinfo"), mountinfo(("/", f"{self.sys}", "cgroup2", "rw")))
        write(f"{self.sys}{own}/cgroup.controllers", controllers + "\n")
        return f"{self.sys}{own}"

    def detect(self, child_limits=ChildLimits()):
        return detect(child_limits, self.data_dir, proc=self.proc)


class DetectTests(SynchronousTestCase):
    def setUp(self):
        self.machine = Machine(self)

    def test_v1(self):
        """
        With v1 memory and cpu hierarchies, each child gets a group in both, under a
        parent named for the data directory inside funcplane's own groups: the memory
        limit covers swap too, the CPU quota is the share of a 100 ms period.
        """
        self.machine.v1()
        sys = self.machine.sys
        memory_parent = os.path.join(sys, "memory/svc/a")
        confiner = self.machine.detect(ChildLimits(memory_bytes=300 * MiB, cpu=0.5))
        verifyObject(IChildLimits, confiner)
        [memory, cpu] = confiner.parts
        self.assertEqual(os.path.dirname(memory.parent), memory_parent)
        self.assertRegex(os.path.basename(memory.parent), r"^funcplane-[0-9a-f]{12}$")
        self.assertEqual(os.path.dirname(cpu.parent), os.path.join(sys, "cpu,cpuacct"))
        self.assertEqual(memory.files, (("memory.limit_in_bytes", str(300 * MiB)),))
        self.assertEqual(cpu.files, (("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000")))
        self.assertEqual(
            confiner.applied,
            [f"memory 300 MiB (cgroup v1, {memory.parent})", f"CPU 0.5 cores (cgroup v1, {cpu.parent})"],
        )
        self.assertEqual(confiner.missing, [])

    def test_memsw(self):
        """
        Where the kernel accounts swap (memory.memsw.*), swap is limited as well, so that a
        child cannot escape its limit into swap.
        """
        self.machine.v1()
        parent = self.machine.detect().parts[0].parent
        write(os.path.join(parent, "memory.memsw.limit_in_bytes"), "")
        self.assertEqual(
            self.machine.detect().parts[0].files,
            (("memory.limit_in_bytes", str(1024 * MiB)), ("memory.memsw.limit_in_bytes", str(1024 * MiB))),
        )

    def test_same_data_dir_same_parent(self):
        """
        The parent's name depends on the data directory only: a restarted funcplane finds
        what its predecessor left; another data directory gets another parent.
        """
        self.machine.v1()
        first = self.machine.detect().parts[0].parent
        self.assertEqual(self.machine.detect().parts[0].parent, first)
        self.machine.data_dir += "-other"
        self.assertNotEqual(self.machine.detect().parts[0].parent, first)

    def test_mount_root(self):
        """
        A hierarchy mounted from a subtree (a container's view) is found by the path
        relative to the mount's root.
        """
        self.machine.v1(memory="/docker/abc/svc", memory_root="/docker/abc")
        parent = self.machine.detect().parts[0].parent
        self.assertEqual(os.path.dirname(parent), os.path.join(self.machine.sys, "memory/svc"))

    def test_no_writable_memory_cgroup(self):
        """
        Where no memory group can be made, memory is bounded by an address-space rlimit
        instead, and the start-up log says why.
        """
        self.machine.v1()
        memory_dir = os.path.join(self.machine.sys, "memory/svc/a")
        os.rmdir(memory_dir)
        write(memory_dir, "not a directory")
        confiner = self.machine.detect()
        [cpu, rlimit] = confiner.parts
        self.assertIsInstance(rlimit, RlimitPart)
        self.assertEqual(rlimit.memory_bytes, 1024 * MiB)
        self.assertIn("RLIMIT_AS", confiner.applied[1])
        self.assertIn("cgroup v1 memory at", confiner.applied[1])
        self.assertIn("CPU 1 core", confiner.applied[0])

    def test_no_cgroups(self):
        """
        With no cgroups at all: memory by rlimit, and a warning that CPU is not limited.
        """
        write(os.path.join(self.machine.proc, "self", "cgroup"), "0::/\n")
        write(os.path.join(self.machine.proc, "self", "mountinfo"), mountinfo())
        confiner = self.machine.detect()
        self.assertEqual([type(part) for part in confiner.parts], [RlimitPart])
        [missing] = confiner.missing
        self.assertTrue(missing.startswith("CPU is not limited (no cgroup hierarchy"), missing)

    def test_unreadable_proc(self):
        """
        When this process's cgroups cannot be read, only the rlimit part applies and the
        missing limit says why.
        """
        confiner = self.machine.detect()
        self.assertEqual([type(part) for part in confiner.parts], [RlimitPart])
        self.assertIn("cannot read this process's cgroups", confiner.missing[0])

    def test_nothing_wanted(self):
        """
        With both limits turned off nothing is applied and nothing is reported missing.
        """
        self.machine.v1()
        confiner = self.machine.detect(ChildLimits(memory_bytes=None, cpu=None))
        self.assertEqual((confiner.parts, confiner.missing), ([], []))

    def test_v2(self):
        """
        In the unified hierarchy one group per child holds memory.max, memory.swap.max
        and cpu.max; the parent hands both controllers to its children.
        """
        own = self.machine.v2()
        confiner = self.machine.detect(ChildLimits(memory_bytes=512 * MiB, cpu=2))
        [part] = confiner.parts
        self.assertEqual(read(os.path.join(own, "cgroup.subtree_control")), "+memory +cpu")
        self.assertEqual(read(os.path.join(part.parent, "cgroup.subtree_control")), "+memory +cpu")
        self.assertEqual(
            part.files, (("memory.max", str(512 * MiB)), ("memory.swap.max", "0"), ("cpu.max", "200000 100000"))
        )
        self.assertEqual(part.events, "memory.events")
        self.assertEqual(confiner.applied, [f"memory 512 MiB, CPU 2 cores (cgroup v2, {part.parent})"])

    def test_v2_moves_itself_to_a_leaf(self):
        """
        cgroup v2 refuses controllers for children of a group that holds processes
        (EBUSY): funcplane moves itself to a leaf group first, then enables them.
        """
        own = self.machine.v2()
        real_write = limits._write
        refused = []

        def write_once_busy(path, value):
            if path == os.path.join(own, "cgroup.subtree_control") and not refused:
                refused.append(path)
                raise OSError(errno.EBUSY, "Device or resource busy")
            real_write(path, value)

        self.patch(limits, "_write", write_once_busy)
        [part] = self.machine.detect().parts
        self.assertEqual(read(os.path.join(own, "supervisor", "cgroup.procs")), str(os.getpid()))
        self.assertEqual(read(os.path.join(own, "cgroup.subtree_control")), "+memory +cpu")

    def test_v2_without_controllers_falls_back_to_v1(self):
        """
        A unified hierarchy that does not offer memory and cpu (a hybrid machine) is
        passed over for the v1 hierarchies.
        """
        self.machine.v1()
        confiner = self.machine.detect()
        self.assertEqual([type(part) for part in confiner.parts], [CgroupPart, CgroupPart])
        self.assertIn("cgroup v1", confiner.applied[0])


class CgroupPartTests(SynchronousTestCase):
    def setUp(self):
        self.parent = tempfile.mkdtemp(prefix="fpcg")
        self.part = CgroupPart(
            self.parent, (("memory.max", "100"), ("memory.swap.max", "0")), "memory", "memory.events"
        )

    def test_confine(self):
        """
        A child's group is made under the parent, its files written and the pid moved in;
        the confinement reads the kernel's OOM-kill count and removes the group.
        """
        confinement = limits.Confiner([self.part]).confine(4242, "abc")
        verifyObject(IConfinement, confinement)
        group = os.path.join(self.parent, "abc")
        self.assertEqual(
            {name: read(os.path.join(group, name)) for name in os.listdir(group)},
            {"memory.max": "100", "memory.swap.max": "0", "cgroup.procs": "4242"},
        )
        self.assertFalse(confinement.out_of_memory())
        write(os.path.join(group, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
        self.assertTrue(confinement.out_of_memory())
        for name in os.listdir(group):
            os.unlink(os.path.join(group, name))
        confinement.release()
        self.assertEqual(os.listdir(self.parent), [])

    def test_failure_undoes(self):
        """
        If any part cannot confine the child, the groups already made are removed and the
        error is raised for the launcher.
        """

        class Refuses:
            def confine(self, pid, name):
                raise PermissionError(errno.EACCES, "Permission denied")

        removed = []
        self.patch(limits, "_remove", removed.append)
        confiner = limits.Confiner([self.part, Refuses()])
        self.assertRaises(PermissionError, confiner.confine, 4242, "abc")
        self.assertEqual(removed, [os.path.join(self.parent, "abc")])

    def test_clean(self):
        """
        Groups an earlier funcplane left: their processes are SIGKILLed, the groups
        removed.
        """
        write(os.path.join(self.parent, "old1", "cgroup.procs"), "101\n102\n")
        write(os.path.join(self.parent, "old2", "cgroup.procs"), "")
        killed = []
        removed = []
        self.patch(limits, "_remove", removed.append)
        found = self.part.clean(kill=lambda pid, sig: killed.append((pid, sig)))
        self.assertEqual(found, 1)
        self.assertEqual(killed, [(101, signal.SIGKILL), (102, signal.SIGKILL)])
        self.assertEqual(sorted(removed), [os.path.join(self.parent, "old1"), os.path.join(self.parent, "old2")])


class RlimitTests(SynchronousTestCase):
    def test_prlimit(self):
        """
        The fallback sets the child's address-space limit to workerd's reservations plus
        the memory limit.
        """
        calls = []
        part = RlimitPart(256 * MiB, "rlimit", prlimit=lambda *args: calls.append(args))
        part.confine(4242, "abc")
        limit = ADDRESS_SPACE_BASE + 256 * MiB
        self.assertEqual(calls, [(4242, resource.RLIMIT_AS, (limit, limit))])

    def test_real_process(self):
        """
        On a real process, the kernel reports the limit.
        """
        child = subprocess.Popen(["sleep", "60"])
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        RlimitPart(256 * MiB, "rlimit").confine(child.pid, "abc")
        with open(f"/proc/{child.pid}/limits") as f:
            [line] = [line for line in f if line.startswith("Max address space")]
        self.assertEqual(line.split()[3:5], [str(ADDRESS_SPACE_BASE + 256 * MiB)] * 2)


class FakeConfinement:
    def __init__(self):
        self.oom = False
        self.released = False

    def out_of_memory(self):
        return self.oom

    def release(self):
        self.released = True


class FakeLimits:
    def __init__(self, error=None):
        self.error = error
        self.confined = []
        self.confinement = FakeConfinement()

    def confine(self, pid, name):
        if self.error is not None:
            raise self.error
        self.confined.append((pid, name))
        return self.confinement


class LauncherLimitsTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeProcessReactor()
        self.run_dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.run_dir)
        self.builder = ConfigBuilder(RuntimeSettings(egress=EgressPolicy()), SCHEMA)
        self.logbook = LogBook(self.reactor)

    def launcher(self, fake, in_thread=None):
        return WorkerdLauncher(
            self.reactor, "/opt/workerd", self.run_dir, self.builder, logbook=self.logbook, limits=fake,
            in_thread=in_thread or maybeDeferred,
        )

    def test_ready_only_once_confined(self):
        """
        The move into the cgroups runs off the reactor thread (it waits for the kernel);
        the child is not ready, whatever workerd says, until it is done.
        """
        fake = FakeLimits()
        moving = []

        def in_thread(f, *args):
            d = Deferred()
            moving.append((d, f, args))
            return d

        child = self.launcher(fake, in_thread).launch(spec())
        ready = child.when_ready()
        self.reactor.spawned[-1]["protocol"].childDataReceived(CONTROL_FD, READY)
        self.assertNoResult(ready)
        [(d, f, args)] = moving
        d.callback(f(*args))
        self.assertIs(self.successResultOf(ready), child)
        self.assertEqual(fake.confined, [(4242, os.path.basename(child.socket_path)[: -len(".sock")])])

    def test_exit_while_being_confined(self):
        """
        A child that exits before its move is done has its groups removed once it is.
        """
        fake = FakeLimits()
        held = Deferred()
        child = self.launcher(fake, lambda f, *args: held).launch(spec())
        self.reactor.spawned[-1]["transport"].exit(ProcessTerminated(1))
        self.failureResultOf(child.when_ready(), StartFailed)
        self.assertFalse(fake.confinement.released)
        held.callback(fake.confinement)
        self.assertTrue(fake.confinement.released)

    def test_confined_by_pid_and_socket_id(self):
        """
        Each child is confined as soon as it is spawned, under its socket's random id.
        """
        fake = FakeLimits()
        child = self.launcher(fake).launch(spec())
        self.assertEqual(fake.confined, [(4242, os.path.basename(child.socket_path)[: -len(".sock")])])

    def test_out_of_memory_reported(self):
        """
        When the kernel killed the child for its memory, the reason reaches its stderr
        tail (the supervisor's report) and its logs; the group is released.
        """
        fake = FakeLimits()
        child = self.launcher(fake).launch(spec())
        fake.confinement.oom = True
        ended = child.when_ended()
        self.reactor.spawned[-1]["transport"].exit(ProcessTerminated(signal=signal.SIGKILL))
        self.successResultOf(ended)
        message = "killed by the kernel: it used more than its memory limit"
        self.assertEqual(child.stderr_tail(), [message])
        self.assertEqual([entry.message for entry in self.logbook.lines([spec().id])], [message])
        self.assertTrue(fake.confinement.released)

    def test_unconfinable_child_killed(self):
        """
        A child the limits cannot be applied to never serves: its start fails with the
        reason and it is SIGKILLed.
        """
        fake = FakeLimits(PermissionError(errno.EACCES, "Permission denied"))
        child = self.launcher(fake).launch(spec())
        failure = self.failureResultOf(child.when_ready(), StartFailed)
        self.assertIn("could not apply its resource limits", str(failure.value))
        self.assertEqual(self.reactor.spawned[-1]["transport"].signals, [signal.SIGKILL])
