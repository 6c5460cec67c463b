"""
The supervisor owns every workerd child: it starts a version when it is deployed or first
requested (once, however many requests wait), notices when one exits, and stops them all
on shutdown.
"""

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

RUNNING = "running"
STARTING = "starting"
STOPPED = "stopped"
CRASHED = "crashed"


class Supervisor(Service):
    """
    Starts, tracks and stops workerd children, one per version id.

    @param launcher: an L{funcplane.interfaces.IRuntimeLauncher}.
    @param load_spec: a callable taking a version id and returning a Deferred
        L{funcplane.model.VersionSpec}, for versions started on their first request.
    @param grace: seconds between SIGTERM and SIGKILL when stopping a child.
    """

    log = Logger()

    def __init__(self, launcher, load_spec, grace=10.0):
        self._launcher = launcher
        self._load_spec = load_spec
        self._grace = grace
        self._running = {}
        self._starting = {}
        self._crashed = set()
        self._stopping = set()

    def state(self, version_id):
        """
        One of C{running}, C{starting}, C{crashed} or C{stopped}.
        """
        if version_id in self._running:
            return RUNNING
        if version_id in self._starting:
            return STARTING
        if version_id in self._crashed:
            return CRASHED
        return STOPPED

    def pid(self, version_id):
        """
        The pid of a running version, else L{None}.
        """
        child = self._running.get(version_id)
        return child.pid if child is not None else None

    def start(self, spec):
        """
        Start C{spec} unless it is running or starting; return a Deferred that fires with its
        L{funcplane.interfaces.IChild} once it accepts requests, or fails with
        L{StartFailed}.
        """
        if spec.id in self._running:
            return succeed(self._running[spec.id])
        return self._single_flight(spec.id, lambda: succeed(spec))

    def socket_for(self, version_id):
        """
        A Deferred firing with the socket path of version C{version_id}, starting it first
        when it is not running.
        """
        child = self._running.get(version_id)
        if child is not None:
            return succeed(child.socket_path)
        return self._single_flight(
            version_id, lambda: self._load_spec(version_id)
        ).addCallback(lambda child: child.socket_path)

    def _single_flight(self, version_id, get_spec):
        waiter = Deferred()
        if version_id in self._starting:
            self._starting[version_id].append(waiter)
            return waiter
        # The waiter is registered first: the start may complete synchronously.
        self._starting[version_id] = [waiter]
        d = get_spec()
        d.addCallback(self._launch)
        d.addBoth(self._started, version_id)
        return waiter

    def _launch(self, spec):
        child = self._launcher.launch(spec)
        self.log.info(
            "starting {function}:{version} (pid {pid})",
            function=spec.function,
            version=spec.version,
            pid=child.pid,
        )
        def failed(failure):
            # Answer only once the process is really gone, so a failed start leaves nothing.
            child.stop(self._grace)
            return child.when_ended().addCallback(lambda _: failure)

        return child.when_ready().addErrback(failed)

    def _started(self, result, version_id):
        waiters = self._starting.pop(version_id)
        if isinstance(result, Failure):
            for waiter in waiters:
                waiter.errback(result)
            return None
        child = result
        self._running[version_id] = child
        self._crashed.discard(version_id)
        child.when_ended().addCallback(self._ended, child)
        for waiter in waiters:
            waiter.callback(child)
        return None

    def _ended(self, reason, child):
        version_id = child.spec.id
        if self._running.get(version_id) is child:
            del self._running[version_id]
        if version_id in self._stopping:
            self._stopping.discard(version_id)
            self.log.info(
                "stopped {function}:{version}",
                function=child.spec.function,
                version=child.spec.version,
            )
            return
        self._crashed.add(version_id)
        self.log.warn(
            "{function}:{version} exited unexpectedly ({reason}); it starts again on its"
            " next request. Last stderr: {stderr}",
            function=child.spec.function,
            version=child.spec.version,
            reason=str(reason),
            stderr="\n".join(child.stderr_tail()),
        )

    def stop(self, version_id):
        """
        Stop version C{version_id}'s child, if it has one (waiting for a start in progress
        to finish first).  The Deferred fires once the process is gone.
        """
        self._crashed.discard(version_id)
        if version_id in self._starting:
            waiting = Deferred()
            self._starting[version_id].append(waiting)
            return waiting.addBoth(lambda _: self.stop(version_id))
        child = self._running.get(version_id)
        if child is None:
            return succeed(None)
        self._stopping.add(version_id)
        return child.stop(self._grace).addCallback(lambda _: None)

    def stopService(self):
        """
        Stop every child; fires once they have all exited.
        """
        Service.stopService(self)
        ids = set(self._running) | set(self._starting)
        return DeferredList([self.stop(i) for i in ids], consumeErrors=True)
