"""
Which compatibility dates and flags a version may run with.

Each version runs with the compatibility date it was deployed with (the operator's
C{--compatibility-date} is only the default a deploy that names none is given) and the
flags it asked for. What the pinned workerd binary supports is asked of it when the runtime
starts: its newest date (L{newest_date}). A date outside C{[OLDEST_DATE, newest]}, or
after today, is refused before anything is spawned, with the range in the message; so is a
flag the operator's lists leave out. Whether workerd knows a flag, and whether it needs
C{--experimental} (which funcplane never passes), workerd itself says when the version
starts: the deploy then fails with its message, naming the flag, and nothing is recorded.
"""

import datetime
import os
import re
import tempfile

import attrs
from twisted.internet.utils import getProcessOutputAndValue

from funcplane.errors import InvalidRequest, StartFailed

# The first date workerd reads (it refuses "1999-12-31" as invalid); every date before
# its first flag's (2021-11-03) asks for the same behaviour.
OLDEST_DATE = "2000-01-01"
MAX_FLAGS = 64
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_FLAG = re.compile(r"[a-z][a-z0-9_]{0,99}\Z")
_NEWEST = re.compile(rb'newest date supported by this server binary is "([0-9]{4}-[0-9]{2}-[0-9]{2})"')
_VERSION = re.compile(rb"workerd ([0-9]{4}-[0-9]{2}-[0-9]{2})")
# A config whose one worker asks for a date no workerd supports: workerd answers with the
# newest date it does support, and exits.
_PROBE = """using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "probe", worker = (modules = [(name = "probe.js", esModule = "")],
                                         compatibilityDate = "2999-12-31"))],
);
"""
# What workerd prints when it refuses a version's date or flags.
_REFUSED = re.compile(
    r"No such compatibility flag|compatibility flag \S+ is experimental|Compatibility flags are"
    r" mutually contradictory|Invalid compatibility date|compatibility date in the future"
    r"|requires compatibility date"
)
EXPERIMENTAL_NOTE = (
    "funcplane never runs workerd with --experimental: remove the flag from"
    " compatibility_flags"
)


class InvalidCompatibility(InvalidRequest):
    """
    A version asks for a compatibility date or flag funcplane cannot run it with.
    """


def start_failure(message):
    """
    The error a version that did not start fails with, given what workerd printed:
    L{InvalidCompatibility} when workerd refused its date or flags (with funcplane's note
    when a flag needs C{--experimental}), else L{funcplane.errors.StartFailed}.
    """
    if _REFUSED.search(message) is None:
        return StartFailed(message)
    if "you must pass --experimental" in message:
        message += f"\n{EXPERIMENTAL_NOTE}"
    return InvalidCompatibility(message)


def is_flag_name(text):
    """
    Whether C{text} can name a compatibility flag (lower-case ASCII letters, digits and _,
    beginning with a letter).
    """
    return isinstance(text, str) and _FLAG.match(text) is not None


def is_date(text):
    """
    Whether C{text} is a real calendar date written C{YYYY-MM-DD}.
    """
    if not isinstance(text, str) or not _DATE.match(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def utc_date(seconds):
    """
    The UTC date (C{YYYY-MM-DD}) of the POSIX time C{seconds}.
    """
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).date().isoformat()


def _names(flags):
    return ", ".join(sorted(flags))


@attrs.frozen
class Compatibility:
    """
    What a version may ask for.

    @ivar newest: the newest compatibility date the workerd binary supports.
    @ivar allowed: the only flags the operator accepts (L{None}: any workerd runs without
        C{--experimental}).
    @ivar denied: flags the operator refuses.
    """

    newest: str
    allowed: frozenset | None = None
    denied: frozenset = frozenset()

    def check(self, date, flags, today):
        """
        Refuse a version's C{date} and C{flags} unless workerd can run them and the
        operator accepts them; C{today} is the current UTC date.

        @raise InvalidCompatibility: with what to ask for instead.
        """
        if not is_date(date):
            raise InvalidCompatibility(
                f"compatibility_date {str(date)[:40]!r} is not a date: write it as YYYY-MM-DD,"
                f" from {OLDEST_DATE} to {min(self.newest, today)}"
            )
        newest = min(self.newest, today)
        if not OLDEST_DATE <= date <= newest:
            why = "is in the future" if date > today else (
                f"is after {self.newest}, the newest this funcplane's workerd supports"
                if date > self.newest else "is before the oldest date workerd reads"
            )
            raise InvalidCompatibility(
                f"compatibility_date {date} {why}: choose a date from {OLDEST_DATE} to {newest}"
            )
        if not isinstance(flags, (list, tuple)) or len(flags) > MAX_FLAGS:
            raise InvalidCompatibility(
                f"compatibility_flags must be a list of at most {MAX_FLAGS} flag names"
            )
        malformed = [flag for flag in flags if not is_flag_name(flag)]
        if malformed:
            raise InvalidCompatibility(
                f"{str(malformed[0])[:100]!r} is not a compatibility flag name (lower-case"
                " letters, digits and _, such as nodejs_compat)"
            )
        if len(set(flags)) != len(flags):
            raise InvalidCompatibility("compatibility_flags names a flag twice")
        refused = {flag for flag in flags if flag in self.denied}
        if self.allowed is not None:
            refused |= {flag for flag in flags if flag not in self.allowed}
        if refused:
            accepted = (
                f"; it accepts {_names(self.allowed - self.denied) or 'none'}"
                if self.allowed is not None else ""
            )
            raise InvalidCompatibility(
                f"this funcplane's operator does not allow the compatibility flag"
                f"{'s' if len(refused) > 1 else ''} {_names(refused)}{accepted}"
            )


def read_newest(output, version_output=b""):
    """
    The newest date in what the probe printed (L{_PROBE}), else the date of C{workerd
    --version}'s output, else L{None}.
    """
    for pattern, text in ((_NEWEST, output), (_VERSION, version_output)):
        found = pattern.search(text)
        if found is not None:
            return found.group(1).decode("ascii")
    return None


async def newest_date(reactor, workerd, directory):
    """
    Ask the workerd binary at C{workerd} for the newest compatibility date it supports,
    without blocking the reactor: it is given a config (written in C{directory}) asking
    for a date no binary supports, and says which one it does.

    @raise RuntimeError: workerd said neither that nor its version.
    """
    fd, path = tempfile.mkstemp(prefix="probe-", suffix=".capnp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_PROBE)
        out, err, _ = await getProcessOutputAndValue(workerd, ["serve", path], env={}, reactor=reactor)
    finally:
        os.unlink(path)
    newest = read_newest(out + err)
    if newest is None:
        out, err, _ = await getProcessOutputAndValue(workerd, ["--version"], env={}, reactor=reactor)
        newest = read_newest(b"", out + err)
    if newest is None:
        raise RuntimeError(f"{workerd} did not say which compatibility dates it supports")
    return newest
