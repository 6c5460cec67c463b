"""
What the functions print: each version's last lines of console output and uncaught
errors, kept in memory, and followers that hear each new line as it comes.  The lines come
already parsed from workerd's output (L{funcplane.runtime.output}), each at most the line
cap long.

The book is bounded three ways, so that no function can make funcplane hold more than the
operator chose: lines per version, bytes per version (C{--log-bytes-per-version}) and bytes
in all (C{--log-bytes-total}).  Past a bound the oldest lines go first: a version's own
when it holds too much, anyone's when the whole book does.  A byte is one byte of a
message in UTF-8.
"""

import collections

import attrs

from funcplane.runtime.output import CONSOLE, EXCEPTION, RUNTIME

__all__ = ["CONSOLE", "EXCEPTION", "RUNTIME", "LogBook", "LogEntry"]

LINES_PER_VERSION = 1000
BYTES_PER_VERSION = 1024 * 1024
BYTES_TOTAL = 64 * 1024 * 1024


@attrs.frozen
class LogEntry:
    """
    One line a function printed.

    @ivar seq: increases with every line funcplane keeps, across all versions.
    @ivar time: when funcplane read it (POSIX seconds).
    @ivar level: for console output the console method (C{log}, C{info}, C{debug},
        C{warn}, C{error}); C{error} for an uncaught error; else workerd's own level.
    @ivar kind: C{console} for what the function wrote with C{console.*}, C{exception} for
        an error it did not catch, C{runtime} for what workerd or funcplane said about it.
        A C{console.error} line is C{console} at level C{error}, not an exception.
    """

    seq: int
    time: float
    function: str
    version: str
    version_id: str
    level: str
    message: str
    kind: str = CONSOLE


def _cost(message):
    return len(message.encode("utf-8", "surrogatepass"))


class LogBook:
    """
    The last lines of every version, and the followers of some versions.

    @param clock: an C{IReactorTime}, to time lines.
    @param per_version: the most lines kept of one version.
    @param bytes_per_version: the most message bytes kept of one version.
    @param bytes_total: the most message bytes kept of all versions together.
    """

    def __init__(
        self,
        clock,
        per_version=LINES_PER_VERSION,
        bytes_per_version=BYTES_PER_VERSION,
        bytes_total=BYTES_TOTAL,
    ):
        self._clock = clock
        self._per_version = per_version
        self._bytes_per_version = bytes_per_version
        self._bytes_total = bytes_total
        # version id -> its entries and their costs, oldest first.
        self._lines = {}
        self._costs = {}
        self._bytes = {}
        self._total = 0
        self._kept = 0
        # Every kept entry in the order it came (and some no longer kept, dropped as they
        # reach the front or when they are half of it): the oldest of the whole book.
        self._order = collections.deque()
        self._followers = []
        self._seq = 0

    def add(self, spec, level, message, kind=CONSOLE):
        """
        Keep a line version C{spec} printed and tell its followers.
        """
        self._seq += 1
        entry = LogEntry(
            seq=self._seq,
            time=self._clock.seconds(),
            function=spec.function,
            version=spec.version,
            version_id=spec.id,
            level=level,
            message=message,
            kind=kind,
        )
        self._keep(spec.id, entry)
        for version_ids, callback in list(self._followers):
            if version_ids is None or spec.id in version_ids:
                callback(entry)
        return entry

    def _keep(self, version_id, entry):
        lines = self._lines.get(version_id)
        if lines is None:
            lines = self._lines[version_id] = collections.deque()
            self._costs[version_id] = collections.deque()
            self._bytes[version_id] = 0
        cost = _cost(entry.message)
        lines.append(entry)
        self._costs[version_id].append(cost)
        self._bytes[version_id] += cost
        self._total += cost
        self._kept += 1
        self._order.append(entry)
        while len(lines) > 1 and (
            len(lines) > self._per_version or self._bytes[version_id] > self._bytes_per_version
        ):
            self._drop_oldest(version_id)
        while self._total > self._bytes_total and self._kept > 1:
            oldest = self._order.popleft()
            kept = self._lines.get(oldest.version_id)
            if kept and kept[0] is oldest:
                self._drop_oldest(oldest.version_id)
        if len(self._order) > 2 * self._kept + 64:
            alive = {id(e) for kept in self._lines.values() for e in kept}
            self._order = collections.deque(e for e in self._order if id(e) in alive)

    def _drop_oldest(self, version_id):
        self._lines[version_id].popleft()
        cost = self._costs[version_id].popleft()
        self._bytes[version_id] -= cost
        self._total -= cost
        self._kept -= 1

    def held(self):
        """
        C{(lines, bytes)} kept now, of all versions.
        """
        return self._kept, self._total

    def lines(self, version_ids, limit=None):
        """
        The kept lines of C{version_ids}, oldest first; the last C{limit} of them if given.
        """
        found = [e for version_id in version_ids for e in self._lines.get(version_id, ())]
        found.sort(key=lambda e: e.seq)
        return found[-limit:] if limit else found

    def follow(self, version_ids, callback):
        """
        Call C{callback(entry)} for every new line of C{version_ids} (L{None}: of every
        version); returns a callable that stops it.
        """
        follower = (None if version_ids is None else frozenset(version_ids), callback)
        self._followers.append(follower)

        def unfollow():
            if follower in self._followers:
                self._followers.remove(follower)

        return unfollow

    def followers(self):
        return len(self._followers)

    def forget(self, version_id):
        """
        Drop the lines of a deleted version.
        """
        lines = self._lines.pop(version_id, None)
        if lines is None:
            return
        self._costs.pop(version_id)
        self._total -= self._bytes.pop(version_id)
        self._kept -= len(lines)
