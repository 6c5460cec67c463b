"""
The platform's rules for deleting a version, on the real store over an in-memory SQLite:
what is refused, what serves the function's own host afterwards, and a change made between
the platform's decision and the store's write.
"""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import Conflict, NoSuchFunction, NoSuchVersion
from funcplane.model import FunctionRoutes
from funcplane.platform import Platform
from funcplane.routing import NotRouted, RouteTable
from tests.fakes import FakeSupervisor, deployment, memory_store

DELETE = {"source": "api", "triggered_by": "delete"}


class RacingStore:
    """
    The real store, with C{change} (which returns a Deferred) made once on it just before
    the first C{delete_version} writes: a change by someone else between the platform's
    reads and its write.
    """

    def __init__(self, store, change):
        self._store = store
        self._change = change

    def __getattr__(self, name):
        return getattr(self._store, name)

    def delete_version(self, *args, **kwargs):
        change, self._change = self._change, None
        if change is not None:
            change()
        return self._store.delete_version(*args, **kwargs)


class PlatformCase(SynchronousTestCase):
    """
    A platform on the real store (an in-memory SQLite) whose version ids are C{id-NAME}
    and deployment ids C{d-1}, C{d-2}...
    """

    keep_versions = None

    def setUp(self):
        self.clock = Clock()
        self.store = memory_store(self)
        self.supervisor = FakeSupervisor()
        self.routes = RouteTable("func.local")
        self.deployment_ids = (f"d-{i}" for i in range(1, 100))
        self.platform = self.make(self.store)

    def make(self, store):
        return Platform(
            self.clock,
            store,
            self.supervisor,
            self.routes,
            new_id=lambda: f"id-{self.next_version}",
            new_deployment_id=lambda: next(self.deployment_ids),
            keep_versions=self.keep_versions,
        )

    def call(self, coroutine):
        return self.successResultOf(Deferred.fromCoroutine(coroutine))

    def deploy(self, version, alias=None, **kwargs):
        self.clock.advance(1)
        self.next_version = version
        return self.call(self.platform.deploy(deployment("hello", version, alias, **kwargs)))

    def names(self):
        info = self.successResultOf(self.store.function("hello"))
        return [v.name for v in info.versions]


