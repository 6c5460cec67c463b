"""
Cutting what a child writes on its pipes into lines, at a cost linear in what it writes.

A function decides how long its lines are: one C{console.log} of 20 MB is one line.  The
reads of a line that has not ended are kept as they came, a list of pieces per pipe, and
joined once, when its newline arrives; past the cap (C{--max-log-line-bytes}) the rest of
the line is only counted, so a line never holds more than the cap in funcplane.
"""

DEFAULT_MAX_LINE_BYTES = 16 * 1024


class LineSplitter:
    """
    Splits the bytes read from each of a child's pipes into lines.

    @param deliver: called as C{deliver(fd, line, dropped)} for each line that ended (or,
        at L{flush}, was left unfinished): C{line} is its first C{max_bytes} bytes without
        the newline, C{dropped} how many bytes after them were thrown away.
    @param max_bytes: the most bytes of one line that are kept.
    """

    def __init__(self, deliver, max_bytes=DEFAULT_MAX_LINE_BYTES):
        self._deliver = deliver
        self._max = max_bytes
        # fd -> [pieces, bytes held, bytes dropped], for a line that has not ended.
        self._open = {}

    def feed(self, fd, data):
        """
        Take one read C{data} from pipe C{fd}; deliver the lines it ends.
        """
        start = 0
        limit = self._max
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if start == 0 and fd in self._open:
                # The end of a line begun in earlier reads.
                self._keep(fd, data, start, end)
                self._end(fd)
            elif end - start > limit:
                self._deliver(fd, data[start : start + limit], end - start - limit)
            else:
                self._deliver(fd, data[start:end], 0)
            start = end + 1
        if start < len(data):
            self._keep(fd, data, start, len(data))

    def _keep(self, fd, data, start, end):
        line = self._open.get(fd)
        if line is None:
            line = self._open[fd] = [[], 0, 0]
        take = min(self._max - line[1], end - start)
        if take > 0:
            whole = start == 0 and take == len(data)
            line[0].append(data if whole else data[start : start + take])
            line[1] += take
        line[2] += end - start - max(take, 0)

    def _end(self, fd):
        pieces, _, dropped = self._open.pop(fd, ((), 0, 0))
        joined = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self._deliver(fd, joined, dropped)

    def held(self, fd):
        """
        How many bytes of an unfinished line on C{fd} are kept, and the pieces they are in.
        """
        line = self._open.get(fd)
        return (0, []) if line is None else (line[1], list(line[0]))

    def flush(self):
        """
        Deliver every unfinished line (the child has exited).
        """
        for fd in list(self._open):
            self._end(fd)
