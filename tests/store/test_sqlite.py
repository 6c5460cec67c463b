import attrs
import os
import stat
import tempfile

from pysqlite3 import dbapi2
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from funcplane.errors import Conflict, NoSuchAlias, NoSuchFunction, NoSuchVersion
from funcplane.interfaces import IStore
from funcplane.model import (
    PLAIN_TEXT,
    SCRIPT,
    SECRET_TEXT,
    Assets,
    Binding,
    DeploymentInfo,
    FunctionRoutes,
    Module,
)
from funcplane.store.database import migrations
from funcplane.store.sqlite import SQLiteStore
from tests.fakes import InlinePool, deployment, spec_for


class StoreTests(SynchronousTestCase):
    """
    The store's reads and writes on an in-memory database.  The rules of deleting a version
    are the platform's, and are tested there (L{tests.test_platform}).
    """

    def setUp(self):
        self.pool = InlinePool()
        self.store = SQLiteStore(":memory:", None, pool_factory=lambda path, reactor: self.pool)
        self.successResultOf(self.store.open())

    def publish(self, version, alias=None, function="hello", at=1.0, **kwargs):
        """
        Publish C{version}, built on the function's newest version as it is now.
        """
        d = deployment(function, version, alias, **kwargs)
        spec = spec_for(d, "id-" + version)
        return self.store.publish(d, spec, at, f"d-{version}", self.newest(function))

    def newest(self, function):
        """
        The id of C{function}'s newest version, or L{None}.
        """
        d = self.store.function(function)
        d.addErrback(lambda f: f.trap(NoSuchFunction) and None)
        info = self.successResultOf(d)
        return info.versions[-1].id if info is not None and info.versions else None

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
        self.assertEqual(
            (spec.function, spec.version, spec.modules, spec.format, spec.bindings),
            (
                "hello",
                "v1",
                (Module("worker.js", "esModule", b"export default {}"),),
                "module",
                (Binding("A", PLAIN_TEXT, 'x"\n'), Binding("B", PLAIN_TEXT, "2")),
            ),
        )
        self.failureResultOf(self.store.version_spec("nope"), NoSuchVersion)

    def test_compatibility_and_assets(self):
        """
        A version's compatibility date and flags and its assets are kept as deployed; a
        version that asked for none has none.
        """
        assets = Assets(((("/a.txt", "0" * 32), ("/index.html", "f" * 32))), '{"html_handling": "none"}', "ASSETS")
        d = attrs.evolve(
            deployment("hello", "v1"),
            compatibility_date="2024-01-02",
            compatibility_flags=("nodejs_compat",),
            assets=assets,
        )
        self.successResultOf(self.store.publish(d, spec_for(d, "id-v1"), 1.0, "d-v1", None))
        self.publish("v2")
        spec = self.successResultOf(self.store.version_spec("id-v1"))
        self.assertEqual(
            (spec.compatibility_date, spec.compatibility_flags, spec.assets),
            ("2024-01-02", ("nodejs_compat",), assets),
        )
        plain = self.successResultOf(self.store.version_spec("id-v2"))
        self.assertEqual((plain.compatibility_date, plain.compatibility_flags, plain.assets), (None, (), None))

    def set_latest(self, version, function="hello"):
        return self.store.set_latest(function, version, 9.0, "d-latest", {"source": "api"})

    def seen(self, function="hello"):
        """
        What a caller of C{delete_version} reads first: the function and its current
        deployment.
        """
        return (
            self.successResultOf(self.store.function(function)),
            self.successResultOf(self.store.current_deployment(function)),
        )

    def selects(self, read):
        """
        How many SELECT statements C{read()} runs, and its result.
        """
        del self.pool.statements[:]
        result = self.successResultOf(read())
        return sum(1 for sql in self.pool.statements if sql.lstrip().upper().startswith("SELECT")), result

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
        self.assertEqual(self.successResultOf(self.set_latest("V1")).latest, "id-v1")
        self.failureResultOf(self.set_latest("v9"), NoSuchVersion)
        self.failureResultOf(self.set_latest("v1", "nope"), NoSuchFunction)
        routes = self.successResultOf(self.store.set_alias("hello", "prod", "v2"))
        self.assertEqual(routes.aliases, {"prod": "id-v2"})
        routes = self.successResultOf(self.store.set_alias("hello", "prod", "v1"))
        self.assertEqual(routes.aliases, {"prod": "id-v1"})
        self.assertConflict(self.store.set_alias("hello", "v2", "v1"), "same host as version v2")
        self.assertEqual(self.successResultOf(self.store.delete_alias("hello", "PROD")).aliases, {})
        self.failureResultOf(self.store.delete_alias("hello", "prod"), NoSuchAlias)

    def test_delete_version_writes_what_it_is_told(self):
        """
        delete_version removes the version with its aliases, records the replacement
        deployment it is given and points latest where it is told, in one transaction, and
        returns the function's routes.
        """
        self.publish("v1", at=1)
        self.publish("v2", alias="test", at=2)
        info, current = self.seen()
        replacement = DeploymentInfo("d-after", 9.0, (("id-v1", 100),), {"triggered_by": "delete"})
        routes = self.successResultOf(
            self.store.delete_version(info, current, "id-v2", "id-v1", replacement)
        )
        self.assertEqual(routes, FunctionRoutes("hello", "id-v1", {"v1": "id-v1"}, {}))
        [newest] = self.successResultOf(self.store.deployments("hello"))[:1]
        self.assertEqual((newest, newest.metadata), (replacement, {"triggered_by": "delete"}))
        info, current = self.seen()
        self.assertEqual((info.latest, [v.name for v in info.versions], info.aliases), ("v1", ["v1"], ()))
        self.assertEqual(current, replacement)
        routes = self.successResultOf(self.store.delete_version(info, current, "id-v1", None))
        self.assertEqual(routes, FunctionRoutes("hello", None, {}, {}))
        self.assertIsNone(self.successResultOf(self.store.current_deployment("hello")))

    def test_delete_version_refuses_what_changed(self):
        """
        delete_version writes nothing and fails with a Conflict asking to try again when
        the function is no longer what the caller read: a version or alias added, or a
        different current deployment.
        """
        self.publish("v1", at=1)
        self.publish("v2", at=2)
        changes = [
            lambda: self.publish("v3", at=3, deploy=False),
            lambda: self.store.set_alias("hello", "test", "v1"),
            lambda: self.store.deploy("hello", [("id-v1", 50), ("id-v2", 50)], 4.0, "d-split", {}),
        ]
        for change in changes:
            info, current = self.seen()
            self.successResultOf(change())
            routes = self.successResultOf(self.store.routes())
            self.assertConflict(
                self.store.delete_version(info, current, "id-v1", info.versions[-1].id),
                "function hello changed while version v1 was being deleted;"
                " nothing was deleted, try again",
            )
            self.assertEqual(self.successResultOf(self.store.routes()), routes)
        self.failureResultOf(
            self.store.delete_version(attrs.evolve(info, name="nope"), current, "id-v1", None),
            NoSuchFunction,
        )

    def test_publish_checks_what_it_built_on(self):
        """
        publish writes nothing and fails with a Conflict naming the newest version when the
        function's newest version is not the one the caller built on: a version published
        meanwhile, even one only uploaded, or the function deleted.
        """
        d = deployment("hello", "v1")
        self.successResultOf(self.store.publish(d, spec_for(d, "id-v1"), 1.0, "d-1", None))
        self.publish("v2", at=2, deploy=False)
        routes = self.successResultOf(self.store.routes())
        d = deployment("hello", "v3")
        self.assertConflict(
            self.store.publish(d, spec_for(d, "id-v3"), 3.0, "d-3", "id-v1"),
            "function hello changed while version v3 was being deployed (its newest version"
            " is now v2, not the one this deploy built on); nothing was deployed: send the"
            " change again",
        )
        self.assertConflict(
            self.store.publish(d, spec_for(d, "id-v3"), 3.0, "d-3", None), "is now v2,"
        )
        self.assertEqual(self.successResultOf(self.store.routes()), routes)
        self.assertEqual(len(self.successResultOf(self.store.deployments("hello"))), 1)
        self.successResultOf(self.store.publish(d, spec_for(d, "id-v3"), 3.0, "d-3", "id-v2"))
        self.successResultOf(self.store.delete_function("hello"))
        self.assertConflict(
            self.store.publish(d, spec_for(d, "id-v4"), 4.0, "d-4", "id-v3"), "is now none,"
        )
        self.failureResultOf(self.store.function("hello"), NoSuchFunction)

    def test_delete_versions(self):
        """
        delete_versions removes the versions it is given, with their modules, in one
        transaction, leaving latest and the current deployment alone; and writes nothing
        when the function changed since the caller read it.
        """
        for i in range(1, 5):
            self.publish(f"v{i}", at=i)
        info, current = self.seen()
        routes = self.successResultOf(self.store.delete_versions(info, current, ["id-v1", "id-v2"]))
        self.assertEqual(routes, FunctionRoutes("hello", "id-v4", {"v3": "id-v3", "v4": "id-v4"}, {}))
        self.assertEqual(self.successResultOf(self.store.current_deployment("hello")), current)
        self.failureResultOf(self.store.version_spec("id-v1"), NoSuchVersion)
        [(modules,)] = self.pool._connection.execute(
            "SELECT count(*) FROM modules WHERE version_id IN ('id-v1', 'id-v2')"
        ).fetchall()
        self.assertEqual(modules, 0)
        info, current = self.seen()
        self.successResultOf(self.store.set_alias("hello", "test", "v3"))
        self.assertConflict(
            self.store.delete_versions(info, current, ["id-v3"]),
            "function hello changed while its old versions were being pruned; nothing was"
            " deleted, try again",
        )
        self.successResultOf(self.store.version_spec("id-v3"))

    def test_current_deployment(self):
        """
        The current deployment is the newest that still has a version: one emptied by
        deletes is passed over, and a function that was only uploaded has none.
        """
        self.publish("v1", at=1)
        self.publish("v2", at=2)
        self.assertEqual(
            self.successResultOf(self.store.current_deployment("Hello")),
            DeploymentInfo("d-v2", 2.0, (("id-v2", 100),)),
        )
        info, current = self.seen()
        self.successResultOf(self.store.delete_version(info, current, "id-v2", "id-v1"))
        self.assertEqual(
            self.successResultOf(self.store.current_deployment("hello")),
            DeploymentInfo("d-v1", 1.0, (("id-v1", 100),)),
        )
        self.assertEqual(self.successResultOf(self.store.deployments("hello"))[0].versions, ())
        self.publish("x1", function="other", deploy=False)
        self.assertIsNone(self.successResultOf(self.store.current_deployment("other")))
        self.failureResultOf(self.store.current_deployment("nope"), NoSuchFunction)

    def test_reads_cost_fixed_queries(self):
        """
        Reading a function's deployment history costs two queries however long it is (the
        function, then its deployments with their shares); every function's routes (by
        name) cost four and every function's info three, however many functions there are.
        """
        for i in range(1, 6):
            self.publish(f"v{i}", at=i)
        self.successResultOf(
            self.store.deploy("hello", [("id-v1", 30), ("id-v2", 70)], 6.0, "d-split", {})
        )
        for name in ("a", "b", "c"):
            self.publish(f"{name}1", function=name, alias="test")
        count, history = self.selects(lambda: self.store.deployments("hello"))
        self.assertEqual(count, 2)
        self.assertEqual(
            [(d.id, d.versions) for d in history],
            [("d-split", (("id-v2", 70), ("id-v1", 30)))]
            + [(f"d-v{i}", ((f"id-v{i}", 100),)) for i in range(5, 0, -1)],
        )
        count, routes = self.selects(self.store.routes)
        self.assertEqual(count, 4)
        self.assertEqual(
            [(r.function, r.latest, r.split, sorted(r.versions), r.aliases) for r in routes],
            [(n, f"id-{n}1", (), [f"{n}1"], {"test": f"id-{n}1"}) for n in ("a", "b", "c")]
            + [("hello", "id-v2", (("id-v2", 70), ("id-v1", 30)), ["v1", "v2", "v3", "v4", "v5"], {})],
        )
        count, infos = self.selects(self.store.functions)
        self.assertEqual(count, 3)
        self.assertEqual(
            [(f.name, f.latest, len(f.versions), f.aliases) for f in infos],
            [(n, f"{n}1", 1, (("test", f"{n}1"),)) for n in ("a", "b", "c")]
            + [("hello", "v2", 5, ())],
        )
        self.assertEqual(self.selects(lambda: self.store.function("hello"))[0], 3)

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

    def test_split_deployment(self):
        """
        A deployment over several versions becomes the function's split, newest first in
        its history, with the largest share as latest; it names existing versions only.
        (What deleting a member leaves serving: L{tests.test_platform}.)
        """
        self.publish("v1", at=1)
        self.publish("v2", at=2)
        self.publish("v3", at=3, deploy=False)
        routes = self.successResultOf(
            self.store.deploy("hello", [("id-v1", 10), ("id-v3", 90)], 4.0, "d-split", {"message": "m"})
        )
        self.assertEqual((routes.latest, routes.split), ("id-v3", (("id-v3", 90), ("id-v1", 10))))
        history = self.successResultOf(self.store.deployments("hello"))
        self.assertEqual(
            [(d.id, d.versions, d.metadata) for d in history],
            [
                ("d-split", (("id-v3", 90), ("id-v1", 10)), {"message": "m"}),
                ("d-v2", (("id-v2", 100),), {}),
                ("d-v1", (("id-v1", 100),), {}),
            ],
        )
        self.failureResultOf(self.store.deploy("hello", [("id-v9", 100)], 5.0, "d-x", {}), NoSuchVersion)

    def test_upload_only(self):
        """
        A version published without deploying is routable at its own host but does not
        become latest; its bindings read back without secret values.
        """
        self.publish("v1", at=1)
        routes = self.successResultOf(
            self.publish("v2", at=2, deploy=False, alias="next", metadata={"source": "wrangler"})
        )
        self.assertEqual((routes.latest, routes.versions["v2"], routes.aliases), ("id-v1", "id-v2", {"next": "id-v2"}))
        info = self.successResultOf(self.store.function("hello"))
        self.assertEqual(info.latest, "v1")
        self.assertEqual(info.versions[1].metadata, {"source": "wrangler"})

    def test_secrets_not_read_for_display(self):
        """
        Version listings carry secret bindings by name and type only; the spec the runtime
        reads has the value.
        """
        d = deployment("hello", "v1")
        d = attrs.evolve(d, bindings=(Binding("KEY", SECRET_TEXT, "s3cr3t"), Binding("A", PLAIN_TEXT, "a")))
        self.successResultOf(self.store.publish(d, spec_for(d, "id-v1"), 1.0, "d-1", None))
        info = self.successResultOf(self.store.function("hello"))
        self.assertEqual(
            info.versions[0].bindings, (Binding("A", PLAIN_TEXT, "a"), Binding("KEY", SECRET_TEXT, None))
        )
        spec = self.successResultOf(self.store.version_spec("id-v1"))
        self.assertEqual(spec.bindings[1], Binding("KEY", SECRET_TEXT, "s3cr3t"))

    def test_settings(self):
        """
        Settings are stored and replaced by key.
        """
        self.assertIsNone(self.successResultOf(self.store.get_setting("k")))
        self.successResultOf(self.store.put_setting("k", "1"))
        self.successResultOf(self.store.put_setting("k", "2"))
        self.assertEqual(self.successResultOf(self.store.get_setting("k")), "2")


