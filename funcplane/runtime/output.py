"""
What a workerd child prints, made readable.

workerd runs with structured logging: every line it prints is a JSON object with a level
and a message.  L{parse_workerd_line} turns one into what a user wants to read, or drops it
when it only repeats another line with workerd's internals.
"""

import json

_CONSOLE = "console.log(); message() = "
_UNCAUGHT = "uncaught exception; source = "
_REPEATS = ("uncaught exception; exception = ", "Uncaught exception: workerd/")
_SERVICE = "service main: "


def _render(value):
    return value if isinstance(value, str) else json.dumps(value)


def parse_workerd_line(line):
    """
    C{(level, message)} for one line workerd printed, or L{None} for a line not worth
    keeping.  Lines that are not JSON are kept as they are, at level C{info}.
    """
    if not line.startswith("{"):
        return ("info", line.removeprefix(_SERVICE)) if line.strip() else None
    try:
        event = json.loads(line)
        message = str(event["message"])
        level = str(event.get("level", "info"))
    except (ValueError, KeyError, TypeError):
        return ("info", line)
    if message.startswith(_CONSOLE):
        arguments = message[len(_CONSOLE):]
        try:
            values = json.loads(arguments)
            text = " ".join(_render(v) for v in values) if isinstance(values, list) else arguments
        except ValueError:
            text = arguments
        return ("log", text)
    if message.startswith(_UNCAUGHT):
        return ("error", message.partition("; stack = ")[2] or message)
    if message.startswith(_REPEATS):
        return None
    if message.startswith(_SERVICE):
        message = message[len(_SERVICE):]
    return (level, message)
