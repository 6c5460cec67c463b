"""
Memory and CPU limits for each workerd child, from the operating system.

V8's heap limit (in every config) stops a JavaScript heap bomb, but not ArrayBuffers,
WebAssembly memory or anything else workerd allocates outside the heap; and nothing in
workerd stops a script that spins from taking a whole core.  So each child is also
confined by the kernel, as far as the machine allows:

 - a cgroup of its own, in the unified (v2) hierarchy or the v1 C{memory} and C{cpu}
   ones, made under funcplane's own cgroup: a memory limit with swap included (the kernel
   kills a child that goes over it) and a CPU quota (a spinning child is throttled, its
   neighbours keep their cores);
 - where no memory cgroup can be made, an address-space rlimit instead: workerd reserves
   about ten GiB of address space before it runs any code, so the rlimit is that much plus
   the memory limit, a crude bound that makes large allocations fail inside the script.

L{detect} decides once, at start-up, and says what applies and what does not.  Cgroup
names are funcplane's own (a hash of the data directory, a child's random id), never a
user's string.
"""

import errno
import hashlib
import os
import resource
import signal

import attrs
from zope.interface import Attribute, Interface, implementer

MiB = 1 << 20
GiB = 1 << 30
# An idle workerd has about 9.8 GiB of address space reserved (V8's pointer-compression
# cage and its allocator's reservations) and will not start under 11 GiB.
ADDRESS_SPACE_BASE = 11 * GiB
CPU_PERIOD_US = 100_000


@attrs.frozen
class ChildLimits:
    """
    What each child may use.

    @ivar memory_bytes: memory (and swap) per child, or L{None} for no limit.
    @ivar cpu: CPU time per child, in cores (0.5 is half of one core), or L{None}.
    """

    memory_bytes: int | None = 1024 * MiB
    cpu: float | None = 1.0


class IConfinement(Interface):
    """
    The limits applied to one child.
    """

    def out_of_memory():
        """
        Whether the kernel killed the child for going over its memory limit.
        """

    def release():
        """
        Remove what was made for the child, once it has exited.
        """


class IChildLimits(Interface):
    """
    Confines each new child.
    """

    applied = Attribute("What is limited and how, one phrase each, for the start-up log.")
    missing = Attribute("What cannot be limited on this machine, and why.")

    def confine(pid, name):
        """
        Apply the limits to the freshly spawned process C{pid}; C{name} is funcplane's
        random id for the child.  Returns an L{IConfinement}; raises L{OSError} when the
        limits cannot be applied (the caller kills the child).
        """

    def clean():
        """
        SIGKILL and remove what an earlier funcplane left behind; returns how many leftover
        children were found.
        """

    def close():
        """
        Remove funcplane's own groups, once every child has exited.
        """


def _write(path, value):
    with open(path, "w") as f:
        f.write(value)


def _oom_kills(path):
    """
    The C{oom_kill} count in a cgroup's C{memory.oom_control} (v1) or C{memory.events}
    (v2).
    """
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


@attrs.define
class CgroupPart:
    """
    One cgroup per child under C{parent}, with C{files} written in it (in order) before
    the child is moved in.

    @ivar events: the file, relative to a child's cgroup, that counts OOM kills, or
        L{None} when this part has no memory controller.
    """

    parent: str
    files: tuple
    label: str
    events: str | None = None

    def confine(self, pid, name):
        path = os.path.join(self.parent, name)
        os.mkdir(path, 0o755)
        try:
            for file, value in self.files:
                _write(os.path.join(path, file), value)
            _write(os.path.join(path, "cgroup.procs"), str(pid))
        except OSError:
            _remove(path)
            raise
        return path

    def out_of_memory(self, path):
        return self.events is not None and _oom_kills(os.path.join(path, self.events)) > 0

    def release(self, path):
        _remove(path)

    def clean(self, kill=os.kill):
        found = 0
        for entry in os.scandir(self.parent):
            if not entry.is_dir(follow_symlinks=False):
                continue
            try:
                with open(os.path.join(entry.path, "cgroup.procs")) as f:
                    pids = [int(line) for line in f if line.strip()]
            except (OSError, ValueError):
                pids = []
            for pid in pids:
                try:
                    kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            found += bool(pids)
            _remove(entry.path)
        return found

    def close(self):
        try:
            _remove(self.parent)
        except OSError:
            pass