class DeleteVersionTests(PlatformCase):
    """
    L{Platform.delete_version}: the rules of deletion and what serves afterwards.
    """

    def publish(self, version, alias=None, **kwargs):
        self.deploy(version, alias, **kwargs)

    def delete(self, version, force=False, platform=None):
        return Deferred.fromCoroutine(
            (platform or self.platform).delete_version("hello", version, force)
        )

    def stored_routes(self):
        [routes] = self.successResultOf(self.store.routes())
        return routes

    def history(self):
        return [
            (d.id, d.versions, d.metadata)
            for d in self.successResultOf(self.store.deployments("hello"))
        ]

    def assertRefused(self, d, message):
        """
        C{d} failed with a Conflict saying C{message}, and nothing was deleted or stopped.
        """
        before = self.stored_routes()
        failure = self.failureResultOf(d, Conflict)
        self.assertEqual(str(failure.value), message)
        self.assertEqual(self.stored_routes(), before)
        self.assertEqual(self.supervisor.stopped, [])

    def test_in_use_refused_unless_forced(self):
        """
        A version that is latest or aliased is kept unless forced, with a message naming
        every use; forced, its alias goes, its process stops and the newest remaining
        version takes the whole deployment.
        """
        self.publish("v1")
        self.publish("v2", alias="test")
        self.assertRefused(
            self.delete("v2"),
            "version v2 of hello is in use (it is the latest version, alias test points to"
            " it); roll back or move the aliases first, or delete with ?force=true",
        )
        self.successResultOf(self.delete("v2", force=True))
        self.assertEqual(self.stored_routes(), FunctionRoutes("hello", "id-v1", {"v1": "id-v1"}, {}))
        self.assertEqual(self.routes.resolve(b"hello.func.local"), "id-v1")
        self.assertRaises(NotRouted, self.routes.resolve, b"test.hello.func.local")
        self.assertRaises(NotRouted, self.routes.resolve, b"v2.hello.func.local")
        self.assertEqual(self.supervisor.stopped, ["id-v2"])
        self.assertEqual(self.history()[0], ("d-3", (("id-v1", 100),), DELETE))

    def test_aliased_only_refused(self):
        """
        A version that serves nothing but an alias's host is in use too.
        """
        self.publish("v1", alias="Beta")
        self.publish("v2")
        self.assertRefused(
            self.delete("V1"),
            "version V1 of hello is in use (alias Beta points to it); roll back or move the"
            " aliases first, or delete with ?force=true",
        )

    def test_unused_deleted_without_force(self):
        """
        A version nothing points to is deleted without force, and what serves the
        function's host is left as it was: no deployment is recorded.
        """
        self.publish("v1")
        self.publish("v2")
        history = self.history()
        self.successResultOf(self.delete("v1"))
        self.assertEqual(self.stored_routes().versions, {"v2": "id-v2"})
        self.assertEqual(self.stored_routes().latest, "id-v2")
        self.assertEqual(self.history(), [history[0], ("d-1", (), {})])
        self.assertEqual(self.supervisor.stopped, ["id-v1"])

    def test_split_member(self):
        """
        A member of a traffic split is in use; forced, the rest of the split serves on
        (its largest share becomes latest, and no deployment is recorded), and deleting the
        last member makes the newest remaining version take the whole deployment.
        """
        self.publish("v1")
        self.publish("v2")
        self.publish("v3", deploy=False)
        d = self.platform.deploy_versions("hello", [("id-v1", 10), ("id-v3", 90)], {"message": "m"})
        self.successResultOf(Deferred.fromCoroutine(d))
        self.assertRefused(
            self.delete("v1"),
            "version v1 of hello is in use (it serves part of the function's traffic); roll"
            " back or move the aliases first, or delete with ?force=true",
        )
        self.successResultOf(self.delete("v3", force=True))
        routes = self.stored_routes()
        self.assertEqual((routes.latest, routes.split), ("id-v1", ()))
        self.assertEqual(self.history()[0], ("d-4", (("id-v1", 10),), {"message": "m"}))
        self.successResultOf(self.delete("v1", force=True))
        routes = self.stored_routes()
        self.assertEqual((routes.latest, routes.split), ("id-v2", ()))
        self.assertEqual(self.history()[0], ("d-5", (("id-v2", 100),), DELETE))
        self.assertEqual(self.routes.resolve(b"hello.func.local"), "id-v2")

    def test_split_of_three(self):
        """
        Forced out of a split of three, a version leaves the other two splitting the
        function's host, the larger of them latest.
        """
        for version in ("v1", "v2", "v3"):
            self.publish(version)
        shares = [("id-v1", 20), ("id-v2", 30), ("id-v3", 50)]
        self.successResultOf(Deferred.fromCoroutine(self.platform.deploy_versions("hello", shares, {})))
        self.successResultOf(self.delete("v3", force=True))
        routes = self.stored_routes()
        self.assertEqual((routes.latest, routes.split), ("id-v2", (("id-v2", 30), ("id-v1", 20))))

    def test_only_deployed_version(self):
        """
        Forcing out the one version that serves the function's host hands the whole
        deployment to the newest remaining version, even one only uploaded.
        """
        self.publish("v1")
        self.publish("v2", deploy=False)
        self.publish("v3", deploy=False)
        self.successResultOf(self.delete("v1", force=True))
        self.assertEqual(self.stored_routes().latest, "id-v3")
        self.assertEqual(self.history()[0], ("d-4", (("id-v3", 100),), DELETE))
        self.assertEqual(self.routes.resolve(b"hello.func.local"), "id-v3")

    def test_last_version(self):
        """
        The last version is in use as the latest; forced out, nothing serves the function's
        host and no deployment is recorded, and the function stays, without versions.
        """
        self.publish("v1")
        self.assertRefused(
            self.delete("v1"),
            "version v1 of hello is in use (it is the latest version); roll back or move"
            " the aliases first, or delete with ?force=true",
        )
        self.successResultOf(self.delete("v1", force=True))
        self.assertEqual(self.stored_routes(), FunctionRoutes("hello", None, {}, {}))
        self.assertEqual(self.history(), [("d-1", (), {})])
        self.assertRaises(NotRouted, self.routes.resolve, b"hello.func.local")
        info = self.successResultOf(self.store.function("hello"))
        self.assertEqual((info.latest, info.versions), (None, ()))

    def test_unknown(self):
        """
        Deleting a version or function that does not exist says which.
        """
        self.publish("v1")
        failure = self.failureResultOf(self.delete("v9"), NoSuchVersion)
        self.assertEqual(str(failure.value), "function hello has no version v9")
        d = Deferred.fromCoroutine(self.platform.delete_version("nope", "v1"))
        self.assertEqual(str(self.failureResultOf(d, NoSuchFunction).value), "function nope not found")

    def race(self, change):
        """
        A platform on the store whose first delete sees C{change} made by someone else
        after the platform decided and before it wrote.
        """
        return self.make(RacingStore(self.store, change))

    def test_concurrent_rollback_refused(self):
        """
        A rollback to the version being deleted, made after the platform found it unused
        and before the write, is not undone: the delete fails with a Conflict asking to try
        again, writes nothing, and the version keeps serving; tried again, the version is
        refused as the latest.
        """
        self.publish("v1")
        self.publish("v2")
        platform = self.race(lambda: self.store.set_latest("hello", "v1", 9.0, "d-rollback", {}))
        d = self.delete("v1", platform=platform)
        failure = self.failureResultOf(d, Conflict)
        self.assertEqual(
            str(failure.value),
            "function hello changed while version v1 was being deleted; nothing was deleted,"
            " try again",
        )
        self.assertEqual(self.stored_routes().latest, "id-v1")
        self.assertEqual(self.stored_routes().versions, {"v1": "id-v1", "v2": "id-v2"})
        self.assertEqual(self.history()[0], ("d-rollback", (("id-v1", 100),), {}))
        self.assertEqual(self.supervisor.stopped, [])
        self.assertRefused(
            self.delete("v1", platform=platform),
            "version v1 of hello is in use (it is the latest version); roll back or move"
            " the aliases first, or delete with ?force=true",
        )

    def test_concurrent_alias_refused(self):
        """
        An alias pointed at the version after the platform found it unused is not deleted
        with it: the delete is refused as a Conflict and the alias still routes.
        """
        self.publish("v1")
        self.publish("v2")
        platform = self.race(lambda: self.store.set_alias("hello", "beta", "v1"))
        failure = self.failureResultOf(self.delete("v1", platform=platform), Conflict)
        self.assertIn("changed while version v1 was being deleted", str(failure.value))
        self.assertEqual(self.stored_routes().aliases, {"beta": "id-v1"})
        self.assertEqual(self.supervisor.stopped, [])

    def test_concurrent_deploy_refused(self):
        """
        A forced delete of the latest version decided before a new version was deployed
        does not hand the deployment to the version it chose: it fails as a Conflict, the
        new version keeps serving, and tried again the delete leaves it serving.
        """
        self.publish("v1")
        self.publish("v2")

        def deploy_v3():
            self.next_version = "v3"
            return Deferred.fromCoroutine(self.platform.deploy(deployment("hello", "v3")))

        platform = self.race(deploy_v3)
        self.failureResultOf(self.delete("v2", force=True, platform=platform), Conflict)
        self.assertEqual(self.stored_routes().latest, "id-v3")
        self.assertEqual(sorted(self.stored_routes().versions), ["v1", "v2", "v3"])
        self.successResultOf(self.delete("v2", force=True, platform=platform))
        self.assertEqual(self.stored_routes().latest, "id-v3")
        self.assertEqual(sorted(self.stored_routes().versions), ["v1", "v3"])
        self.assertEqual(self.history()[0], ("d-4", (("id-v3", 100),), {}))
