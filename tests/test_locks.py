"""
L{funcplane.locks.KeyedLocks}: one change at a time per name, in order, and no lock kept for
a name with nothing in progress.
"""

from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from funcplane.locks import KeyedLocks


class KeyedLocksTests(SynchronousTestCase):
    """
    Holding a name's lock around a coroutine's body.
    """

    def setUp(self):
        self.locks = KeyedLocks()
        self.log = []

    def change(self, name, label, gate=None):
        """
        A change to C{name} that records when it begins and ends, and waits on C{gate} (a
        Deferred) in between.
        """

        async def body():
            async with self.locks.hold(name):
                self.log.append(("begin", label))
                if gate is not None:
                    await gate
                self.log.append(("end", label))
            return label

        return Deferred.fromCoroutine(body())

    def test_one_at_a_time_in_order(self):
        """
        Changes to one name (compared case-insensitively) run one after another in the
        order they asked, each beginning only once the one before it ended; the lock is
        dropped once none is left.
        """
        gate = Deferred()
        first = self.change("hello", 1, gate)
        second = self.change("Hello", 2)
        third = self.change("HELLO", 3)
        self.assertEqual(self.log, [("begin", 1)])
        self.assertNoResult(second)
        self.assertEqual(len(self.locks), 1)
        gate.callback(None)
        self.assertEqual(
            self.log,
            [("begin", 1), ("end", 1), ("begin", 2), ("end", 2), ("begin", 3), ("end", 3)],
        )
        self.assertEqual(
            [self.successResultOf(d) for d in (first, second, third)], [1, 2, 3]
        )
        self.assertEqual(len(self.locks), 0)

    def test_names_independent(self):
        """
        A change to one name does not wait for a change to another.
        """
        self.change("hello", 1, Deferred())
        other = self.change("other", 2)
        self.assertEqual(self.successResultOf(other), 2)
        self.assertEqual(len(self.locks), 1)

    def test_failure_releases(self):
        """
        A change that fails lets the next one run, and its error reaches its caller.
        """
        gate = Deferred()
        first = self.change("hello", 1, gate)
        second = self.change("hello", 2)
        gate.errback(RuntimeError("boom"))
        self.failureResultOf(first, RuntimeError)
        self.assertEqual(self.successResultOf(second), 2)
        self.assertEqual(len(self.locks), 0)

    def test_cancelled_while_waiting(self):
        """
        A change cancelled while it waits never runs and never holds the lock; the ones
        around it run as before, and no lock is left behind.
        """
        gate = Deferred()
        self.change("hello", 1, gate)
        waiting = self.change("hello", 2)
        last = self.change("hello", 3)
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        gate.callback(None)
        self.assertEqual(self.log, [("begin", 1), ("end", 1), ("begin", 3), ("end", 3)])
        self.successResultOf(last)
        self.assertEqual(len(self.locks), 0)

    def test_alone_cancelled(self):
        """
        The only waiter for a name, cancelled once the holder has ended too, leaves no lock.
        """
        gate = Deferred()
        holder = self.change("hello", 1, gate)
        waiting = self.change("hello", 2)
        waiting.cancel()
        gate.callback(None)
        self.successResultOf(holder)
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(len(self.locks), 0)
