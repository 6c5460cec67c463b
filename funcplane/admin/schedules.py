"""
Cron triggers on the admin side: the expressions a request gives, checked into
L{funcplane.schedule.cron.Cron}s, and schedules and runs in the shapes both APIs answer with.
"""

from funcplane.schedule.cron import parse_cron
from funcplane.errors import InvalidCron
from funcplane.timestamps import timestamp

# The most cron triggers one function may have (Cloudflare's limit for a paid account).
MAX_SCHEDULES = 250


def parse_crons(value, now=0.0, what="'crons'"):
    """
    The L{funcplane.schedule.cron.Cron}s of C{value}, a list of expressions, without repeats.

    @raise InvalidCron: C{value} is not a list of strings, has too many, or one is not a
        valid expression (the message says which and why).
    """
    if not isinstance(value, list):
        raise InvalidCron(f"{what} must be a list of cron expressions, such as [\"*/5 * * * *\"]")
    if len(value) > MAX_SCHEDULES:
        raise InvalidCron(f"{what} has {len(value)} cron triggers; a function may have {MAX_SCHEDULES}")
    crons = {}
    for text in value:
        cron = parse_cron(text, now)
        crons.setdefault(cron.expression, cron)
    return list(crons.values())


def cloudflare_schedules(body, now=0.0):
    """
    The crons of a C{PUT .../schedules} body as wrangler sends it: C{[{"cron": "..."}, ...]}
    (or C{{"schedules": [...]}}, the shape it reads back).
    """
    if isinstance(body, dict) and "schedules" in body:
        body = body["schedules"]
    if not isinstance(body, list) or not all(isinstance(item, dict) and "cron" in item for item in body):
        raise InvalidCron('the body must be a list of cron triggers, such as [{"cron": "*/5 * * * *"}]')
    return parse_crons([item["cron"] for item in body], now, "the body")


def cloudflare_schedule_json(schedule):
    """
    A schedule as Cloudflare shows one.
    """
    return {
        "cron": schedule.cron,
        "created_on": timestamp(schedule.created_at),
        "modified_on": timestamp(schedule.modified_at),
    }


def schedule_json(schedule):
    """
    A schedule as C{/api} shows one.
    """
    return {
        "cron": schedule.cron,
        "createdAt": timestamp(schedule.created_at),
        "modifiedAt": timestamp(schedule.modified_at),
        "lastFiredFor": timestamp(schedule.last_fired) if schedule.last_fired is not None else None,
    }


def run_json(result, lines):
    """
    A run by hand (a L{funcplane.schedule.runs.RunResult} and the lines the version printed
    meanwhile) as C{POST /api/functions/NAME/scheduled} answers it.
    """
    return {
        "status": "success",
        "funcName": result.function,
        "version": result.version,
        "cron": result.cron,
        "scheduledTime": timestamp(result.scheduled_time),
        "outcome": result.outcome,
        "message": result.message,
        "exceptions": [result.error] if result.error else [],
        "durationMs": max(0, round((result.ended - result.started) * 1000)),
        "logs": [
            {"time": timestamp(e.time), "kind": e.kind, "level": e.level, "message": e.message}
            for e in lines
        ],
    }
