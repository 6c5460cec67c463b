"""
A MultiService whose children start one after another and stop in reverse order.

Twisted's C{MultiService} starts every child at once and drops the Deferreds their
C{startService} returns.  funcplane's parts depend on one another (the store is open before
the routes are read from it, the routes are loaded before the listener serves them), so here
each child starts only once the one before it has, as in Buildbot's C{AsyncMultiService}.
"""

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredLock, maybeDeferred
from twisted.logger import Logger


class StoppedWhileStarting(Exception):
    """
    The service was stopped before all of its children had started.
    """


class OrderedMultiService(MultiService):
    """
    Starts its children in the order they were added, each once the Deferred of the one
    before it has fired, and stops those that started in reverse order, each once the one
    after it has stopped.  Children are added before it starts.

    When a child fails to start, every child that started is stopped, the failed one
    included (so that it can undo what part of its start happened), and the start fails
    with that child's failure.  A stop asked while a start is under way starts no further
    child: the start fails with L{StoppedWhileStarting} once the child starting has
    started, and the stop then stops them all.
    """

    log = Logger()

    def __init__(self):
        super().__init__()
        self._started_children = []
        # Held by a start or a stop from beginning to end, so that they never interleave.
        self._busy = DeferredLock()

    def startService(self):
        """
        Start the children in order; the Deferred fires once the last has started.
        """
        Service.startService(self)
        return self._busy.run(lambda: Deferred.fromCoroutine(self._start_children()))

    def stopService(self):
        """
        Stop the children that started, in reverse order; the Deferred fires once the
        first one added has stopped.  A child that fails to stop is logged, and the others
        are stopped all the same.
        """
        Service.stopService(self)
        return self._busy.run(lambda: Deferred.fromCoroutine(self._stop_children()))

    async def _start_children(self):
        try:
            for child in list(self):
                if not self.running:
                    raise StoppedWhileStarting(f"stopped before {child.name} started")
                self._started_children.append(child)
                await maybeDeferred(child.startService)
        except BaseException as e:
            self.running = 0
            await self._stop_children()
            raise e

    async def _stop_children(self):
        while self._started_children:
            child = self._started_children.pop()
            try:
                await maybeDeferred(child.stopService)
            except Exception:
                self.log.failure("{name} did not stop cleanly", name=child.name)
