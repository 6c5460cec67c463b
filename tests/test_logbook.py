"""
Reading workerd's output, and keeping it.
"""

import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane.logbook import LogBook, parse_workerd_line
from tests.fakes import spec


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
        self.assertEqual(
            parse_workerd_line(line("uncaught exception; source = Uncaught; stack = Error: kaboom\n    at main:1:142")),
            ("error", "Error: kaboom\n    at main:1:142"),
        )

    def test_repeats_dropped(self):
        for message in [
            "uncaught exception; exception = workerd/jsg/value.h:1456: failed: jsg.Error: kaboom\nstack: ...",
            "Uncaught exception: workerd/jsg/value.h:1456: failed: remote.jsg.Error: kaboom",
        ]:
            self.assertIsNone(parse_workerd_line(line(message, "error")))

    def test_startup_error(self):
        self.assertEqual(
            parse_workerd_line(line("service main: Uncaught SyntaxError: Unexpected end of input\n  at main:2", "error")),
            ("error", "Uncaught SyntaxError: Unexpected end of input\n  at main:2"),
        )

    def test_not_json(self):
        self.assertEqual(parse_workerd_line("plain words"), ("info", "plain words"))
        self.assertEqual(parse_workerd_line("{broken"), ("info", "{broken"))
        self.assertIsNone(parse_workerd_line("  "))


class LogBookTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.book = LogBook(self.clock, per_version=3)

    def test_bounded_per_version(self):
        a, b = spec("a", version="v1"), spec("b", version="v2")
        for i in range(5):
            self.book.add(a, "log", f"a{i}")
        self.book.add(b, "log", "b0")
        self.assertEqual([e.message for e in self.book.lines(["a"])], ["a2", "a3", "a4"])
        self.assertEqual([e.message for e in self.book.lines(["b", "a"])], ["a2", "a3", "a4", "b0"])
        self.assertEqual([e.message for e in self.book.lines(["a", "b"], limit=2)], ["a4", "b0"])

    def test_follow(self):
        heard = []
        unfollow = self.book.follow(["a"], heard.append)
        self.book.add(spec("a"), "log", "yes")
        self.book.add(spec("b"), "log", "no")
        unfollow()
        self.book.add(spec("a"), "log", "after")
        self.assertEqual([e.message for e in heard], ["yes"])
        self.assertEqual(self.book.followers(), 0)

    def test_forget(self):
        self.book.add(spec("a"), "log", "x")
        self.book.forget("a")
        self.assertEqual(self.book.lines(["a"]), [])