def _remove(path):
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        # EBUSY: a process is still in it (a SIGKILLed orphan not yet reaped); the next
        # start removes it.
        if e.errno != errno.EBUSY:
            raise


@attrs.define
class RlimitPart:
    """
    An address-space rlimit of C{ADDRESS_SPACE_BASE} plus the memory limit.
    """

    memory_bytes: int
    label: str
    prlimit: object = resource.prlimit

    def confine(self, pid, name):
        limit = ADDRESS_SPACE_BASE + self.memory_bytes
        self.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
        return None

    def out_of_memory(self, path):
        return False

    def release(self, path):
        pass

    def clean(self):
        return 0

    def close(self):
        pass


@implementer(IConfinement)
@attrs.define
class _Confinement:
    held: list

    def out_of_memory(self):
        return any(part.out_of_memory(path) for part, path in self.held)

    def release(self):
        for part, path in self.held:
            part.release(path)
        self.held = []


@implementer(IChildLimits)
@attrs.define
class Confiner:
    """
    Applies each of C{parts} to every child.
    """

    parts: list
    missing: list = attrs.Factory(list)

    @property
    def applied(self):
        return [part.label for part in self.parts]

    def confine(self, pid, name):
        held = []
        try:
            for part in self.parts:
                held.append((part, part.confine(pid, name)))
        except OSError:
            _Confinement(held).release()
            raise
        return _Confinement(held)

    def clean(self):
        return sum(part.clean() for part in self.parts)

    def close(self):
        for part in self.parts:
            part.close()


def _mib(value):
    return f"{value / MiB:g} MiB"


def _cores(value):
    return f"{value:g} core" + ("" if value == 1 else "s")


def _hierarchies(proc):
    """
    funcplane's own cgroup directory in each mounted hierarchy: C{{"memory": path,
    "cpu": path}} for v1 controllers, C{{"": path}} for the unified (v2) hierarchy.
    """
    with open(os.path.join(proc, "self", "cgroup")) as f:
        membership = {}
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                membership[controller] = path
    found = {}
    with open(os.path.join(proc, "self", "mountinfo")) as f:
        for line in f:
            fields = line.split()
            separator = fields.index("-")
            root, mountpoint = fields[3], fields[4]
            fstype, options = fields[separator + 1], fields[separator + 3].split(",")
            if fstype == "cgroup2":
                names = [""]
            elif fstype == "cgroup":
                names = [name for name in options if name in ("memory", "cpu")]
            else:
                continue
            for name in names:
                path = membership.get(name)
                if path is None or name in found:
                    continue
                relative = os.path.relpath(path, root)
                if relative.startswith(".."):
                    continue
                found[name] = os.path.normpath(os.path.join(mountpoint, relative))
    return found


def _v2_parent(own, parent_name, controllers):
    """
    Make C{own}/C{parent_name} with C{controllers} enabled for its children.  cgroup v2
    lets a group either hold processes or hand controllers to children, so if funcplane's
    own group refuses (it holds funcplane), funcplane first moves itself into a leaf
    C{own}/supervisor.
    """
    with open(os.path.join(own, "cgroup.controllers")) as f:
        available = f.read().split()
    if not set(controllers) <= set(available):
        raise OSError(errno.ENOTSUP, f"{own} does not offer {' and '.join(controllers)}")
    enable = " ".join("+" + name for name in controllers)
    try:
        _write(os.path.join(own, "cgroup.subtree_control"), enable)
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise
        leaf = os.path.join(own, "supervisor")
        os.makedirs(leaf, exist_ok=True)
        _write(os.path.join(leaf, "cgroup.procs"), str(os.getpid()))
        _write(os.path.join(own, "cgroup.subtree_control"), enable)
    parent = os.path.join(own, parent_name)
    os.makedirs(parent, exist_ok=True)
    _write(os.path.join(parent, "cgroup.subtree_control"), enable)
    return parent


