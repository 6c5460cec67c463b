"""
A cron trigger's run as a tail sees it: Cloudflare's scheduled trace event (C{event:
{cron, scheduledTime}}, which C{wrangler tail} prints as C{"*/5 * * * *" @ <time> - Ok}),
carrying the lines the version printed during the run, and which tail filters it passes.
The tails attribute lines to a run as they do to a request (L{funcplane.observe.tails}).
"""

import attrs

from funcplane.ids import cf_id
from funcplane.observe.trace import lines_json


@attrs.frozen
class ScheduledRun:
    """
    One run of a scheduled handler that ended.

    @ivar function: the function's name in lower case (as the tails know functions).
    @ivar started: when funcplane began the run (POSIX seconds).
    @ivar scheduled_time: the time it ran for (POSIX seconds).
    @ivar outcome: one of the trace outcomes (C{ok}, C{exception}, C{unknown}...).
    @ivar note: what funcplane says of a run the handler did not answer (no handler, the
        version did not start...), or L{None}.
    """

    function: str
    version_id: str
    cron: str
    scheduled_time: float
    started: float
    outcome: str
    note: str | None = None


def _ms(seconds):
    return int(round(seconds * 1000))


def scheduled_event_json(run, outcome, lines, truncated):
    """
    The trace event of C{run}, whose version printed C{lines} while it ran.
    """
    exceptions, logs = lines_json(lines)
    if run.note is not None:
        logs.append({"message": [f"[funcplane] {run.note}"], "level": "warn", "timestamp": _ms(run.started)})
    return {
        "outcome": outcome,
        "scriptName": run.function,
        "scriptVersion": {"id": cf_id(run.version_id)},
        "exceptions": exceptions,
        "logs": logs,
        "eventTimestamp": _ms(run.started),
        "event": {"cron": run.cron, "scheduledTime": _ms(run.scheduled_time)},
        "diagnosticsChannelEvents": [],
        "truncated": truncated,
    }


def scheduled_admitted(tail_filter, run, outcome, texts, random):
    """
    Whether C{run} passes C{tail_filter} (a L{funcplane.observe.trace.TailFilter}): a
    scheduled event has no request, so a filter on the method, a header or the client
    never passes it; the others apply as to a request.
    """
    if tail_filter.methods is not None or tail_filter.header is not None:
        return False
    if tail_filter.clients is not None:
        return False
    if tail_filter.outcomes is not None and outcome not in tail_filter.outcomes:
        return False
    if tail_filter.versions is not None and run.version_id not in tail_filter.versions:
        return False
    if tail_filter.query is not None and not any(tail_filter.query in text for text in texts):
        return False
    return tail_filter.sampling_rate >= 1 or random() < tail_filter.sampling_rate
