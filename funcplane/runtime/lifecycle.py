"""
How the supervisor's children live: the states a version is in, the settings that decide
when it is frozen, suspended or restarted (L{Lifecycle}), what the supervisor records of
each version (L{VersionRecord}) and what it shows of one (L{Runtime}).
"""

import attrs

RUNNING = "running"
FROZEN = "frozen"
STARTING = "starting"
SUSPENDED = "suspended"
CRASHED = "crashed"
STOPPED = "stopped"


@attrs.frozen
class Lifecycle:
    """
    How the supervisor treats children; every duration in seconds.

    @ivar idle_timeout: a version that served nothing for this long is suspended.
    @ivar freeze_after: a version that served nothing for this long is frozen (SIGSTOP:
        it keeps its memory, uses no CPU, and its next request thaws it at once), until the
        idle timeout suspends it (L{None}: never frozen).
    @ivar scale_to_zero: suspend warm versions (a function's latest) too.
    @ivar max_running: the most children alive at once (L{None}: no limit).
    @ivar grace: between SIGTERM and SIGKILL.
    @ivar stable: a child that lived this long before it crashed starts a new backoff.
    @ivar backoff_initial: the wait before the second restart in a row.
    @ivar backoff_max: the longest wait between restarts.
    """

    idle_timeout: float = 300.0
    freeze_after: float | None = None
    scale_to_zero: bool = False
    max_running: int | None = None
    grace: float = 10.0
    stable: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0

    @property
    def reap_interval(self):
        """
        How often the reaper looks for idle versions: a quarter of the shortest idle
        period, between 0.05 and 5 seconds.
        """
        shortest = min(self.idle_timeout, self.freeze_after or self.idle_timeout)
        return max(0.05, min(shortest / 4, 5.0))


@attrs.frozen
class Runtime:
    """
    What the supervisor knows of one version right now.
    """

    state: str
    pid: int | None
    last_request: float | None
    restarts: int


@attrs.define(eq=False)
class VersionRecord:
    """
    One version's child and history, as the supervisor and its reaper keep them.

    @ivar child: the L{funcplane.interfaces.IChild} serving it, or L{None}.
    @ivar waiters: while it starts, the Deferreds waiting for the start; else L{None}.
    @ivar in_flight: requests being served now.
    @ivar last_used: when it last started or finished a request (idle time counts from
        here).
    @ivar crashes: crashes in a row, each within L{Lifecycle.stable} of its start.
    @ivar retry_at: before this time a crashed version is not started again.
    @ivar verdict: while its child is judged (a request to it timed out), the Deferreds
        of the requests that wait for the verdict; else L{None}.
    """

    id: str
    child: object = None
    waiters: list | None = None
    state: str = STOPPED
    in_flight: int = 0
    last_used: float | None = None
    last_request: float | None = None
    restarts: int = 0
    crashes: int = 0
    ready_at: float = 0.0
    retry_at: float = 0.0
    crash_reason: str = ""
    restart_call: object = None
    verdict: list | None = None
