import os
import stat
import tempfile

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from funcplane.errors import Conflict, NoSuchAlias, NoSuchFunction, NoSuchVersion
from funcplane.interfaces import IStore
from funcplane.model import FunctionRoutes
from funcplane.store import SQLiteStore
from tests.fakes import deployment, memory_store


class StoreTests(SynchronousTestCase):
    def setUp(self):
        self.store = memory_store(self)

    def publish(self, version, alias=None, function="hello", at=1.0, **kwargs):
        d = self.store.publish(deployment(function, version, alias, **kwargs), "id-" + version, version, at)
        return d

    def test_interface(self):
        """
        The store provides IStore.
        """
        verifyObject(IStore, self.store)

    def test_publish(self):
        """
        Publishing creates the function, makes the version latest, points the alias at it,
        and returns the function's routes by lower-case name.
        """
        routes = self.successResultOf(self.publish("V1", alias="Test", function="Hello"))
        self.assertEqual(routes, FunctionRoutes("hello", "id-V1", {"v1": "id-V1"}, {"test": "id-V1"}))
        routes = self.successResultOf(self.publish("v2", function="Hello", at=2.0))
        self.assertEqual(routes.latest, "id-v2")
        info = self.successResultOf(self.store.function("hello"))
        self.assertEqual((info.name, info.latest, info.aliases), ("Hello", "v2", (("Test", "V1"),)))
        self.assertEqual([(v.name, v.created_at) for v in info.versions], [("V1", 1.0), ("v2", 2.0)])

    def test_version_spec(self):
        """
        A version's spec has its code, format and env as deployed.
        """
        self.publish("v1", env=(("B", "2"), ("A", 'x"\n')), fmt="module", code="export default {}")
        spec = self.successResultOf(self.store.version_spec("id-v1"))
        self.assertEqual((spec.function, spec.version, spec.code, spec.format, spec.env),
                         ("hello", "v1", "export default {}", "module", (("A", 'x"\n'), ("B", "2"))))
        self.failureResultOf(self.store.version_spec("nope"), NoSuchVersion)

    def assertConflict(self, d, text):
        failure = self.failureResultOf(d, Conflict)
        self.assertIn(text, str(failure.value))

    def test_conflicts(self):
        """
        A taken version name, a version named like an alias, an alias named like a version,
        and a function name differing only in case are conflicts, and change nothing.
        """
        self.publish("v1", alias="test")
        self.assertConflict(self.publish("V1"), "already has a version V1")
        self.assertConflict(self.publish("test"), "same host as alias test")
        self.assertConflict(self.publish("v2", alias="v1"), "same host as version v1")
        self.assertConflict(self.publish("v3", alias="v3"), "same name as the version")
        self.assertConflict(self.publish("v4", function="HELLO"), "deploy to hello instead")
        self.assertConflict(self.store.check_publish(deployment("hello", "v1"), "v1"), "already has")
        info = self.successResultOf(self.store.function("hello"))
        self.assertEqual([v.name for v in info.versions], ["v1"])
        self.assertEqual(info.aliases, (("test", "v1"),))

    def test_set_latest_and_alias(self):
        """
        Latest and aliases move to existing versions only.
        """
        self.publish("v1")
        self.publish("v2")
        self.assertEqual(self.successResultOf(self.store.set_latest("hello", "V1")).latest, "id-v1")
        self.failureResultOf(self.store.set_latest("hello", "v9"), NoSuchVersion)
        self.failureResultOf(self.store.set_latest("nope", "v1"), NoSuchFunction)
        routes = self.successResultOf(self.store.set_alias("hello", "prod", "v2"))
        self.assertEqual(routes.aliases, {"prod": "id-v2"})
        routes = self.successResultOf(self.store.set_alias("hello", "prod", "v1"))
        self.assertEqual(routes.aliases, {"prod": "id-v1"})
        self.assertConflict(self.store.set_alias("hello", "v2", "v1"), "same host as version v2")
        self.assertEqual(self.successResultOf(self.store.delete_alias("hello", "PROD")).aliases, {})
        self.failureResultOf(self.store.delete_alias("hello", "prod"), NoSuchAlias)

    def test_delete_version_in_use(self):
        """
        A version that is latest or aliased is kept unless forced; forced, its alias goes
        and latest falls back to the newest remaining version.
        """
        self.publish("v1", at=1)
        self.publish("v2", alias="test", at=2)
        self.assertConflict(self.store.delete_version("hello", "v2", False), "it is the latest version, alias test points to it")
        version_id, routes = self.successResultOf(self.store.delete_version("hello", "v2", True))
        self.assertEqual(version_id, "id-v2")
        self.assertEqual(routes, FunctionRoutes("hello", "id-v1", {"v1": "id-v1"}, {}))

    def test_delete_unused_version(self):
        """
        A version nothing points to is deleted without force.
        """
        self.publish("v1")
        self.publish("v2")
        _, routes = self.successResultOf(self.store.delete_version("hello", "v1", False))
        self.assertEqual(routes.versions, {"v2": "id-v2"})

    def test_delete_function(self):
        """
        Deleting a function returns its version ids and removes everything of it.
        """
        self.publish("v1", alias="a")
        self.publish("v2")
        self.publish("x1", function="other")
        self.assertEqual(sorted(self.successResultOf(self.store.delete_function("Hello"))), ["id-v1", "id-v2"])
        self.failureResultOf(self.store.function("hello"), NoSuchFunction)
        self.assertEqual([r.function for r in self.successResultOf(self.store.routes())], ["other"])
        self.assertEqual([f.name for f in self.successResultOf(self.store.functions())], ["other"])

    def test_settings(self):
        """
        Settings are stored and replaced by key.
        """
        self.assertIsNone(self.successResultOf(self.store.get_setting("k")))
        self.successResultOf(self.store.put_setting("k", "1"))
        self.successResultOf(self.store.put_setting("k", "2"))
        self.assertEqual(self.successResultOf(self.store.get_setting("k")), "2")


class SQLiteFileTests(TestCase):
    """
    The store over a real adbapi thread pool and file.
    """

    async def test_persists_across_reopen(self):
        """
        What one store wrote, a store opened later on the same file reads; the file is
        private to funcplane's user.
        """
        path = os.path.join(tempfile.mkdtemp(), "db.sqlite3")
        first = SQLiteStore(path, reactor)
        await first.open()
        await first.publish(deployment("hello", "v1", "test"), "id-1", "v1", 5.0)
        first.close()
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        second = SQLiteStore(path, reactor)
        self.assertEqual(await second.open(), 1)
        self.addCleanup(second.close)
        [routes] = await second.routes()
        self.assertEqual(routes, FunctionRoutes("hello", "id-1", {"v1": "id-1"}, {"test": "id-1"}))
