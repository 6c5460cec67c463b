"""
The ordered MultiService: children start one after another, each once the one before it
has, and stop in reverse; a failed or interrupted start stops what had started.
"""

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from funcplane.ordered import OrderedMultiService, StoppedWhileStarting


class Step(Service):
    """
    A child that writes its starts and stops in C{journal}; its start and stop return
    what the test put in C{on_start} and C{on_stop} (L{None}: done at once).
    """

    def __init__(self, name, journal):
        self.setName(name)
        self.journal = journal
        self.on_start = None
        self.on_stop = None

    def startService(self):
        super().startService()
        self.journal.append(("start", self.name))
        return self.on_start

    def stopService(self):
        super().stopService()
        self.journal.append(("stop", self.name))
        return self.on_stop


class OrderedMultiServiceTests(SynchronousTestCase):
    def setUp(self):
        self.journal = []
        self.tree = OrderedMultiService()
        self.steps = [Step(name, self.journal) for name in ("a", "b", "c")]
        for step in self.steps:
            step.setServiceParent(self.tree)

    def test_start_in_order(self):
        """
        Each child starts only once the Deferred of the one before it has fired; the start's
        Deferred fires once the last child has started.
        """
        a, b, c = self.steps
        a.on_start, b.on_start, c.on_start = Deferred(), Deferred(), Deferred()
        started = self.tree.startService()
        self.assertTrue(self.tree.running)
        self.assertEqual(self.journal, [("start", "a")])
        a.on_start.callback(None)
        self.assertEqual(self.journal, [("start", "a"), ("start", "b")])
        b.on_start.callback(None)
        self.assertEqual(self.journal, [("start", "a"), ("start", "b"), ("start", "c")])
        self.assertNoResult(started)
        c.on_start.callback(None)
        self.assertIsNone(self.successResultOf(started))
        self.assertEqual([s.running for s in self.steps], [1, 1, 1])

    def test_plain_services(self):
        """
        A child whose startService returns nothing (a plain Twisted service) counts as
        started at once.
        """
        self.successResultOf(self.tree.startService())
        self.assertEqual(self.journal, [("start", "a"), ("start", "b"), ("start", "c")])

    def test_stop_in_reverse(self):
        """
        The children stop last first, each once the one after it has stopped; the stop's
        Deferred fires once the first child has stopped.
        """
        self.successResultOf(self.tree.startService())
        del self.journal[:]
        a, b, c = self.steps
        a.on_stop, b.on_stop, c.on_stop = Deferred(), Deferred(), Deferred()
        stopped = self.tree.stopService()
        self.assertFalse(self.tree.running)
        self.assertEqual(self.journal, [("stop", "c")])
        c.on_stop.callback(None)
        self.assertEqual(self.journal, [("stop", "c"), ("stop", "b")])
        b.on_stop.callback(None)
        self.assertEqual(self.journal, [("stop", "c"), ("stop", "b"), ("stop", "a")])
        self.assertNoResult(stopped)
        a.on_stop.callback(None)
        self.assertIsNone(self.successResultOf(stopped))

    def test_failed_start(self):
        """
        When a child fails to start, the children after it never start, it and those
        before it are stopped in reverse, and the start fails with its error once they
        have.
        """
        a, b, c = self.steps
        a.on_stop = Deferred()
        b.on_start = fail(ValueError("no room"))
        started = self.tree.startService()
        self.assertEqual(
            self.journal, [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]
        )
        self.assertNoResult(started)
        a.on_stop.callback(None)
        self.failureResultOf(started, ValueError)
        self.assertFalse(self.tree.running)
        self.assertFalse(c.running)

    def test_failed_synchronous_start(self):
        """
        A child whose startService raises counts as a failed start too.
        """
        a, b, c = self.steps

        def broken():
            raise OSError("read-only file system")

        b.startService = broken
        self.failureResultOf(self.tree.startService(), OSError)
        self.assertEqual(self.journal, [("start", "a"), ("stop", "b"), ("stop", "a")])

    def test_stop_while_starting(self):
        """
        A stop asked while a child starts lets that start finish, starts no further child,
        and then stops the children that started, in reverse; the start fails with
        StoppedWhileStarting.
        """
        a, b, c = self.steps
        b.on_start = Deferred()
        started = self.tree.startService()
        stopped = self.tree.stopService()
        self.assertEqual(self.journal, [("start", "a"), ("start", "b")])
        self.assertNoResult(stopped)
        b.on_start.callback(None)
        self.assertEqual(
            self.journal, [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]
        )
        self.failureResultOf(started, StoppedWhileStarting)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertFalse(c.running)

    def test_stop_waits_for_failed_start(self):
        """
        A stop asked while a start is failing waits for the failed start to stop what it
        started, and stops nothing twice.
        """
        a, b, c = self.steps
        b.on_start = Deferred()
        a.on_stop = Deferred()
        started = self.tree.startService()
        stopped = self.tree.stopService()
        b.on_start.errback(ValueError("broken"))
        self.assertNoResult(stopped)
        a.on_stop.callback(None)
        self.failureResultOf(started, ValueError)
        self.successResultOf(stopped)
        self.assertEqual(
            self.journal, [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]
        )

    def test_failed_stop(self):
        """
        A child that fails to stop is logged by name, and the children before it are
        stopped all the same.
        """
        self.successResultOf(self.tree.startService())
        del self.journal[:]
        self.steps[1].on_stop = fail(RuntimeError("stuck"))
        with capturedLogs() as events:
            self.successResultOf(self.tree.stopService())
        self.assertEqual(self.journal, [("stop", "c"), ("stop", "b"), ("stop", "a")])
        self.assertEqual([formatEvent(e) for e in events], ["b did not stop cleanly"])
        self.assertEqual(events[0]["log_failure"].type, RuntimeError)
        self.flushLoggedErrors(RuntimeError)

    def test_stop_without_start(self):
        """
        Stopping a tree that never started stops no child.
        """
        self.successResultOf(self.tree.stopService())
        self.assertEqual(self.journal, [])

    def test_stop_twice(self):
        """
        A second stop stops nothing again.
        """
        self.successResultOf(self.tree.startService())
        self.successResultOf(self.tree.stopService())
        self.successResultOf(self.tree.stopService())
        self.assertEqual(
            [entry for entry in self.journal if entry[0] == "stop"],
            [("stop", "c"), ("stop", "b"), ("stop", "a")],
        )
