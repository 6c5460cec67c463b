"""
Reading workerd's structured output.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from funcplane.runtime.output import parse_workerd_line


def line(message, level="info"):
    return json.dumps({"timestamp": "1", "level": level, "source": "x.c++:1", "message": message})


class ParseTests(SynchronousTestCase):
    def test_console(self):
        """
        console.log arguments read as the function wrote them: strings bare, the rest as
        JSON.
        """
        self.assertEqual(
            parse_workerd_line(line('console.log(); message() = ["a \\"quoted\\" word", 1, [2], null]')),
            ("log", 'a "quoted" word 1 [2] null'),
        )
        self.assertEqual(
            parse_workerd_line(line("console.log(); message() = [not json]")), ("log", "[not json]")
        )

    def test_uncaught(self):
        """
        An uncaught error is kept at level error as its stack, without workerd's prefix.
        """
        self.assertEqual(
            parse_workerd_line(line("uncaught exception; source = Uncaught; stack = Error: kaboom\n    at main:1:142")),
            ("error", "Error: kaboom\n    at main:1:142"),
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
        An error while the script loads is kept without workerd's 'service main:' prefix.
        """
        self.assertEqual(
            parse_workerd_line(line("service main: Uncaught SyntaxError: Unexpected end of input\n  at main:2", "error")),
            ("error", "Uncaught SyntaxError: Unexpected end of input\n  at main:2"),
        )

    def test_not_json(self):
        """
        A line that is not workerd's JSON is kept as it is, at level info; a blank one is dropped.
        """
        self.assertEqual(parse_workerd_line("plain words"), ("info", "plain words"))
        self.assertEqual(parse_workerd_line("{broken"), ("info", "{broken"))
        self.assertIsNone(parse_workerd_line("  "))
