"""
Which format a script is written in, read from its syntax: an ES module has an C{import}
or C{export} statement at its top level; a service-worker script has none.

A line-start regex is fooled both ways (a one-line module, a module that starts with a
comment, an C{export} inside a string or a comment of a service worker).  The pure-Python
JavaScript parsers on PyPI are unmaintained (esprima 2018, pyjsparser 2019, ES5-era
syntax); tree-sitter-javascript is maintained, but a native parser of the whole language
is more than one question about the top level needs.  So this is a small scanner: it skips
strings, comments, template literals (with their C{${...}} expressions) and regular
expression literals, counts brackets, and looks at the words C{import} and C{export}
where the bracket depth is zero.
C{import(...)} (a dynamic import) is allowed in scripts and does not count; a property
named C{import} or C{export} (C{x.export}) does not either.

It is linear, and works in runs (the code between two characters that need its state is
skipped by one regular-expression match, with strings and comments in it); code without
the word C{import} or C{export} is not scanned at all.  Still, a 10 MiB bundle takes about
a second of CPU, so L{detect_format_later} scans in slices and lets the reactor serve in
between (a thread would not help: the scan holds the GIL).
"""

import re

from twisted.internet.defer import Deferred, succeed

from funcplane.model import MODULE, SERVICE_WORKER

# One slice of L{detect_format_later} scans this many runs and constructs, or this many
# characters, whichever comes first: a few milliseconds.
SLICE = 1000
SLICE_CHARS = 64 * 1024
# A run stops at the first newline past this many characters, so that a slice stays short.
RUN_CHARS = 64 * 1024

# Code, strings and comments, up to the next character that needs the scanner's state: a
# slash that does not start a comment (a regular expression or a division), a backtick,
# a quote that does not close (and, while a template expression is open, a }).
_LITERAL = (
    r"""(?>"(?:[^"\\\n\r]|\\.)*+")|(?>'(?:[^'\\\n\r]|\\.)*+')"""
    r"""|//[^\n\r\u2028\u2029]*+|/\*.*?\*/"""
)
_STRING = {
    '"': re.compile(r'"(?:[^"\\\n\r]|\\.)*+"', re.DOTALL),
    "'": re.compile(r"'(?:[^'\\\n\r]|\\.)*+'", re.DOTALL),
}
_SKIP = re.compile(r"(?:[^'\"`/]++|" + _LITERAL + r")++", re.DOTALL)
_SKIP_IN_TEMPLATE = re.compile(r"(?:[^'\"`/}]++|" + _LITERAL + r")++", re.DOTALL)
# Strings and comments, which are made spaces, so that brackets and words are counted
# in code only.
_LITERALS = re.compile(_LITERAL, re.DOTALL)
# The literal text of a template, up to its end or its next ${.
_TEMPLATE_TEXT = re.compile(r"(?:[^`\\$]|\\.|\$(?!\{))*+", re.DOTALL)
_LINE_COMMENT = re.compile(r"//[^\n\r\u2028\u2029]*+")
_BLOCK_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.DOTALL)
_REGEX = re.compile(r"/(?:[^/\\\[\n\r]|\\.|\[(?:[^\]\\\n\r]|\\.)*+\])++/[A-Za-z]*+")
_WORD = re.compile(r"(?<![\w$.])(import|export)(?![\w$])")
_CALL = re.compile(r"\s*\(")
_LAST_WORD = re.compile(r"[\w$]+\Z")
# After these words a / starts a regular expression, not a division.
_REGEX_AFTER = frozenset(
    "return typeof instanceof in of new delete void throw case do else yield await".split()
)


def detect_format(code):
    """
    L{MODULE} if C{code} has a top-level C{import} or C{export} statement, else
    L{SERVICE_WORKER}.
    """
    steps = _steps(code)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def detect_format_later(code, clock, steps_per_slice=SLICE):
    """
    L{detect_format}, a slice at a time on C{clock} (an C{IReactorTime}): a Deferred
    that fires with the format; cancelling it stops the scan.  A script that one slice
    covers is answered at once.
    """
    steps = _steps(code, steps_per_slice)
    pending = []

    def cancel(_):
        while pending:
            pending.pop().cancel()

    result = Deferred(cancel)

    def step():
        pending.clear()
        try:
            next(steps)
        except StopIteration as done:
            result.callback(done.value)
        except Exception:
            result.errback()
        else:
            pending.append(clock.callLater(0, step))

    try:
        next(steps)
    except StopIteration as done:
        return succeed(done.value)
    pending.append(clock.callLater(0, step))
    return result


