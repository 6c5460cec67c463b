"""
Cron triggers: every function's schedules, each fired at the times its expression names
(in UTC) on the version serving the function (its latest: the largest share of its
deployment), through L{funcplane.schedule.runs.ScheduledRunner}.

The rules, as on Cloudflare:

  - Each schedule has one timer, set for its next time as computed from now when
    funcplane starts or the schedule is put: what was missed while funcplane was down is
    not run late.
  - The timer is set again for the time after before the run begins, so a slow run
    neither delays nor skips the next one, and runs of one schedule may overlap (each is
    bounded by the delivery's timeout); a failed run is logged and changes nothing.
  - Before a run, its time is claimed in the database (L{funcplane.interfaces.ISchedules}):
    a time already claimed (by the process before a restart) does not run again, and a
    schedule or function that is gone stops its timer there, so a deleted function stops
    firing even though the platform does not tell the scheduler.
  - Putting a function's schedules takes effect at once: timers of the schedules that went
    are cancelled, those of new ones set.
"""

import attrs
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.task import deferLater
from twisted.logger import Logger

from funcplane.schedule.cron import parse_cron
from funcplane.errors import InvalidCron, InvalidRequest
from funcplane.store.schedules import CLAIMED, GONE

# Lines a version prints reach funcplane a moment after; a run by hand waits this long
# before it collects them (as the tails do).
SETTLE_SECONDS = 0.1
LINES_PER_RUN = 100


@attrs.define(eq=False)
class _Timer:
    function: str
    cron: object
    tick: float = 0.0
    call: object = None


class Scheduler(Service):
    """
    The cron triggers' timers, and the use cases of schedules (put, list, run by hand).

    @param clock: an C{IReactorTime}.
    @param schedules: the L{funcplane.interfaces.ISchedules}.
    @param runner: a L{funcplane.schedule.runs.ScheduledRunner}.
    @param logbook: the L{funcplane.observe.logbook.LogBook}, whose lines a run by hand
        answers with, or L{None}.
    """

    log = Logger()

    def __init__(self, clock, schedules, runner, logbook=None):
        self._clock = clock
        self._schedules = schedules
        self._runner = runner
        self._logbook = logbook
        self._timers = {}
        self._runs = set()
        self._loading = None

    # Life.

    def startService(self):
        super().startService()
        self._loading = Deferred.fromCoroutine(self._load())
        return self._loading

    async def _load(self):
        found = await self._schedules.every()
        for function, schedule in found:
            self._set(function, schedule.cron)
        if found:
            self.log.info("{count} cron triggers scheduled", count=len(self._timers))

    def stopService(self):
        """
        Cancel every timer and every run in flight; fires once the runs have ended.
        """
        super().stopService()
        if self._loading is not None and not self._loading.called:
            self._loading.cancel()
        for timer in self._timers.values():
            if timer.call is not None and timer.call.active():
                timer.call.cancel()
        self._timers.clear()
        runs = list(self._runs)
        for run in runs:
            run.cancel()
        return DeferredList(runs, consumeErrors=True)

    def scheduled(self):
        """
        C{{(function key, cron): next time}} of every timer set.
        """
        return {key: timer.tick for key, timer in self._timers.items()}

    # Timers.

    def _set(self, function, expression):
        """
        Set the timer of C{function}'s schedule C{expression}, unless it is set.
        """
        key = (function.lower(), expression)
        if key in self._timers:
            return
        try:
            cron = parse_cron(expression, self._clock.seconds())
        except InvalidCron as e:
            # Stored by an earlier funcplane whose rules were looser: it cannot run.
            self.log.warn("not scheduling {function}: {error}", function=function, error=str(e))
            return
        timer = self._timers[key] = _Timer(function=function, cron=cron)
        self._arm(key, timer, self._clock.seconds())

    def _arm(self, key, timer, after):
        now = self._clock.seconds()
        timer.tick = timer.cron.next_after(max(now, after))
        timer.call = self._clock.callLater(timer.tick - now, self._fire, key, timer)

    def _drop(self, key, timer):
        if self._timers.get(key) is timer:
            del self._timers[key]
        if timer.call is not None and timer.call.active():
            timer.call.cancel()

    def _fire(self, key, timer):
        tick = timer.tick
        # The next time is set first: whatever this run does, it is on time.
        self._arm(key, timer, tick)
        run = Deferred.fromCoroutine(self._tick(key, timer, tick))
        self._runs.add(run)
        run.addErrback(self._failed, timer, tick)
        run.addBoth(lambda _: self._runs.discard(run))

    async def _tick(self, key, timer, tick):
        cron = timer.cron.expression
        state, target = await self._schedules.claim(timer.function, cron, tick)
        if state == GONE:
            self._drop(key, timer)
            self.log.info(
                "{function} has no cron trigger {cron} any more; it stops",
                function=timer.function,
                cron=cron,
            )
            return
        if state != CLAIMED:
            self.log.info(
                "{function} {cron} already ran for {tick}", function=timer.function, cron=cron, tick=tick
            )
            return
        await self._runner.run(target, cron, tick)

    def _failed(self, failure, timer, tick):
        if failure.check(CancelledError):
            return None
        self.log.failure(
            "the cron trigger {cron} of {function} failed for {tick}",
            failure,
            function=timer.function,
            cron=timer.cron.expression,
            tick=tick,
        )
        return None

    # Use cases.

    async def put(self, function, crons):
        """
        Make C{crons} (L{funcplane.schedule.cron.Cron}s) the schedules of C{function}, at once;
        return C{(stored name, schedules)}.
        """
        expressions = list(dict.fromkeys(cron.expression for cron in crons))
        name, stored = await self._schedules.replace(function, expressions, self._clock.seconds())
        if self.running:
            key = name.lower()
            for (owner, expression), timer in list(self._timers.items()):
                if owner == key and expression not in expressions:
                    self._drop((owner, expression), timer)
            for expression in expressions:
                self._set(name, expression)
        self.log.info(
            "{function} has {count} cron triggers: {crons}",
            function=name,
            count=len(expressions),
            crons=", ".join(expressions) or "none",
        )
        return name, stored

    def schedules(self, function):
        """
        C{(stored name, schedules)} of C{function}.
        """
        return self._schedules.schedules(function)

    def every(self):
        """
        C{(function name, schedule)} of every function's schedules.
        """
        return self._schedules.every()

    async def run_now(self, function, expression=None):
        """
        Run C{function}'s scheduled handler once, now, for C{expression} (by default its
        first schedule; any valid expression may be given, as C{wrangler dev}'s
        C{/__scheduled} allows).  Return C{(result, lines)}: the
        L{funcplane.schedule.runs.RunResult} and the lines the version printed meanwhile.
        """
        name, stored = await self._schedules.schedules(function)
        if expression is None:
            if not stored:
                raise InvalidRequest(
                    f"{name} has no cron triggers; give the cron expression to run it for"
                    " with ?cron="
                )
            expression = stored[0].cron
        else:
            expression = parse_cron(expression, self._clock.seconds()).expression
        target = await self._schedules.target(function)
        result = await self._runner.run(target, expression, self._clock.seconds())
        lines = []
        if self._logbook is not None and result.version_id is not None:
            await deferLater(self._clock, SETTLE_SECONDS, lambda: None)
            lines = [
                entry
                for entry in self._logbook.lines([result.version_id])
                if entry.time >= result.started
            ][-LINES_PER_RUN:]
        return result, lines
