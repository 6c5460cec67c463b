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
