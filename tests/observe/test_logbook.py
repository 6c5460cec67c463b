"""
Keeping what functions print, and following it.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane.observe.logbook import LogBook
from tests.fakes import spec


class LogBookTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.book = LogBook(self.clock, per_version=3)

    def test_bounded_per_version(self):
        """
        Each version keeps only its last lines; lines of several versions come back in the
        order they were printed, and a limit keeps the newest.
        """
        a, b = spec("a", version="v1"), spec("b", version="v2")
        for i in range(5):
            self.book.add(a, "log", f"a{i}")
        self.book.add(b, "log", "b0")
        self.assertEqual([e.message for e in self.book.lines(["a"])], ["a2", "a3", "a4"])
        self.assertEqual([e.message for e in self.book.lines(["b", "a"])], ["a2", "a3", "a4", "b0"])
        self.assertEqual([e.message for e in self.book.lines(["a", "b"], limit=2)], ["a4", "b0"])

    def test_follow(self):
        """
        A follower hears each new line of the versions it follows and no other, until it
        unfollows.
        """
        heard = []
        unfollow = self.book.follow(["a"], heard.append)
        self.book.add(spec("a"), "log", "yes")
        self.book.add(spec("b"), "log", "no")
        unfollow()
        self.book.add(spec("a"), "log", "after")
        self.assertEqual([e.message for e in heard], ["yes"])
        self.assertEqual(self.book.followers(), 0)

    def test_forget(self):
        """
        A forgotten (deleted) version's lines are gone.
        """
        self.book.add(spec("a"), "log", "x")
        self.book.forget("a")
        self.assertEqual(self.book.lines(["a"]), [])


class LogBookBoundTests(SynchronousTestCase):
    """
    The log book holds no more bytes than the operator chose, per version and in all.
    """

    def setUp(self):
        self.clock = Clock()
        self.book = LogBook(self.clock, per_version=100, bytes_per_version=100, bytes_total=250)

    def test_bytes_per_version(self):
        """
        A version that prints more than its byte bound keeps only its newest lines within
        it, and the other versions keep theirs.
        """
        self.book.add(spec("b"), "log", "b" * 40)
        for i in range(10):
            self.book.add(spec("a"), "log", f"{i}" * 30)
        self.assertEqual([e.message for e in self.book.lines(["a"])], ["7" * 30, "8" * 30, "9" * 30])
        self.assertEqual([e.message for e in self.book.lines(["b"])], ["b" * 40])
        self.assertEqual(self.book.held(), (4, 130))

    def test_bytes_counted_in_utf8(self):
        """
        A byte is a byte of the message in UTF-8: 40 two-byte characters count 80.
        """
        self.book.add(spec("a"), "log", "\u00e9" * 40)
        self.book.add(spec("a"), "log", "\u00e9" * 40)
        self.assertEqual(self.book.held(), (1, 80))

    def test_bytes_total(self):
        """
        When all versions together hold more than the total bound, the oldest lines go
        first, whichever version printed them.
        """
        for name in "abc":
            self.book.add(spec(name), "log", name * 90)
        self.assertEqual(self.book.held(), (2, 180))
        self.assertEqual(self.book.lines(["a"]), [])
        self.assertEqual([e.message for e in self.book.lines(["b", "c"])], ["b" * 90, "c" * 90])
        self.book.forget("b")
        self.assertEqual(self.book.held(), (1, 90))
        self.book.add(spec("a"), "log", "a" * 90)
        self.book.add(spec("d"), "log", "d" * 90)
        self.assertEqual([e.message for e in self.book.lines(["a", "c", "d"])], ["a" * 90, "d" * 90])

    def test_total_bound_over_many_lines(self):
        """
        However many lines pass through it, the book keeps within its bounds and its own
        record of the order of lines does not grow with them.
        """
        for i in range(10_000):
            self.book.add(spec(f"v{i % 7}"), "log", "x" * (i % 50))
            kept, held = self.book.held()
            self.assertLessEqual(held, 250)
        self.assertLess(len(self.book._order), 2 * kept + 65)
        self.assertEqual(held, sum(len(e.message) for e in self.book.lines([f"v{i}" for i in range(7)])))

    def test_line_over_the_bound_kept_alone(self):
        """
        One line longer than a version's bound is kept, by itself: the newest line is
        never dropped.
        """
        self.book.add(spec("a"), "log", "x" * 10)
        self.book.add(spec("a"), "log", "y" * 120)
        self.assertEqual([e.message for e in self.book.lines(["a"])], ["y" * 120])

    def test_kind(self):
        """
        Each line keeps its kind: console output unless said otherwise.
        """
        self.book.add(spec("a"), "error", "console.error text")
        self.book.add(spec("a"), "error", "Error: thrown", kind="exception")
        self.assertEqual([(e.kind, e.level) for e in self.book.lines(["a"])],
                         [("console", "error"), ("exception", "error")])
