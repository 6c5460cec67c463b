"""
Reading workerd's structured output.  The lines are as workerd 1.20261117.1 prints them
with C{--verbose} and structured logging (captured from a real child).
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from funcplane.runtime.output import CONSOLE, EXCEPTION, RUNTIME, parse_workerd_line, truncation_note


def line(message, level="info", source="workerd/io/worker.c++:3042"):
    """
    One of workerd's own lines: it says where in workerd it came from.
    """
    return json.dumps({"timestamp": "1796122075910", "level": level, "source": source, "message": message,
                       "context_depth": 0}, separators=(",", ":"))


def console(message, level):
    """
    A line of console output, as workerd prints it: no source, the method as its level.
    """
    return json.dumps({"timestamp": 1796122075908, "level": level, "message": message}, separators=(",", ":"))


class ParseTests(SynchronousTestCase):
    def test_console_methods(self):
        """
        Each console method's line is console output at the method's level, its text as
        the function wrote it; console.error is console output at level error, not an
        uncaught error.
        """
        for level in ["log", "info", "debug", "warn", "error"]:
            self.assertEqual(parse_workerd_line(console(f"a {level} {{ k: 1 }}", level)),
                             (CONSOLE, level, f"a {level} {{ k: 1 }}"))
        self.assertEqual(
            parse_workerd_line(console("an error Error: inner\n    at Object.fetch (worker.js:8:29)", "error")),
            (CONSOLE, "error", "an error Error: inner\n    at Object.fetch (worker.js:8:29)"),
        )

    def test_console_through_workerd_logger(self):
        """
        console.log printed through workerd's own logger (older releases) is console output
        too: strings bare, the rest as JSON.
        """
        self.assertEqual(
            parse_workerd_line(line('console.log(); message() = ["a \\"quoted\\" word", 1, [2], null]')),
            (CONSOLE, "log", 'a "quoted" word 1 [2] null'),
        )
        self.assertEqual(
            parse_workerd_line(line("console.log(); message() = [not json]")), (CONSOLE, "log", "[not json]")
        )

    def test_uncaught(self):
        """
        An uncaught error is an exception, at level error, as its stack without workerd's
        prefix; one thrown without a stack (a string) as what was thrown.
        """
        self.assertEqual(
            parse_workerd_line(line("uncaught exception; source = Uncaught; stack = Error: kaboom\n    at main:1:142")),
            (EXCEPTION, "error", "Error: kaboom\n    at main:1:142"),
        )
        self.assertEqual(
            parse_workerd_line(line("uncaught exception; source = Uncaught; exception = just a string")),
            (EXCEPTION, "error", "just a string"),
        )
        self.assertEqual(
            parse_workerd_line(line("uncaught exception; source = Uncaught (in promise); stack = TypeError: later")),
            (EXCEPTION, "error", "TypeError: later"),
        )

    def test_repeats_dropped(self):
        """
        The lines in which workerd repeats an uncaught error with its internals are dropped.
        """
        for message in [
            "uncaught exception; exception = workerd/jsg/value.h:1456: failed: jsg.Error: kaboom\nstack: ...",
            "Uncaught exception: workerd/jsg/value.h:1456: failed: remote.jsg.Error: kaboom",
        ]:
            self.assertIsNone(parse_workerd_line(line(message, "error")))

    def test_startup_error(self):
        """
        An error while the script loads is the runtime's, kept without workerd's 'service
        main:' prefix.
        """
        self.assertEqual(
            parse_workerd_line(line("service main: Uncaught SyntaxError: Unexpected end of input\n  at main:2", "error")),
            (RUNTIME, "error", "Uncaught SyntaxError: Unexpected end of input\n  at main:2"),
        )

    def test_not_json(self):
        """
        A line that is not workerd's JSON is kept as it is, the runtime's at level info; a
        blank one is dropped.
        """
        self.assertEqual(parse_workerd_line("plain words"), (RUNTIME, "info", "plain words"))
        self.assertEqual(parse_workerd_line("{broken"), (RUNTIME, "info", "{broken"))
        self.assertIsNone(parse_workerd_line("  "))

    def test_truncated_console_line(self):
        """
        A JSON line cut at the line cap is still read as what it was: its message is what
        arrived of it (a split escape left out), and says how many bytes were dropped.
        """
        whole = console("x" * 100 + "\u00e9" + "y" * 100, "warn")
        cut = whole[:whole.index("\\u00e9") + 3]
        self.assertEqual(parse_workerd_line(cut, dropped=5000), (CONSOLE, "warn", "x" * 100 + truncation_note(5000)))
        self.assertEqual(truncation_note(5000), " [truncated: 5000 more bytes dropped]")
        uncaught = line("uncaught exception; source = Uncaught; stack = Error: " + "z" * 50)
        self.assertEqual(
            parse_workerd_line(uncaught[:uncaught.index("Error: ") + 17], dropped=7),
            (EXCEPTION, "error", "Error: " + "z" * 10 + truncation_note(7)),
        )

    def test_truncated_other_line(self):
        """
        A cut line that is not workerd's JSON is kept as it arrived, with the note.
        """
        self.assertEqual(parse_workerd_line("plain " * 3, dropped=9),
                         (RUNTIME, "info", "plain " * 3 + truncation_note(9)))
        self.assertEqual(parse_workerd_line('{"no": "message', dropped=9),
                         (RUNTIME, "info", '{"no": "message' + truncation_note(9)))
