"""
The supervisor's housekeeping: a C{LoopingCall} on the injected clock that suspends the
versions that served nothing for the idle timeout and freezes (SIGSTOP) those idle for
C{freeze_after}.  A function's warm latest version and a version with a request in flight
are left alone.

A version retired by the platform (it serves no host but its own any more: a newer one
took over) is not left running for the freeze period: it is frozen (suspended, when
freezing is off) as soon as it has no request in flight.

One version's failure (a signal that raises, a take-out that fails) is logged with that
version, and the tick goes on with the others: nothing a version does can stop the loop.
Should the loop end anyway, the end is logged.
"""

import signal

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from funcplane.runtime.lifecycle import FROZEN, RUNNING


class Reaper:
    """
    Suspends and freezes idle versions, every L{Lifecycle.reap_interval
    <funcplane.runtime.lifecycle.Lifecycle.reap_interval>} once started.

    @param clock: an C{IReactorTime}.
    @param lifecycle: the L{funcplane.runtime.lifecycle.Lifecycle}.
    @param versions: returns the L{funcplane.runtime.lifecycle.VersionRecord}s to look at.
    @param is_warm: whether a version id stays running however long it is idle.
    @param suspend: given a record and why, takes its child out of service and stops it;
        returns a Deferred that fires once the child has exited.
    """

    log = Logger()

    def __init__(self, clock, lifecycle, versions, is_warm, suspend):
        self._clock = clock
        self._lifecycle = lifecycle
        self._versions = versions
        self._is_warm = is_warm
        self._suspend = suspend
        self._loop = LoopingCall(self.reap)
        self._loop.clock = clock
        # Ids of the retired versions that still have requests in flight; the supervisor
        # reads it as each request ends, so that the common case costs no call.
        self.retiring = set()

    def start(self):
        """
        Reap every interval, the first time one interval from now.
        """
        done = self._loop.start(self._lifecycle.reap_interval, now=False)
        done.addErrback(
            lambda failure: self.log.failure(
                "the reaper stopped: idle versions are no longer frozen or suspended",
                failure=failure,
            )
        )

    def stop(self):
        if self._loop.running:
            self._loop.stop()

    def reap(self):
        """
        One tick: suspend every running or frozen version that has served nothing for the
        idle timeout and has no request in flight, and freeze those idle for
        C{freeze_after} (warm versions neither).
        """
        now = self._clock.seconds()
        for version in list(self._versions()):
            child = version.child
            try:
                self._reap(version, now)
            except Exception:
                self._failed(Failure(), version, child)

    def retire(self, version):
        """
        Freeze (or suspend) C{version} now if it has no request in flight, else once its
        last one ends (L{idle}); unless it is warm, or L{keep} is called first.
        """
        if version.state == RUNNING and not self._is_warm(version.id):
            self.retiring.add(version.id)
            self.idle(version)

    def keep(self, version_id):
        """
        Leave C{version_id} to the idle timers again: it serves more than its own host, is
        deleted, or is asked for.
        """
        self.retiring.discard(version_id)

    def idle(self, version):
        """
        C{version} has no request in flight now: freeze it if it is retired.
        """
        if version.id not in self.retiring or version.in_flight:
            return
        self.retiring.discard(version.id)
        child = version.child
        if version.state != RUNNING or self._is_warm(version.id):
            return
        try:
            if self._lifecycle.freeze_after is None:
                exited = self._suspend(version, "now that it is superseded")
                exited.addErrback(self._failed, version, child)
            else:
                self._freeze(version, "now that it is superseded")
        except Exception:
            # Called as a request ends: its failure is the version's, not the request's.
            self._failed(Failure(), version, child)

    def _freeze(self, version, why):
        child = version.child
        child.signal(signal.SIGSTOP)
        version.state = FROZEN
        self.log.info(
            "froze {function}:{version} {why}; its next request thaws it",
            function=child.spec.function,
            version=child.spec.version,
            why=why,
        )

    def _reap(self, version, now):
        if version.state not in (RUNNING, FROZEN) or version.in_flight or self._is_warm(version.id):
            return
        child = version.child
        idle = now - (version.last_used or 0.0)
        freeze_after = self._lifecycle.freeze_after
        if idle >= self._lifecycle.idle_timeout:
            exited = self._suspend(version, "due to inactivity")
            exited.addErrback(self._failed, version, child)
        elif freeze_after is not None and version.state == RUNNING and idle >= freeze_after:
            self._freeze(version, "due to inactivity")

    def _failed(self, failure, version, child):
        spec = child.spec if child is not None else None
        self.log.failure(
            "could not reap {function}:{version} ({version_id}); the others are reaped on",
            failure=failure,
            version_id=version.id,
            function=spec.function if spec is not None else None,
            version=spec.version if spec is not None else None,
        )
