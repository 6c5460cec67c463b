"""
Tests for L{funcplane.deadline}.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane.deadline import Deadline


class DeadlineTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.deadline = Deadline(self.clock)
        self.fired = []

    def then(self, name="due"):
        return lambda: self.fired.append((name, self.clock.seconds()))

    def test_fires_once_due(self):
        """
        The function runs once, when the deadline is due, and no call is left on the clock.
        """
        self.deadline.set(5, self.then())
        self.clock.advance(4.5)
        self.assertEqual(self.fired, [])
        self.clock.advance(0.5)
        self.assertEqual(self.fired, [("due", 5)])
        self.assertIsNone(self.deadline.when)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_moved_later_keeps_one_call(self):
        """
        Moving the deadline later schedules nothing new; the early call reschedules itself
        for what remains, and the function runs at the new time, not the first.
        """
        self.deadline.set(5, self.then())
        self.clock.advance(3)
        self.deadline.set(5, self.then("moved"))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(2)
        self.assertEqual(self.fired, [])
        self.clock.advance(2.9)
        self.assertEqual(self.fired, [])
        self.clock.advance(0.1)
        self.assertEqual(self.fired, [("moved", 8)])

    def test_moved_earlier(self):
        """
        Moving the deadline earlier runs the new function at the earlier time, and the
        replaced one never.
        """
        self.deadline.set(10, self.then("late"))
        self.deadline.set(2, self.then("early"))
        self.clock.advance(2)
        self.assertEqual(self.fired, [("early", 2)])
        self.clock.advance(20)
        self.assertEqual(self.fired, [("early", 2)])

    def test_cleared(self):
        """
        A cleared deadline does nothing when its time comes, and leaves no call behind
        after that.
        """
        self.deadline.set(5, self.then())
        self.deadline.clear()
        self.assertIsNone(self.deadline.when)
        self.clock.advance(5)
        self.assertEqual(self.fired, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_set_again_after_clear(self):
        """
        A deadline set again after a clear counts from the new setting, not the first.
        """
        self.deadline.set(5, self.then("first"))
        self.clock.advance(1)
        self.deadline.clear()
        self.deadline.set(10, self.then("second"))
        self.clock.advance(9)
        self.assertEqual(self.fired, [])
        self.clock.advance(1)
        self.assertEqual(self.fired, [("second", 11)])

    def test_stop(self):
        """
        L{Deadline.stop} leaves nothing on the clock at all.
        """
        self.deadline.set(5, self.then())
        self.deadline.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10)
        self.assertEqual(self.fired, [])

    def test_then_may_set_again(self):
        """
        The function may set the deadline again from inside its call.
        """
        def again():
            self.fired.append(self.clock.seconds())
            if len(self.fired) < 3:
                self.deadline.set(1, again)

        self.deadline.set(1, again)
        self.clock.advance(1)
        self.clock.advance(1)
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertEqual(self.fired, [1, 2, 3])
