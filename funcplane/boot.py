"""
What starts when funcplane starts: every function's latest version, a few at a time and
within the running budget, or nothing at all under C{--scale-to-zero}.  The rest start on
their first request.
"""

from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.logger import Logger

from funcplane.errors import AtCapacity

# Latest versions started at once when funcplane starts.
START_CONCURRENCY = 4
log = Logger()


async def start_latest(supervisor, all_routes, scale_to_zero=False, concurrency=START_CONCURRENCY):
    """
    Start every function's latest version, C{concurrency} at a time and only while the
    running budget has room; the rest start on their first request.  Failures are logged.
    With C{scale_to_zero}, nothing starts.

    Cancelling the Deferred (funcplane is stopping) starts nothing more; a start already
    asked of the supervisor goes on there, and the supervisor stops it when it stops.

    @param supervisor: the L{funcplane.interfaces.ISupervisor}.
    @param all_routes: every function's L{funcplane.model.FunctionRoutes}.
    """
    if scale_to_zero:
        log.info("no version is started before its first request (--scale-to-zero)")
        return
    latest = [(r.function, r.latest) for r in all_routes if r.latest is not None]
    queue = iter(latest)
    started = []

    async def start(function, version_id):
        if not supervisor.has_room():
            return
        try:
            await supervisor.ensure_running(version_id)
        except CancelledError:
            raise
        except AtCapacity:
            return
        except Exception:
            log.failure("could not start the latest version of {function}", function=function)
            return
        started.append(function)

    async def work():
        # Each worker takes the next version once its last one has started.
        for function, version_id in queue:
            await start(function, version_id)

    workers = [Deferred.fromCoroutine(work()) for _ in range(concurrency)]
    for succeeded, result in await DeferredList(workers, consumeErrors=True):
        if not succeeded:
            # Cancelled: the workers stopped taking versions, and so does this.
            result.raiseException()
    if len(started) < len(latest):
        log.info(
            "started the latest version of {started} of {count} functions; the others"
            " start on their first request (--max-running)",
            started=len(started),
            count=len(latest),
        )
