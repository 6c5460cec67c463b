"""
Telling a wedged child from a slow one: a handler in an endless loop keeps a CPU busy,
one waiting on a slow fetch does not.  The watchdog samples a process's CPU time from
C{/proc} over a short window, off the request path, only after a request timed out.

A child may use no more CPU than its quota (C{--child-cpu}, enforced by its cgroup), so a
spinning child under a quota of half a core uses half a core: the threshold is a share of
what the child may use, not of a whole core. And a busy machine may give a spinning child
less than that: what is measured is the time its threads ran I{or waited for a CPU to run
on} (C{/proc/PID/task/*/schedstat}), which for a spinning child is all of the time,
however many others want the same cores.

While a child is judged (L{Verdicts}), no request is sent to it: each waits for the
verdict, then goes to the same child if it was not spinning, or to a fresh one if it was
killed, so that a request never pays for the one that timed out before it.
"""

import os

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger


def cpu_seconds(pid):
    """
    The CPU time (user and system) process C{pid} has used, from C{/proc/PID/stat}.
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wanted_seconds(pid, proc="/proc"):
    """
    The seconds the threads of process C{pid} have spent running or runnable (waiting in
    a run queue), summed from C{PROC/PID/task/*/schedstat}; its CPU time (L{cpu_seconds})
    where the kernel keeps no such figures.

    @raise OSError: there is no process C{pid}.
    """
    tasks = f"{proc}/{pid}/task"
    total, read = 0, False
    for task in os.listdir(tasks):
        try:
            with open(f"{tasks}/{task}/schedstat", "rb") as f:
                running, waiting = f.read().split()[:2]
        except FileNotFoundError:
            # A thread that ended since the directory was listed, or no schedstat at all.
            continue
        total += int(running) + int(waiting)
        read = True
    if not read:
        return cpu_seconds(pid)
    return total / 1e9


class SpinWatch:
    """
    Measures whether a process is spinning.

    @param clock: an C{IReactorTime}.
    @param cpu: C{cpu(pid)} is the seconds a process has run or waited to run
        (L{wanted_seconds}).
    @param sample: seconds the process is watched.
    @param threshold: the share of what the process may use (one core, or its quota if
        that is less) above which it counts as spinning.
    @param quota: the cores a child may use (C{--child-cpu}), or L{None} for no limit.
        A spinning isolate keeps one core busy at most, so a quota above one changes
        nothing.
    """

    def __init__(self, clock, cpu=wanted_seconds, sample=0.5, threshold=0.8, quota=None):
        self._clock = clock
        self._cpu = cpu
        self._sample = sample
        self.threshold = threshold * min(quota or 1.0, 1.0)

    def share(self, pid):
        """
        A Deferred firing with the share of a core C{pid} used over the sample, or L{None}
        when it cannot be read (the process is gone).
        """
        try:
            before = self._cpu(pid)
        except (OSError, TypeError):
            return deferLater(self._clock, 0, lambda: None)

        def after():
            try:
                return (self._cpu(pid) - before) / self._sample
            except (OSError, TypeError):
                return None

        return deferLater(self._clock, self._sample, after)

    def spinning(self, share):
        return share is not None and share >= self.threshold


class Verdicts:
    """
    The judging of versions whose requests timed out: one at a time per version, with the
    requests that wait for it kept on the version's record (C{verdict}, L{None} while it
    is not judged).

    @param watch: the L{SpinWatch}.
    @param kill: C{kill(record, child, share)} takes a spinning child out of service.
    """

    log = Logger()

    def __init__(self, watch, kill):
        self._watch = watch
        self._kill = kill

    def judge(self, version):
        """
        Watch C{version}'s child, unless it has none or is judged already.
        """
        if version.child is None or version.verdict is not None:
            return
        version.verdict = []
        child = version.child
        # However the watch or the kill fails, the verdict comes (not spinning, if the
        # watch failed) and the requests waiting for it go on.
        judged = maybeDeferred(self._watch.share, child.pid)
        judged.addErrback(self._failed, "could not watch {function}:{version}", child)
        judged.addCallback(self._judged, version, child)
        judged.addErrback(self._failed, "could not kill {function}:{version}", child)

    def wait(self, version):
        """
        A Deferred firing (with L{None}) once C{version}, which is being judged, is judged.
        """
        waiting = Deferred()
        version.verdict.append(waiting)
        return waiting

    def _failed(self, failure, what, child):
        self.log.failure(what, failure, function=child.spec.function, version=child.spec.version)
        return None

    def _judged(self, share, version, child):
        waiting, version.verdict = version.verdict, None
        try:
            if version.child is child and self._watch.spinning(share):
                self._kill(version, child, share)
        finally:
            for judged in waiting:
                judged.callback(None)
