"""
funcplane's own file descriptors.

Every child costs funcplane about three descriptors (its stdout, stderr and control
pipes) and every proxied request one or two more, so the common soft limit of 1,024 open
files runs out at a few hundred versions.  Like Go's runtime, funcplane raises its soft
C{RLIMIT_NOFILE} to the hard limit when it starts (L{raise_open_files_limit}); and it
counts descriptors before each spawn (L{DescriptorReserve}): when fewer than a reserve are
free, no new child starts (503, with the reason), so that what runs keeps the descriptors
it needs to serve, and children start again once descriptors are freed.
"""

import os
import resource

from twisted.logger import Logger

from funcplane.errors import AtCapacity

DEFAULT_RESERVE = 256
_NR_OPEN = "/proc/sys/fs/nr_open"


def _nr_open():
    """
    The kernel's ceiling on a process's open files, which an unlimited hard limit means.
    """
    try:
        with open(_NR_OPEN) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def raise_open_files_limit(
    getrlimit=resource.getrlimit, setrlimit=resource.setrlimit, ceiling=_nr_open
):
    """
    Raise this process's soft limit of open files to its hard limit.

    @return: C{(before, after, error)}: the soft limit before and after, and why it could
        not be raised (L{None} when it was, or did not need to be).
    """
    soft, hard = getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return soft, soft, None
    target = hard
    if hard == resource.RLIM_INFINITY:
        # Linux refuses an unlimited soft limit of open files: its ceiling is nr_open.
        target = ceiling()
        if target is None:
            return soft, soft, "the hard limit is unlimited and the kernel's ceiling unknown"
    if soft >= target:
        return soft, soft, None
    try:
        setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as e:
        return soft, soft, str(e)
    return soft, target, None


def open_files_limit():
    """
    The soft limit of open files now, or L{None} if there is none.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def count_open(directory="/proc/self/fd"):
    """
    How many descriptors this process has open (the listing's own one left out).
    """
    return len(os.listdir(directory)) - 1


class DescriptorReserve:
    """
    Refuses a spawn while fewer than C{reserve} of funcplane's descriptors are free.

    @param reserve: descriptors kept for what already runs (C{--fd-reserve}).
    @param count: returns how many descriptors are open (counted once a spawn).
    @param limit: returns the soft limit of open files, or L{None} for none.
    """

    log = Logger()

    def __init__(self, reserve=DEFAULT_RESERVE, count=count_open, limit=open_files_limit):
        self.reserve = reserve
        self._count = count
        self._limit = limit
        self._short = False

    def check(self):
        """
        Return if a child may be spawned now; else raise L{AtCapacity} saying why and
        what to do.
        """
        limit = self._limit()
        if limit is None:
            return
        free = limit - self._count()
        if free >= self.reserve:
            if self._short:
                self._short = False
                self.log.info(
                    "{free} file descriptors are free again: versions start again",
                    free=free,
                )
            return
        message = (
            f"funcplane has {max(free, 0)} of its {limit} file descriptors free, fewer than the"
            f" {self.reserve} it keeps for the versions already running (--fd-reserve), so"
            " no other version starts until some close; raise funcplane's open files limit"
            " (LimitNOFILE= in its systemd unit, or ulimit -n) or lower --max-running"
        )
        if not self._short:
            self._short = True
            self.log.warn("{message}", message=message, free=free, limit=limit)
        raise AtCapacity(message)
