"""
What the functions print: each version's last lines of C{console.log} output and uncaught
errors, kept in memory, and followers that hear each new line as it comes.  The lines come
already parsed from workerd's output (L{funcplane.runtime.output}).
"""

import collections

import attrs

LINES_PER_VERSION = 1000
@attrs.frozen
class LogEntry:
    """
    One line a function printed.

    @ivar seq: increases with every line funcplane keeps, across all versions.
    @ivar time: when funcplane read it (POSIX seconds).
    @ivar level: C{log} for console output, C{error} for an uncaught error, else
        workerd's own level (C{info}, C{warning}, C{error}).
    """

    seq: int
    time: float
    function: str
    version: str
    version_id: str
    level: str
    message: str


class LogBook:
    """
    The last lines of every version, and the followers of some versions.

    @param clock: an C{IReactorTime}, to time lines.
    """

    def __init__(self, clock, per_version=LINES_PER_VERSION):
        self._clock = clock
        self._per_version = per_version
        self._lines = {}
        self._followers = []
        self._seq = 0

    def add(self, spec, level, message):
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
        )
        lines = self._lines.get(spec.id)
        if lines is None:
            lines = self._lines[spec.id] = collections.deque(maxlen=self._per_version)
        lines.append(entry)
        for version_ids, callback in list(self._followers):
            if version_ids is None or spec.id in version_ids:
                callback(entry)
        return entry

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
        self._lines.pop(version_id, None)
