"""
A workerd child's pipes, as funcplane reads them: its stdout and stderr become log lines
(kept in the log book and logged), its control pipe says when it is ready.
"""

import collections
import json

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from funcplane.runtime.compatibility import start_failure
from funcplane.runtime.config import SOCKET_NAME
from funcplane.runtime.lines import DEFAULT_MAX_LINE_BYTES, LineSplitter
from funcplane.runtime.output import RUNTIME, parse_workerd_line

CONTROL_FD = 5
STDERR_TAIL_LINES = 20


class _Observers:
    """
    A result that any number of callers can wait for, each with a Deferred of its own.
    """

    def __init__(self):
        self._waiting = []
        self._result = None
        self._done = False

    def when(self):
        if self._done:
            return succeed(self._result)
        d = Deferred()
        self._waiting.append(d)
        return d

    @property
    def done(self):
        return self._done

    def fire(self, result):
        if self._done:
            return
        self._done, self._result = True, result
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(result)


class WorkerdProtocol(ProcessProtocol):
    """
    Reads a workerd child's stdout and stderr into log events tagged with the function and
    version, and its control pipe for the C{listen} event that means it is ready.  A line
    longer than C{max_line_bytes} is cut there, and says how much of it was dropped.
    """

    log = Logger()

    def __init__(self, spec, logbook=None, max_line_bytes=DEFAULT_MAX_LINE_BYTES):
        self.spec = spec
        self.ready = _Observers()
        self.ended = _Observers()
        self.stderr_tail = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._logbook = logbook
        self._lines = LineSplitter(self._line, max_line_bytes)

    def childDataReceived(self, fd, data):
        self._lines.feed(fd, data)

    def note(self, message):
        """
        Record C{message} from funcplane about this child, as if the child had written it
        to stderr.
        """
        self.stderr_tail.append(message)
        if self._logbook is not None:
            self._logbook.add(self.spec, "error", message, kind=RUNTIME)

    def _line(self, fd, raw, dropped):
        line = raw.decode("utf-8", "replace")
        if fd == CONTROL_FD:
            self._control(line)
            return
        if dropped:
            # The cut may have split a character.
            line = line.rstrip("\ufffd")
        parsed = parse_workerd_line(line, dropped)
        if parsed is None:
            return
        kind, level, message = parsed
        stream = "stdout" if fd == 1 else "stderr"
        if stream == "stderr":
            self.stderr_tail.append(message)
        if self._logbook is not None:
            self._logbook.add(self.spec, level, message, kind=kind)
        self.log.info(
            "{function}:{version} {severity}: {text}",
            function=self.spec.function,
            version=self.spec.version,
            stream=stream,
            kind=kind,
            severity=level,
            text=message,
            truncated=dropped,
        )

    def _control(self, line):
        try:
            event = json.loads(line)
        except ValueError:
            return
        if event.get("event") == "listen" and event.get("socket") == SOCKET_NAME:
            self.ready.fire(True)

    def error_text(self):
        """
        What the child printed on stderr: the message to show a user whose script failed
        to start.
        """
        return "\n".join(self.stderr_tail).strip()

    def processEnded(self, reason):
        self._lines.flush()
        if not self.ready.done:
            message = self.error_text() or f"workerd exited before it was ready: {reason.value}"
            self.ready.fire(start_failure(message))
        self.ended.fire(reason.value)
