"""
One run of a function's scheduled handler: the serving version is woken if it sleeps,
counted in flight while it runs (so the reaper leaves it), sent the event on its events
socket (L{funcplane.runtime.events}), and the outcome is told three ways: a line in the
version's logs, an event for its live tails (C{wrangler tail}), and funcplane's own log.
"""

import attrs
from twisted.internet.defer import CancelledError
from twisted.logger import Logger

from funcplane.errors import FuncplaneError
from funcplane.observe.logbook import EXCEPTION, RUNTIME
from funcplane.observe.scheduled import ScheduledRun
from funcplane.runtime.delivery import NotDelivered
from funcplane.timestamps import timestamp

OK = "ok"
EXCEPTION_OUTCOME = "exception"
NO_HANDLER = "noHandler"
UNKNOWN = "unknown"
CANCELED = "canceled"
# What a tail shows of each outcome (Cloudflare's trace outcomes).
_TRACE_OUTCOMES = {OK: "ok", EXCEPTION_OUTCOME: "exception", CANCELED: "canceled"}
_SHOWN = {OK: "Ok", EXCEPTION_OUTCOME: "Exception Thrown", NO_HANDLER: "No Handler",
          UNKNOWN: "Not Run", CANCELED: "Canceled"}


@attrs.frozen
class RunResult:
    """
    How one scheduled run went.

    @ivar outcome: C{ok}, C{exception} (the handler threw or a C{waitUntil} promise
        failed), C{noHandler} (the version has no scheduled handler, so nothing ran),
        C{unknown} (funcplane could not run it: no version, it did not start, it did not
        answer in time) or C{canceled} (funcplane stopped meanwhile).
    @ivar message: why, for every outcome but C{ok} and C{exception}.
    @ivar error: C{{"name", "message", "stack"}} of what the handler threw, or L{None}.
    """

    function: str
    version: str | None
    version_id: str | None
    cron: str
    scheduled_time: float
    started: float
    ended: float
    outcome: str
    message: str | None = None
    error: dict | None = None


@attrs.frozen
class _Source:
    # What the log book needs to know of the version a line is about.
    function: str
    version: str
    id: str


class ScheduledRunner:
    """
    Runs scheduled handlers.

    @param clock: an C{IReactorTime}.
    @param supervisor: the L{funcplane.interfaces.ISupervisor}.
    @param deliver: C{deliver(socket_path, cron, scheduled_time)}, a Deferred or coroutine
        of the child's answer (L{funcplane.runtime.delivery.EventsClient.scheduled}).
    @param logbook: the L{funcplane.observe.logbook.LogBook} each run is written to.
    @param tails: the L{funcplane.observe.tails.Tails} told of each run, or L{None}.
    """

    log = Logger()

    def __init__(self, clock, supervisor, deliver, logbook=None, tails=None):
        self._clock = clock
        self._supervisor = supervisor
        self._deliver = deliver
        self._logbook = logbook
        self._tails = tails

    async def run(self, target, cron, scheduled_time):
        """
        Run the scheduled handler of C{target} (a L{funcplane.model.Target}) for C{cron}
        at C{scheduled_time}; return its L{RunResult}.  Never fails: every failure is an
        outcome (a cancellation too, which then goes on as L{CancelledError}).
        """
        started = self._clock.seconds()
        outcome, message, error, canceled = await self._attempt(target, cron, scheduled_time)
        result = RunResult(
            function=target.function,
            version=target.version,
            version_id=target.version_id,
            cron=cron,
            scheduled_time=scheduled_time,
            started=started,
            ended=self._clock.seconds(),
            outcome=outcome,
            message=message,
            error=error,
        )
        self._record(result)
        if canceled is not None:
            raise canceled
        return result

    async def _attempt(self, target, cron, scheduled_time):
        """
        C{(outcome, message, error, cancellation)} of one attempt.
        """
        if target.version_id is None:
            return UNKNOWN, f"{target.function} has no deployed version to run it", None, None
        lease = self._supervisor.lease(target.version_id)
        try:
            socket_path = await self._supervisor.ensure_running(target.version_id)
            answer = await self._deliver(socket_path, cron, scheduled_time)
        except CancelledError as e:
            return CANCELED, "funcplane stopped before the run ended", None, e
        except FuncplaneError as e:
            return UNKNOWN, f"the version did not start: {e}", None, None
        except NotDelivered as e:
            return UNKNOWN, str(e), None, None
        finally:
            lease.release()
        outcome = answer.get("outcome")
        if outcome == OK:
            return OK, None, None, None
        if outcome == NO_HANDLER:
            return NO_HANDLER, str(answer.get("message") or "the version has no scheduled handler"), None, None
        error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
        error = {key: str(error.get(key, "")) for key in ("name", "message", "stack")}
        return EXCEPTION_OUTCOME, None, error, None

    def _record(self, result):
        took = max(0, round((result.ended - result.started) * 1000))
        summary = (
            f'scheduled "{result.cron}" @ {timestamp(result.scheduled_time)}'
            f" - {_SHOWN.get(result.outcome, result.outcome)} ({took} ms)"
        )
        if result.message:
            summary += f": {result.message}"
        if result.error:
            summary += f": {result.error['name']}: {result.error['message']}"
        self.log.info(
            "{function}:{version} {summary}",
            function=result.function,
            version=result.version,
            summary=summary,
            cron=result.cron,
            scheduled_time=result.scheduled_time,
            outcome=result.outcome,
        )
        if result.version_id is None:
            return
        source = _Source(result.function, result.version, result.version_id)
        if self._logbook is not None:
            if result.error:
                error = result.error
                # As workerd prints an uncaught error: its stack, which starts with its name.
                text = error["stack"] or f"{error['name']}: {error['message']}"
                self._logbook.add(source, "error", text, kind=EXCEPTION)
            level = "info" if result.outcome == OK else "warn" if result.outcome == NO_HANDLER else "error"
            self._logbook.add(source, level, summary, kind=RUNTIME)
        if self._tails is not None:
            self._tails.scheduled_done(
                ScheduledRun(
                    function=result.function.lower(),
                    version_id=result.version_id,
                    cron=result.cron,
                    scheduled_time=result.scheduled_time,
                    started=result.started,
                    outcome=_TRACE_OUTCOMES.get(result.outcome, "unknown"),
                    note=result.message,
                )
            )
