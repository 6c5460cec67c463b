"""
Whether one more child may start, and what must make room for it first.

Two things can stop a start: funcplane's file descriptors (too few free: see
L{funcplane.runtime.descriptors}) and the running budget (C{--max-running}).  At the
budget, the least recently used idle version is suspended to make room, a version that is
not a function's latest before one that is.  A function's latest (warm) version is only
ever suspended for another latest, or for a deploy (which becomes a latest once it
serves): traffic to an old version, such as a WebSocket that keeps it busy, never takes the
place of what serves a function's own host.
"""

from twisted.internet.defer import succeed

from funcplane.errors import AtCapacity
from funcplane.runtime.lifecycle import FROZEN, RUNNING, STARTING, SUSPENDED


class Admission:
    """
    Decides each start of the supervisor's.

    @param lifecycle: the L{funcplane.runtime.lifecycle.Lifecycle} (C{max_running}).
    @param is_warm: whether a version id is warm (a function's latest, kept running).
    @param descriptors: a L{funcplane.runtime.descriptors.DescriptorReserve}, or L{None}
        not to count descriptors.
    """

    def __init__(self, lifecycle, is_warm, descriptors=None):
        self._lifecycle = lifecycle
        self._is_warm = is_warm
        self._descriptors = descriptors

    def running_count(self, versions):
        """
        How many of C{versions} have a child running, frozen or starting.
        """
        return sum(1 for v in versions if v.state in (RUNNING, FROZEN, STARTING))

    def has_room(self, versions):
        """
        Whether one more child may start beside C{versions} without suspending another.
        """
        limit = self._lifecycle.max_running
        return limit is None or self.running_count(versions) < limit

    def make_room(self, version, versions, suspend, for_latest):
        """
        A Deferred that fires once C{version} may be spawned: at once, or once the version
        chosen to make room under C{max_running} has been suspended and has exited.

        @param versions: every L{funcplane.runtime.lifecycle.VersionRecord}.
        @param suspend: C{suspend(record, state, why)} takes a version's child out of
            service and stops it; returns a Deferred firing once it has exited.
        @param for_latest: whether C{version} is, or is about to be, a function's latest;
            only then may a latest version be suspended for it.
        @raise AtCapacity: descriptors are short, or nothing may make room.
        """
        if self._descriptors is not None:
            self._descriptors.check()
        versions = list(versions)
        if self.has_room(versions):
            return succeed(None)
        limit = self._lifecycle.max_running
        idle = [
            v
            for v in versions
            if v is not version and v.state in (RUNNING, FROZEN) and v.in_flight == 0
        ]
        if not idle:
            raise AtCapacity(
                f"{limit} versions are running (--max-running) and every one is busy;"
                " try again shortly"
            )
        candidates = [v for v in idle if not self._is_warm(v.id)]
        if not candidates and for_latest:
            candidates = idle
        if not candidates:
            raise AtCapacity(
                f"{limit} versions are running (--max-running): the busy ones serve requests"
                " and the idle ones are functions' latest versions, which a request for"
                " another version never suspends; try again shortly, or raise --max-running"
            )
        victim = min(candidates, key=lambda v: v.last_used or 0.0)
        return suspend(victim, SUSPENDED, "to make room (--max-running)")
