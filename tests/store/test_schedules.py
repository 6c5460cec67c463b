"""
Tests for L{funcplane.store.schedules}: a function's cron triggers, stored with it, and the
claim that keeps a scheduled time from running twice.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from funcplane.errors import NoSuchFunction
from funcplane.interfaces import ISchedules
from funcplane.model import Schedule, Target
from funcplane.store.schedules import CLAIMED, FIRED, GONE, SQLiteSchedules
from tests.fakes import deployment, memory_store, spec_for


class SchedulesTests(SynchronousTestCase):
    def setUp(self):
        self.store = memory_store(self)
        self.schedules = SQLiteSchedules(self.store)
        self.publish("Hello", "v1", "id1")

    def publish(self, function, version, version_id, built_on=None):
        d = deployment(function=function, version=version)
        self.successResultOf(self.store.publish(d, spec_for(d, version_id), 10.0, "dep-" + version_id, built_on))

    def test_interface(self):
        """
        The store provides L{ISchedules}.
        """
        verifyObject(ISchedules, self.schedules)

    def test_replace_and_read(self):
        """
        Schedules are put in the order given, under the function's stored name; putting
        again keeps the times of those kept, adds the new ones now, drops the others.
        """
        name, stored = self.successResultOf(self.schedules.replace("hello", ["*/5 * * * *", "0 0 * * 1"], 100.0))
        self.assertEqual(name, "Hello")
        self.assertEqual(stored, (Schedule("*/5 * * * *", 100.0, 100.0), Schedule("0 0 * * 1", 100.0, 100.0)))
        self.successResultOf(self.schedules.claim("hello", "0 0 * * 1", 150.0))
        _, stored = self.successResultOf(self.schedules.replace("HELLO", ["0 0 * * 1", "0 12 * * *"], 200.0))
        self.assertEqual(
            stored, (Schedule("0 0 * * 1", 100.0, 100.0, 150.0), Schedule("0 12 * * *", 200.0, 200.0))
        )
        self.assertEqual(self.successResultOf(self.schedules.schedules("hello")), ("Hello", stored))
        self.assertEqual(self.successResultOf(self.schedules.replace("hello", [], 300.0)), ("Hello", ()))

    def test_every(self):
        """
        Every schedule of every function, by function and in order.
        """
        self.publish("other", "v1", "id2")
        self.successResultOf(self.schedules.replace("other", ["1 * * * *"], 1.0))
        self.successResultOf(self.schedules.replace("hello", ["2 * * * *", "3 * * * *"], 1.0))
        self.assertEqual(
            [(f, s.cron) for f, s in self.successResultOf(self.schedules.every())],
            [("Hello", "2 * * * *"), ("Hello", "3 * * * *"), ("other", "1 * * * *")],
        )

    def test_no_such_function(self):
        """
        Reading or putting the schedules of a function that does not exist fails with
        L{NoSuchFunction}.
        """
        self.failureResultOf(self.schedules.schedules("nope"), NoSuchFunction)
        self.failureResultOf(self.schedules.replace("nope", ["* * * * *"], 1.0), NoSuchFunction)
        self.failureResultOf(self.schedules.target("nope"), NoSuchFunction)

    def test_claim_once(self):
        """
        A scheduled time is claimed once: claimed again (after a restart, say), or an
        earlier time, it is already fired.  The claim names the version serving the
        function.
        """
        self.successResultOf(self.schedules.replace("hello", ["* * * * *"], 1.0))
        target = Target("Hello", "id1", "v1")
        self.assertEqual(self.successResultOf(self.schedules.claim("hello", "* * * * *", 60.0)), (CLAIMED, target))
        self.assertEqual(self.successResultOf(self.schedules.claim("hello", "* * * * *", 60.0)), (FIRED, target))
        self.assertEqual(self.successResultOf(self.schedules.claim("hello", "* * * * *", 0.0)), (FIRED, target))
        self.assertEqual(self.successResultOf(self.schedules.claim("hello", "* * * * *", 120.0)), (CLAIMED, target))
        self.assertEqual(self.successResultOf(self.schedules.schedules("hello"))[1][0].last_fired, 120.0)

    def test_claim_gone(self):
        """
        A schedule that was removed, or whose function was deleted, is gone; deleting a
        function deletes its schedules.
        """
        self.successResultOf(self.schedules.replace("hello", ["* * * * *"], 1.0))
        self.assertEqual(self.successResultOf(self.schedules.claim("hello", "0 * * * *", 60.0)), (GONE, None))
        self.successResultOf(self.store.delete_function("hello"))
        self.assertEqual(self.successResultOf(self.schedules.claim("hello", "* * * * *", 60.0)), (GONE, None))
        self.assertEqual(self.successResultOf(self.schedules.every()), [])
        self.publish("hello", "v1", "id3")
        self.assertEqual(self.successResultOf(self.schedules.schedules("hello")), ("hello", ()))

    def test_target_follows_latest(self):
        """
        The target is the function's latest version: a new deploy moves it.
        """
        self.assertEqual(self.successResultOf(self.schedules.target("hello")), Target("Hello", "id1", "v1"))
        self.publish("Hello", "v2", "id2", built_on="id1")
        self.assertEqual(self.successResultOf(self.schedules.target("hello")), Target("Hello", "id2", "v2"))
