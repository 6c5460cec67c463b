"""
The supervisor owns every workerd child.

It starts a version when it is deployed or first requested (once, however many requests
wait), counts the requests each version has in flight, suspends versions that sat idle
(its L{funcplane.runtime.reaper.Reaper}) or that must make room under the running budget,
restarts crashed versions with a jittered exponential backoff, kills children that stop
answering, and stops them all on shutdown.  The states and settings it works with are in
L{funcplane.runtime.lifecycle}.

A child that is being suspended or stopped is taken out of service before it is signalled:
a request that arrives meanwhile starts a new child on a socket of its own, and the old one
finishes what it was doing.
"""

import random
import signal

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from funcplane.errors import AtCapacity, StartFailed
from funcplane.interfaces import ISupervisor
from funcplane.runtime.admission import Admission
from funcplane.runtime.lifecycle import (
    CRASHED,
    FROZEN,
    RUNNING,
    STARTING,
    STOPPED,
    SUSPENDED,
    Lifecycle,
    Runtime,
    VersionRecord,
)
from funcplane.runtime.reaper import Reaper
from funcplane.runtime.watchdog import SpinWatch, Verdicts


class _Lease:
    """
    Counts one request as in flight on a version until it is released.
    """

    def __init__(self, supervisor, version):
        self._supervisor = supervisor
        self._version = version

    def release(self):
        if self._version is not None:
            version, self._version = self._version, None
            self._supervisor._released(version)


