"""
Telling a wedged child from a slow one: a handler in an endless loop keeps a CPU busy,
one waiting on a slow fetch does not.  The watchdog samples a process's CPU time from
C{/proc} over a short window, off the request path, only after a request timed out.
"""

import os

from twisted.internet.task import deferLater


def cpu_seconds(pid):
    """
    The CPU time (user and system) process C{pid} has used, from C{/proc/PID/stat}.
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SpinWatch:
    """
    Measures whether a process is spinning.

    @param clock: an C{IReactorTime}.
    @param cpu: C{cpu(pid)} is the CPU seconds a process has used.
    @param sample: seconds the process is watched.
    @param threshold: the share of one core above which it counts as spinning.
    """

    def __init__(self, clock, cpu=cpu_seconds, sample=0.5, threshold=0.8):
        self._clock = clock
        self._cpu = cpu
        self._sample = sample
        self._threshold = threshold

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
        return share is not None and share >= self._threshold