def _steps(code, steps_per_slice=SLICE):
    """
    A generator that scans C{code}, yielding after each slice, and returns its format.
    """
    if "import" not in code and "export" not in code:
        return SERVICE_WORKER
    found = yield from _Scanner(code).scan(steps_per_slice)
    return MODULE if found else SERVICE_WORKER


def _depth_change(text):
    return (
        text.count("{") + text.count("(") + text.count("[")
        - text.count("}") - text.count(")") - text.count("]")
    )


class _Scanner:
    def __init__(self, code):
        self._code = code
        self._depth = 0
        # For each open template expression, the bracket depth at its ${.
        self._templates = []
        # The last code before the scanner's position (strings emptied, comments made
        # spaces), for telling a regular expression from a division.
        self._last = ""

    def scan(self, steps_per_slice):
        """
        Whether the code has module syntax; yields after C{steps_per_slice} steps or
        L{SLICE_CHARS} characters.
        """
        code, end = self._code, len(self._code)
        position = _line_end(code, 0) if code.startswith("#!") else 0
        steps, since, stop = 0, position, -1
        while position < end:
            steps += 1
            if steps >= steps_per_slice or position - since >= SLICE_CHARS:
                yield
                steps, since = 0, position
            # A run may stop at a newline: no line comment or string goes on past one
            # (a string continued with a backslash is read whole by _special).
            if stop < position + RUN_CHARS:
                stop = code.find("\n", position + RUN_CHARS)
                stop = end if stop < 0 else stop
            run = (_SKIP_IN_TEMPLATE if self._templates else _SKIP).match(code, position, stop)
            if run is None:
                position = self._special(code, position)
                continue
            raw = run.group()
            text = _LITERALS.sub(" ", raw)
            if "port" in text and self._module_word(text):
                return True
            self._depth = max(0, self._depth + _depth_change(text))
            tail = raw[-64:].rstrip()
            if tail[-1:] in ("'", '"'):
                self._last = '""'
            elif not text.isspace():
                self._last = text[-64:]
            position = run.end()
        return False

    def _module_word(self, text):
        """
        Whether C{text}, code with its strings emptied, holds an C{import} or C{export}
        statement at the top level.
        """
        if self._templates:
            return False
        depth, counted = self._depth, 0
        for match in _WORD.finditer(text):
            depth += _depth_change(text[counted : match.start()])
            counted = match.start()
            if depth != 0:
                continue
            # import( is a dynamic import, which scripts may use; import.meta and every
            # import statement are module syntax.
            if match.group(1) == "export" or not _CALL.match(text, match.end()):
                return True
        return False

    def _special(self, code, position):
        """
        Consume the construct that starts at C{position}; return where it ends.
        """
        char = code[position]
        if char in "'\"":
            # A string continued past a run's end, or one that does not close (it ends
            # with its line).
            self._last = '""'
            match = _STRING[char].match(code, position)
            return match.end() if match else _line_end(code, position)
        if char == "`":
            return self._template_text(code, position + 1)
        if char == "/":
            return self._slash(code, position)
        # A } that closes a template expression, or one that closes a bracket.
        if self._templates[-1] == self._depth:
            self._templates.pop()
            return self._template_text(code, position + 1)
        self._depth = max(0, self._depth - 1)
        self._last = "}"
        return position + 1

    def _template_text(self, code, position):
        """
        Consume template text from C{position} up to its closing backtick or its next
        C{${}; return where scanning goes on.
        """
        end = _TEMPLATE_TEXT.match(code, position).end()
        if code.startswith("${", end):
            self._templates.append(self._depth)
            self._last = "{"
            return end + 2
        self._last = '""'
        return end + 1

    def _slash(self, code, position):
        following = code[position + 1 : position + 2]
        if following == "/":
            return _LINE_COMMENT.match(code, position).end()
        if following == "*":
            return _BLOCK_COMMENT.match(code, position).end()
        if self._regex_may_start():
            match = _REGEX.match(code, position)
            if match is not None:
                self._last = '""'
                return match.end()
        self._last = "/"
        return position + 1

    def _regex_may_start(self):
        """
        Whether a / here starts a regular expression: not after a value (a name, a
        number, a literal, a closing bracket), except after a keyword such as return.
        """
        last = self._last.rstrip()
        if not last:
            return True
        char = last[-1]
        if char in ")]}\"'":
            return False
        if char.isalnum() or char in "_$":
            word = _LAST_WORD.search(last)
            return word is not None and word.group() in _REGEX_AFTER
        return True


def _line_end(code, position):
    end = code.find("\n", position)
    return len(code) if end < 0 else end