@implementer(ISupervisor)
class Supervisor(Service):
    """
    Starts, tracks, suspends and stops workerd children, one per version id at a time.

    @param clock: an C{IReactorTime}.
    @param launcher: an L{funcplane.interfaces.IRuntimeLauncher}.
    @param load_spec: a callable taking a version id and returning a Deferred
        L{funcplane.model.VersionSpec}, for versions started on their first request.
    @param lifecycle: a L{Lifecycle}.
    @param is_warm: whether a version id should stay running when idle (a function's
        latest), unless C{lifecycle.scale_to_zero}.
    @param watch: a L{funcplane.runtime.watchdog.SpinWatch}, which tells a wedged child
        after a request to it timed out.
    @param descriptors: a L{funcplane.runtime.descriptors.DescriptorReserve} asked before
        each spawn, or L{None}.
    @param jitter: returns the factor a backoff delay is multiplied by.
    """

    log = Logger()

    def __init__(
        self,
        clock,
        launcher,
        load_spec,
        lifecycle=Lifecycle(),
        is_warm=lambda version_id: False,
        watch=None,
        jitter=lambda: random.uniform(0.8, 1.2),
        descriptors=None,
    ):
        self._clock = clock
        self._launcher = launcher
        self._load_spec = load_spec
        self._lifecycle = lifecycle
        self._is_warm = is_warm
        self._verdicts = Verdicts(watch or SpinWatch(clock), self._kill_wedged)
        self._admission = Admission(lifecycle, self._warm, descriptors)
        self._jitter = jitter
        self._versions = {}
        self._stopping = False
        # Children taken out of service and signalled, until they exit: child -> why.
        self._leaving = {}
        self._reaper = Reaper(
            clock,
            lifecycle,
            lambda: self._versions.values(),
            self._warm,
            lambda version, why: self._take_out(version, SUSPENDED, why),
        )

    def _version(self, version_id):
        version = self._versions.get(version_id)
        if version is None:
            version = self._versions[version_id] = VersionRecord(version_id)
        return version

    # What is known.

    def state(self, version_id):
        """
        One of C{running}, C{starting}, C{suspended}, C{crashed} or C{stopped}.
        """
        version = self._versions.get(version_id)
        return version.state if version is not None else STOPPED

    def pid(self, version_id):
        """
        The pid of a running version, else L{None}.
        """
        version = self._versions.get(version_id)
        if version is None or version.child is None:
            return None
        return version.child.pid

    def runtime(self, version_id):
        """
        The L{Runtime} of C{version_id}.
        """
        version = self._versions.get(version_id) or VersionRecord(version_id)
        return Runtime(
            state=version.state,
            pid=self.pid(version_id),
            last_request=version.last_request,
            restarts=version.restarts,
        )

    def running_count(self):
        """
        How many children are running, frozen or starting.
        """
        return self._admission.running_count(self._versions.values())

    def has_room(self):
        """
        Whether one more child may start without suspending another (C{max_running}).
        """
        return self._admission.has_room(self._versions.values())

    # Requests.

    def lease(self, version_id):
        """
        Count a request as in flight on C{version_id} until the returned lease's
        C{release()}: the reaper does not suspend a version with requests in flight.
        """
        version = self._version(version_id)
        version.in_flight += 1
        version.last_used = version.last_request = self._clock.seconds()
        return _Lease(self, version)

    def _released(self, version):
        version.in_flight -= 1
        version.last_used = self._clock.seconds()
        if version.in_flight == 0 and version.id in self._reaper.retiring:
            self._reaper.idle(version)

    def running_socket(self, version_id):
        """
        The socket path of version C{version_id} if it is running, else L{None}: the
        proxy's fast path, without a Deferred.  While its child is judged (a request to it
        timed out) it is L{None} too: L{ensure_running} waits for the verdict.
        """
        version = self._versions.get(version_id)
        if version is not None and version.child is not None and version.state == RUNNING:
            if version.verdict is None:
                return version.child.socket_path
        return None

    def ensure_running(self, version_id):
        """
        A Deferred firing with the socket path of version C{version_id}, starting it first
        when it is not running.  Fails with L{StartFailed} while the version is backing off
        after crashes, and with L{AtCapacity} when no child may start (see
        L{funcplane.runtime.admission}).  While the version's child is judged, it waits for
        the verdict: then it is the same child, or a fresh one if that one was killed.
        """
        version = self._version(version_id)
        self._reaper.keep(version_id)
        if version.verdict is not None:
            judged = self._verdicts.wait(version)
            return judged.addCallback(lambda _: self.ensure_running(version_id))
        child = self._serving(version)
        if child is not None:
            return succeed(child.socket_path)
        if version.state == CRASHED and self._clock.seconds() < version.retry_at:
            return fail(self._crash_loop(version))
        return self._start(version, lambda: self._load_spec(version_id)).addCallback(
            lambda child: child.socket_path
        )

    def start(self, spec):
        """
        Start C{spec} unless it is running or starting; return a Deferred that fires with its
        L{funcplane.interfaces.IChild} once it accepts requests, or fails with
        L{StartFailed}.
        """
        version = self._version(spec.id)
        self._reaper.keep(spec.id)
        child = self._serving(version)
        if child is not None:
            return succeed(child)
        # A deploy: the version is about to be its function's latest.
        return self._start(version, lambda: succeed(spec), for_latest=True)

    def _serving(self, version):
        """
        C{version}'s child if it can serve now (a frozen one is thawed), else L{None}.
        """
        if version.child is not None and version.state == FROZEN:
            self._thaw(version)
        return version.child if version.state == RUNNING else None

    def _crash_loop(self, version):
        wait = max(0.0, version.retry_at - self._clock.seconds())
        return StartFailed(
            f"it crashed {version.crashes} times in a row and starts again in {wait:.0f} s;"
            f" last error: {version.crash_reason or 'none printed'}",
            reason="CrashLoop",
        )

    def _start(self, version, get_spec, for_latest=False):
        waiter = Deferred()
        if version.waiters is not None:
            version.waiters.append(waiter)
            return waiter
        try:
            room = self._admission.make_room(
                version,
                self._versions.values(),
                self._take_out,
                for_latest or self._warm(version.id),
            )
        except AtCapacity:
            return fail()
        self._cancel_restart(version)
        # The waiter is registered first: the start may complete synchronously.
        version.waiters = [waiter]
        version.state = STARTING
        # A version suspended to make room has exited before the new one is spawned, so
        # there are never more than --max-running processes, even for a moment.
        d = room.addCallback(lambda _: get_spec())
        d.addCallback(self._launch)
        d.addBoth(self._started, version)
        return waiter

    def _launch(self, spec):
        if self._stopping:
            # A start that was waiting (for its spec, or for room) when funcplane began
            # to stop spawns nothing: stopService has already asked every child to go.
            raise StartFailed("funcplane is stopping", reason="Stopping")
        child = self._launcher.launch(spec)
        self.log.info(
            "starting {function}:{version} (pid {pid})",
            function=spec.function,
            version=spec.version,
            pid=child.pid,
        )

        def failed(failure):
            # Answer only once the process is really gone, so a failed start leaves nothing.
            child.stop(self._lifecycle.grace)
            return child.when_ended().addCallback(lambda _: failure)

        return child.when_ready().addErrback(failed)

    def _started(self, result, version):
        # Nothing changes a version while it starts: a stop waits for the start to end.
        waiters, version.waiters = version.waiters, None
        if isinstance(result, Failure):
            if version.last_used is not None:
                # A version that served before failed to wake: back off as after a crash.
                self._crashed(version, str(result.value))
            else:
                # A new version that failed to start is not kept.
                self._versions.pop(version.id, None)
            for waiter in waiters:
                waiter.errback(result)
            return None
        child = result
        version.child = child
        version.state = RUNNING
        version.ready_at = self._clock.seconds()
        if version.last_used is None or version.in_flight == 0:
            version.last_used = version.ready_at
        child.when_ended().addCallback(self._ended, version, child)
        for waiter in waiters:
            waiter.callback(child)
        return None

    # Endings.

    def _take_out(self, version, state, why, kill=False):
        """
        Take C{version}'s child out of service and stop it: SIGTERM, then SIGKILL after the
        grace period (or SIGKILL at once when C{kill}).  The Deferred fires when it has
        exited.
        """
        child = version.child
        version.child = None
        version.state = state
        if child is None:
            return succeed(None)
        self._leaving[child] = (state, why)
        if kill:
            child.signal(signal.SIGKILL)
            return child.when_ended().addCallback(lambda _: None)
        if state == SUSPENDED:
            self.log.info(
                "suspended {function}:{version} {why}",
                function=child.spec.function,
                version=child.spec.version,
                why=why,
            )
        return child.stop(self._lifecycle.grace).addCallback(lambda _: None)

    def _ended(self, reason, version, child):
        leaving = self._leaving.pop(child, None)
        if leaving is not None:
            state, why = leaving
            if state == STOPPED:
                self.log.info(
                    "stopped {function}:{version}",
                    function=child.spec.function,
                    version=child.spec.version,
                )
            return
        if version.child is not child:
            return
        version.child = None
        version.restarts += 1
        stderr = "\n".join(child.stderr_tail())
        self.log.warn(
            "{function}:{version} exited unexpectedly ({reason}). Last stderr: {stderr}",
            function=child.spec.function,
            version=child.spec.version,
            reason=str(reason),
            stderr=stderr,
        )
        self._crashed(version, stderr)

    def _crashed(self, version, reason):
        """
        Back off before C{version} starts again, and restart it then if it is warm.
        """
        now = self._clock.seconds()
        lived = now - version.ready_at
        version.crashes = version.crashes + 1 if lived < self._lifecycle.stable else 1
        if version.crashes == 1:
            delay = 0.0
        else:
            life = self._lifecycle
            delay = min(life.backoff_initial * 2 ** (version.crashes - 2), life.backoff_max)
            delay *= self._jitter()
        version.state = CRASHED
        version.retry_at = now + delay
        version.crash_reason = reason.strip().splitlines()[-1] if reason.strip() else ""
        if self._warm(version.id) and self.running:
            version.restart_call = self._clock.callLater(delay, self._restart, version)

    def _restart(self, version):
        version.restart_call = None
        if version.state == CRASHED and self._warm(version.id):
            self._warm_up(version)

    def _warm_up(self, version):
        """
        Start a warm version again by itself, without a request waiting for it.
        """
        self.ensure_running(version.id).addErrback(
            lambda f: self.log.info(
                "restarting version {version_id} failed: {error}",
                version_id=version.id,
                error=f.getErrorMessage(),
            )
        )

    def _cancel_restart(self, version):
        if version.restart_call is not None and version.restart_call.active():
            version.restart_call.cancel()
        version.restart_call = None

    def _warm(self, version_id):
        return not self._lifecycle.scale_to_zero and self._is_warm(version_id)

    # Housekeeping.

    def reap(self):
        """
        Suspend and freeze the versions that sat idle, now (the reaper does it every
        C{reap_interval} while the service runs).
        """
        self._reaper.reap()

    def retire(self, version_id):
        """
        See L{ISupervisor.retire}: the reaper freezes it once nothing is in flight on it.
        """
        version = self._versions.get(version_id)
        if version is not None:
            self._reaper.retire(version)

    def _thaw(self, version):
        version.child.signal(signal.SIGCONT)
        version.state = RUNNING

    def request_timed_out(self, version_id):
        """
        A request to C{version_id} ran past the request timeout: watch its child's CPU for a
        moment, and kill it if it is spinning (a handler in an endless loop never yields,
        so every request to it would time out).  Requests that arrive meanwhile wait for
        the verdict (L{ensure_running}): none is sent to a child about to be killed.
        """
        version = self._versions.get(version_id)
        if version is not None:
            self._verdicts.judge(version)

    def _kill_wedged(self, version, child, share):
        self.log.warn(
            "killed {function}:{version}: a request ran past the request timeout while it"
            " spun (it ran or waited for a CPU {percent:.0f}% of the time); it starts again on"
            " its next request",
            function=child.spec.function,
            version=child.spec.version,
            percent=share * 100,
        )
        version.restarts += 1
        self._take_out(version, STOPPED, "wedged", kill=True)
        if self._warm(version.id) and self.running:
            self._warm_up(version)

    def stop(self, version_id):
        """
        Stop version C{version_id}'s child, if it has one (waiting for a start in progress
        to finish first).  The Deferred fires once the process is gone.
        """
        version = self._versions.get(version_id)
        if version is None:
            return succeed(None)
        self._cancel_restart(version)
        if version.waiters is not None:
            waiting = Deferred()
            version.waiters.append(waiting)
            return waiting.addBoth(lambda _: self.stop(version_id))
        leaving = [c.when_ended() for c, _ in self._leaving.items() if c.spec.id == version_id]
        done = self._take_out(version, STOPPED, "on request")
        return DeferredList([done] + leaving, consumeErrors=True).addCallback(lambda _: None)

    def forget(self, version_id):
        """
        Stop C{version_id} and drop what is known of it (it was deleted).
        """
        self._reaper.keep(version_id)
        return self.stop(version_id).addCallback(lambda _: self._versions.pop(version_id, None))

    def startService(self):
        super().startService()
        self._stopping = False
        self._reaper.start()

    def stopService(self):
        """
        Stop every child; fires once they have all exited.
        """
        super().stopService()
        self._stopping = True
        self._reaper.stop()
        stops = [self.stop(version_id) for version_id in list(self._versions)]
        return DeferredList(stops, consumeErrors=True)