class MigrationTests(SynchronousTestCase):
    """
    Databases written by older schemas are brought up to date without losing anything.
    """

    def test_from_first_schema(self):
        """
        A database written by the first schema keeps everything: each version's code
        becomes its one module, its env its plain-text bindings, and each function's latest
        version its current deployment.
        """
        path = os.path.join(tempfile.mkdtemp(), "db.sqlite3")
        connection = dbapi2.connect(path)
        connection.executescript(migrations()[0][1] + "PRAGMA user_version = 1;")
        connection.executescript(
            """
            INSERT INTO functions (id, name, key, created_at) VALUES (1, 'Hello', 'hello', 1);
            INSERT INTO versions VALUES ('id-1', 1, 'v1', 'v1', 'module',
                                         'export default {}', '{"B": "2", "A": "x"}', 1);
            INSERT INTO versions VALUES ('id-2', 1, 'v2', 'v2', 'service-worker', 'sw', '{}', 2);
            UPDATE functions SET latest_version_id = 'id-1';
            INSERT INTO aliases VALUES (1, 'test', 'test', 'id-2');
            """
        )
        connection.close()
        store = SQLiteStore(path, None, pool_factory=lambda path, reactor: InlinePool(path))
        self.assertEqual(self.successResultOf(store.open()), 1)
        self.addCleanup(store.close)
        one = self.successResultOf(store.version_spec("id-1"))
        self.assertEqual(one.modules, (Module("worker.js", "esModule", b"export default {}"),))
        self.assertEqual(one.bindings, (Binding("A", PLAIN_TEXT, "x"), Binding("B", PLAIN_TEXT, "2")))
        two = self.successResultOf(store.version_spec("id-2"))
        self.assertEqual((two.modules, two.bindings), ((Module("worker.js", SCRIPT, b"sw"),), ()))
        [routes] = self.successResultOf(store.routes())
        self.assertEqual(routes, FunctionRoutes("hello", "id-1", {"v1": "id-1", "v2": "id-2"}, {"test": "id-2"}))
        [current] = self.successResultOf(store.deployments("hello"))
        self.assertEqual((current.versions, current.created_at), ((("id-1", 100),), 1))


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
        d = deployment("hello", "v1", "test")
        await first.publish(d, spec_for(d, "id-1"), 5.0, "d-1", None)
        first.close()
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        second = SQLiteStore(path, reactor)
        self.assertEqual(await second.open(), len(migrations()))
        self.addCleanup(second.close)
        [routes] = await second.routes()
        self.assertEqual(routes, FunctionRoutes("hello", "id-1", {"v1": "id-1"}, {"test": "id-1"}))
