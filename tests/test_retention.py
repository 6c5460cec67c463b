"""
What happens to a function's old versions, on the real store over an in-memory SQLite: the
ones that serve no host but their own are retired (frozen once idle), and past
C{--keep-versions} the unused ones are deleted.
"""

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from funcplane import retention
from funcplane.errors import NoSuchVersion
from funcplane.model import FunctionRoutes
from funcplane.platform import Platform
from funcplane.routing import NotRouted, RouteTable
from tests.fakes import FakeSupervisor, deployment, memory_store
from tests.test_platform import PlatformCase


class RetireTests(PlatformCase):
    """
    After each change of what serves a function's hosts, the versions left serving only
    their own host are retired.
    """

    def test_superseded_by_deploy(self):
        """
        A deploy retires the version it replaced as latest, not the one it started.
        """
        self.deploy("v1")
        self.assertEqual(self.supervisor.retired, [])
        self.deploy("v2")
        self.assertEqual(self.supervisor.retired, ["id-v1"])

    def test_upload_retires_nothing_in_use(self):
        """
        An upload (not deployed) leaves the latest alone and is not retired as it starts;
        the next change retires it, since it serves only its own host.
        """
        self.deploy("v1")
        self.deploy("v2", deploy=False)
        self.assertEqual(self.supervisor.retired, [])
        self.deploy("v3")
        self.assertEqual(sorted(self.supervisor.retired), ["id-v1", "id-v2"])

    def test_aliases_and_splits_not_retired(self):
        """
        A version behind an alias or in the deployment's split is not retired; once the
        alias moves off it, or the split ends, it is.
        """
        self.deploy("v1", alias="beta")
        self.deploy("v2")
        self.deploy("v3", deploy=False)
        self.assertNotIn("id-v1", self.supervisor.retired)
        self.supervisor.retired.clear()
        self.call(self.platform.deploy_versions("hello", [("id-v2", 50), ("id-v3", 50)], {}))
        self.assertEqual(self.supervisor.retired, [])
        self.call(self.platform.set_alias("hello", "beta", "v3"))
        self.assertEqual(self.supervisor.retired, ["id-v1"])
        self.supervisor.retired.clear()
        self.call(self.platform.rollback("hello", "v1"))
        self.assertEqual(self.supervisor.retired, ["id-v2"])
        self.supervisor.retired.clear()
        self.call(self.platform.delete_alias("hello", "beta"))
        self.assertEqual(sorted(self.supervisor.retired), ["id-v2", "id-v3"])


class KeepVersionsTests(PlatformCase):
    """
    With C{keep_versions=2}, a deploy deletes the versions beyond the newest two that
    nothing uses.
    """

    keep_versions = 2

    def test_pruned_and_logged(self):
        """
        Deploying a third and a fourth version deletes the first and the second: their
        hosts answer 404, their processes are stopped, and each deletion is logged with the
        function, the limit and the names deleted.
        """
        self.deploy("v1")
        self.deploy("v2")
        self.assertEqual(self.names(), ["v1", "v2"])
        with capturedLogs() as captured:
            self.deploy("v3")
            self.deploy("v4")
        self.assertEqual(self.names(), ["v3", "v4"])
        self.assertEqual(self.supervisor.stopped, ["id-v1", "id-v2"])
        self.assertRaises(NotRouted, self.routes.resolve, b"v1.hello.func.local")
        self.assertEqual(self.routes.resolve(b"hello.func.local"), "id-v4")
        self.failureResultOf(self.store.version_spec("id-v1"), NoSuchVersion)
        pruned = [e for e in captured if e.get("log_format", "").startswith("deleted {count}")]
        self.assertEqual(
            [(e["function"], e["count"], e["keep"], e["versions"]) for e in pruned],
            [("hello", 1, 2, "v1"), ("hello", 1, 2, "v2")],
        )

    def test_versions_in_use_kept(self):
        """
        An old version behind an alias, or serving the function's host, is kept however
        old; an upload counts among the newest.
        """
        self.deploy("v1", alias="beta")
        self.deploy("v2")
        self.deploy("v3", deploy=False)
        self.deploy("v4", deploy=False)
        self.assertEqual(self.names(), ["v1", "v2", "v3", "v4"])
        self.call(self.platform.set_alias("hello", "beta", "v4"))
        self.deploy("v5", deploy=False)
        self.assertEqual(self.names(), ["v2", "v4", "v5"])
        [routes] = self.successResultOf(self.store.routes())
        self.assertEqual(
            routes,
            FunctionRoutes(
                "hello", "id-v2", {"v2": "id-v2", "v4": "id-v4", "v5": "id-v5"}, {"beta": "id-v4"}
            ),
        )

    def test_pruning_failure_logged(self):
        """
        A deploy whose pruning fails still succeeds, and the failure is logged with the
        function; nothing is deleted.
        """

        class FailingStore:
            def __init__(self, store):
                self._store = store

            def __getattr__(self, name):
                return getattr(self._store, name)

            def delete_versions(self, *args):
                return fail(RuntimeError("disk full"))

        self.platform = self.make(FailingStore(self.store))
        self.deploy("v1")
        self.deploy("v2")
        with capturedLogs() as captured:
            spec = self.deploy("v3")
        self.assertEqual(spec.version, "v3")
        self.assertEqual(self.names(), ["v1", "v2", "v3"])
        [failure] = [e for e in captured if "log_failure" in e]
        self.assertEqual(failure["function"], "hello")
        self.flushLoggedErrors(RuntimeError)


class KeepAllTests(PlatformCase):
    """
    Without C{keep_versions}, nothing is pruned.
    """

    def test_kept(self):
        """
        Every version is kept, however many there are.
        """
        for i in range(1, 6):
            self.deploy(f"v{i}")
        self.assertEqual(len(self.names()), 5)
        self.assertEqual(self.supervisor.stopped, [])


class PrunableTests(SynchronousTestCase):
    """
    L{retention.prunable}, the rule alone.
    """

    def test_rule(self):
        """
        Only versions beyond the newest C{keep} are candidates, and of those only the ones
        nothing uses.
        """
        store = memory_store(self)
        clock = Clock()
        platform = Platform(clock, store, FakeSupervisor(), RouteTable("func.local"))
        versions = [("a", {"alias": "x"}), ("b", {}), ("c", {}), ("d", {"deploy": False})]
        for version, kwargs in versions:
            clock.advance(1)
            self.successResultOf(
                Deferred.fromCoroutine(platform.deploy(deployment("hello", version, **kwargs)))
            )
        info = self.successResultOf(store.function("hello"))
        current = self.successResultOf(store.current_deployment("hello"))
        names = lambda keep: [v.name for v in retention.prunable(info, current, keep)]
        self.assertEqual((names(4), names(3), names(2), names(1)), ([], [], ["b"], ["b"]))
