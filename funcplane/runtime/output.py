"""
What a workerd child prints, made readable.

workerd runs with structured logging: every line it prints is a JSON object with a level
and a message.  Three kinds of line come out of it, and they stay apart because Cloudflare
keeps them apart (C{wrangler tail} lists console output under C{logs} and uncaught errors
under C{exceptions}):

  - L{CONSOLE}: what the function wrote with C{console.log}, C{.info}, C{.debug},
    C{.warn} or C{.error}.  workerd prints these as C{{"timestamp", "level", "message"}}
    with the console method as the level (C{log}, C{info}, C{debug}, C{warn}, C{error})
    and no C{source}.
  - L{EXCEPTION}: an error the function did not catch.  workerd prints it from its own
    source (C{"source": "workerd/io/worker.c++:..."}) at level C{info}, as
    C{uncaught exception; source = Uncaught; stack = ...}.
  - L{RUNTIME}: anything else workerd says (start-up errors, warnings of its own), and
    what funcplane notes about a child.

L{parse_workerd_line} turns one line into C{(kind, level, message)}, or drops it when it
only repeats another line with workerd's internals.
"""

import json
import re

CONSOLE = "console"
EXCEPTION = "exception"
RUNTIME = "runtime"

_CONSOLE = "console.log(); message() = "
_UNCAUGHT = "uncaught exception; source = "
_REPEATS = ("uncaught exception; exception = ", "Uncaught exception: workerd/")
_SERVICE = "service main: "

# The start of one of workerd's JSON lines, up to the opening quote of its message: what
# is left of a line cut short can still be read.
_OPENING = re.compile(
    r'\{\s*(?:"(?:timestamp|level|source)"\s*:\s*(?:"[^"\\]*"|-?\d+)\s*,\s*)*"message"\s*:\s*"'
)
_FIELD = re.compile(r'"(level|source)"\s*:\s*"([^"\\]*)"')
_STRING_BODY = re.compile(r'(?:[^"\\]|\\.)*')


def _render(value):
    return value if isinstance(value, str) else json.dumps(value)


def truncation_note(dropped):
    """
    What is appended to a line that was cut at funcplane's line cap.
    """
    return f" [truncated: {dropped} more bytes dropped]"


def _salvage(line):
    """
    The event of a JSON line that was cut short (its message ends where the line was
    cut), or L{None} when even its beginning is not workerd's.
    """
    opening = _OPENING.match(line)
    if opening is None:
        return None
    event = dict(_FIELD.findall(opening.group(0)))
    body = _STRING_BODY.match(line, opening.end()).group(0)
    # The cut may have split an escape (a \u00e9): drop what cannot be read.
    for end in range(len(body), max(len(body) - 6, 0) - 1, -1):
        try:
            event["message"] = json.loads(f'"{body[:end]}"')
            return event
        except ValueError:
            continue
    return None


def _classify(event):
    message = str(event["message"])
    level = str(event.get("level", "info"))
    if "source" not in event:
        # Only console output comes without the place in workerd it came from.
        return (CONSOLE, level, message)
    if message.startswith(_CONSOLE):
        # Older workerd releases print console.log through their own logger.
        arguments = message[len(_CONSOLE):]
        try:
            values = json.loads(arguments)
            text = " ".join(_render(v) for v in values) if isinstance(values, list) else arguments
        except ValueError:
            text = arguments
        return (CONSOLE, "log", text)
    if message.startswith(_UNCAUGHT):
        _, stack, rest = message.partition("; stack = ")
        if not stack:
            _, _, rest = message.partition("; exception = ")
        return (EXCEPTION, "error", rest or message)
    if message.startswith(_REPEATS):
        return None
    return (RUNTIME, level, message.removeprefix(_SERVICE))


def parse_workerd_line(line, dropped=0):
    """
    C{(kind, level, message)} for one line workerd printed, or L{None} for a line not worth
    keeping.  Lines that are not JSON are kept as they are, of kind L{RUNTIME} at level
    C{info}.

    @param dropped: how many bytes of the line funcplane dropped at its line cap; the
        message then says so.
    """
    if not line.startswith("{"):
        if not line.strip():
            return None
        parsed = (RUNTIME, "info", line.removeprefix(_SERVICE))
    else:
        try:
            event = json.loads(line) if not dropped else _salvage(line)
            parsed = _classify(event) if event is not None else (RUNTIME, "info", line)
        except (ValueError, KeyError, TypeError, AttributeError):
            parsed = (RUNTIME, "info", line)
    if parsed is None or not dropped:
        return parsed
    kind, level, message = parsed
    return (kind, level, message + truncation_note(dropped))
