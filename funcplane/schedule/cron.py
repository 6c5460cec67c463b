"""
Cron expressions as Cloudflare reads them, computed by croniter.

Cloudflare's Cron Triggers take five fields in UTC, with most of Quartz's extensions:
C{L} and C{W} in the day of the month (C{L}, C{LW}, C{L-3}, C{15W}), C{L} and C{#} in the
day of the week (C{6L}, C{friL}, C{MON#2}), and weekdays numbered 1-7 from Sunday, as in
Quartz (C{0 17 * * 1} is 17:00 on Sundays).  croniter counts weekdays 0-6 (or 7) from
Sunday, as Unix cron does, and writes the last weekday of a month C{L5}; so before croniter
reads an expression, its day-of-week field is renumbered and its C{nL} items rewritten.
Nothing else is parsed here: croniter validates the fields and computes the times.

What croniter cannot compute is refused by name: C{LW} (the last weekday of the month),
C{L-n} and C{L-nW} (days before the last), and C{W} in a list or range.
"""

import re
from datetime import datetime, timezone

import attrs
from croniter import CroniterBadDateError, CroniterError, croniter

from funcplane.errors import InvalidCron

MAX_LENGTH = 256
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_CHARACTERS = (
    re.compile(r"[0-9*,/-]+\Z"),
    re.compile(r"[0-9*,/-]+\Z"),
    re.compile(r"[0-9*,/LWlw-]+\Z"),
    re.compile(r"[0-9A-Za-z*,/-]+\Z"),
    re.compile(r"[0-9A-Za-z*,/#-]+\Z"),
)
_DAYS = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_DAY = r"(?:\d+|[a-z]{3})"
_ITEM = re.compile(
    rf"(?P<star>\*)(?:/(?P<star_step>\d+))?\Z"
    rf"|(?P<last>l)\Z"
    rf"|(?P<nth_day>{_DAY})#(?P<nth>\d+)\Z"
    rf"|(?P<last_day>{_DAY})l\Z"
    rf"|(?P<start>{_DAY})(?:-(?P<end>{_DAY}))?(?:/(?P<step>\d+))?\Z"
)
_UNSUPPORTED_DAYS = re.compile(r"l-|lw", re.IGNORECASE)


def _refuse(expression, reason):
    return InvalidCron(f"invalid cron string {expression[:MAX_LENGTH]!r}: {reason}")


def _weekday(expression, text):
    """
    Cloudflare's weekday C{text} (a number 1-7 from Sunday, or a name) as croniter's (a
    number 0-6 from Sunday, or the same name).
    """
    if not text.isdigit():
        if text not in _DAYS:
            raise _refuse(expression, f"{text!r} is not a weekday (SUN, MON, ... SAT)")
        return text
    number = int(text)
    if not 1 <= number <= 7:
        raise _refuse(
            expression,
            f"weekday {number} is out of range: weekdays are 1-7 counted from Sunday"
            " (1 = SUN, 7 = SAT), or SUN-SAT",
        )
    return str(number - 1)


def _day_number(expression, text):
    day = _weekday(expression, text)
    return str(_DAYS[day]) if day in _DAYS else day


def _days_of_week(expression, field):
    """
    The day-of-week C{field} renumbered for croniter.
    """
    items = []
    for item in field.lower().split(","):
        found = _ITEM.match(item)
        if found is None:
            raise _refuse(expression, f"{item!r} is not a day-of-week item")
        part = found.groupdict()
        if part["star"]:
            items.append(item)
        elif part["last"]:
            # Alone, Quartz's L is the last day of the week: Saturday.
            items.append("6")
        elif part["nth_day"]:
            items.append(f"{_day_number(expression, part['nth_day'])}#{part['nth']}")
        elif part["last_day"]:
            items.append(f"L{_day_number(expression, part['last_day'])}")
        else:
            text = _weekday(expression, part["start"])
            if part["end"]:
                text += "-" + _weekday(expression, part["end"])
            if part["step"]:
                text += "/" + part["step"]
            items.append(text)
    return ",".join(items)


def _utc(seconds):
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@attrs.frozen
class Cron:
    """
    A valid cron expression.

    @ivar expression: as it was given (without surrounding blanks): what the handler's
        C{controller.cron} is, and what the schedule is known by.
    @ivar computed: the same expression as croniter reads it.
    """

    expression: str
    computed: str

    def next_after(self, seconds):
        """
        The first time (POSIX seconds) strictly after C{seconds} that the expression names.
        """
        return croniter(self.computed, _utc(seconds)).get_next(datetime).timestamp()


def parse_cron(text, now=0.0):
    """
    The L{Cron} of Cloudflare's cron expression C{text}.

    @param now: a time from which the expression must name a future time (POSIX seconds);
        an expression that names none (C{0 0 31 2 *}) is refused.
    @raise InvalidCron: the expression is not one Cloudflare takes, or one croniter
        cannot compute; the message says which part and why.
    """
    if not isinstance(text, str):
        raise InvalidCron("a cron expression must be a string, such as \"*/5 * * * *\"")
    expression = text.strip()
    if len(expression) > MAX_LENGTH:
        raise _refuse(expression, f"it is longer than {MAX_LENGTH} characters")
    fields = expression.split()
    if len(fields) != 5:
        count = f"{len(fields)} field" + ("" if len(fields) == 1 else "s")
        raise _refuse(
            expression,
            f"it has {count}; a cron trigger has 5 (minute, hour, day of month, month, day"
            " of week), in UTC",
        )
    for name, field, allowed in zip(_FIELDS, fields, _CHARACTERS):
        if not allowed.match(field):
            raise _refuse(expression, f"the {name} field {field!r} has a character it may not have")
    if _UNSUPPORTED_DAYS.search(fields[2]):
        raise _refuse(
            expression,
            f"funcplane cannot compute {fields[2]!r} (LW, L-n and L-nW are Cloudflare's, but"
            " its cron library has no last weekday nor days before the last); use L, or nW"
            " with a day number",
        )
    computed = " ".join(fields[:4] + [_days_of_week(expression, fields[4])])
    try:
        croniter(computed, _utc(now)).get_next(datetime)
    except CroniterBadDateError:
        raise _refuse(expression, "it names no date that exists")
    except (CroniterError, ValueError, KeyError) as e:
        raise _refuse(expression, str(e).replace(computed.lower(), expression).replace(computed, expression))
    return Cron(expression=expression, computed=computed)