def _v1_parent(own, parent_name):
    parent = os.path.join(own, parent_name)
    os.makedirs(parent, exist_ok=True)
    return parent


def _v1_part(controller, parent, memory, cpu):
    if controller == "memory":
        files = [("memory.limit_in_bytes", str(memory))]
        if os.path.exists(os.path.join(parent, "memory.memsw.limit_in_bytes")):
            files.append(("memory.memsw.limit_in_bytes", str(memory)))
        label = f"memory {_mib(memory)} (cgroup v1, {parent})"
        return CgroupPart(parent, tuple(files), label, "memory.oom_control")
    files = (("cpu.cfs_period_us", str(CPU_PERIOD_US)), ("cpu.cfs_quota_us", _quota(cpu)))
    return CgroupPart(parent, files, f"CPU {_cores(cpu)} (cgroup v1, {parent})")


def _quota(cpu):
    return str(round(cpu * CPU_PERIOD_US))


def detect(limits, data_dir, proc="/proc"):
    """
    The L{Confiner} this machine allows for C{limits}.

    @param data_dir: funcplane's data directory; its hash names funcplane's parent cgroup,
        so two funcplanes on one host never touch each other's children.
    """
    tag = hashlib.sha256(os.path.realpath(data_dir).encode()).hexdigest()[:12]
    parent_name = f"funcplane-{tag}"
    memory, cpu = limits.memory_bytes, limits.cpu
    confiner = Confiner([])
    try:
        hierarchies = _hierarchies(proc)
    except (OSError, ValueError, IndexError) as e:
        hierarchies = {}
        reason = f"cannot read this process's cgroups ({e})"
    else:
        reason = "no cgroup hierarchy funcplane may create groups in"
    wanted = [name for name, value in (("memory", memory), ("cpu", cpu)) if value is not None]
    unified = hierarchies.get("")
    if wanted and unified is not None:
        try:
            parent = _v2_parent(unified, parent_name, wanted)
        except OSError as e:
            reason = f"cgroup v2 at {unified}: {e.strerror or e}"
        else:
            files, label = [], []
            if memory is not None:
                files += [("memory.max", str(memory)), ("memory.swap.max", "0")]
                label.append(f"memory {_mib(memory)}")
            if cpu is not None:
                files.append(("cpu.max", f"{_quota(cpu)} {CPU_PERIOD_US}"))
                label.append(f"CPU {_cores(cpu)}")
            events = "memory.events" if memory is not None else None
            confiner.parts.append(
                CgroupPart(parent, tuple(files), f"{', '.join(label)} (cgroup v2, {parent})", events)
            )
            wanted = []
    for controller in [name for name in ("memory", "cpu") if name in wanted and name in hierarchies]:
        try:
            parent = _v1_parent(hierarchies[controller], parent_name)
        except OSError as e:
            reason = f"cgroup v1 {controller} at {hierarchies[controller]}: {e.strerror or e}"
            continue
        confiner.parts.append(_v1_part(controller, parent, memory, cpu))
        wanted.remove(controller)
    if "memory" in wanted:
        confiner.parts.append(
            RlimitPart(
                memory,
                f"address space {_mib(ADDRESS_SPACE_BASE + memory)} (RLIMIT_AS; approximate,"
                f" in place of a {_mib(memory)} memory cgroup: {reason})",
            )
        )
    if "cpu" in wanted:
        confiner.missing.append(
            f"CPU is not limited ({reason}): a spinning child holds a core until the"
            " request-timeout watchdog kills it"
        )
    return confiner
