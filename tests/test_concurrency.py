"""
Changes to one function made at the same time, on the real store over an in-memory SQLite:
each one builds on the one before it, or fails with a Conflict; none is silently lost.

Starts are held open (L{FakeSupervisor.hold_starts}) so that the test decides the order in
which things happen.
"""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import Conflict, NoSuchFunction, StartFailed
from funcplane.model import SECRET_TEXT, Binding, script_modules
from funcplane.platform import Platform
from funcplane.routing import RouteTable
from tests.fakes import FakeSupervisor, deployment, memory_store

OLD = 'addEventListener("fetch", e => e.respondWith(new Response("old")))'
NEW = 'addEventListener("fetch", e => e.respondWith(new Response("new")))'


def put_secret(name, value):
    """
    A change of bindings (as L{Platform.change_bindings} takes) that sets secret C{name}.
    """
    binding = Binding(name, SECRET_TEXT, value)
    return lambda current: dict(current, **{name: binding})


class RacingStore:
    """
    The real store, with C{change} (which returns a Deferred) made on it just before the
    first C{publish} writes: a writer that does not share the platform's lock, such as
    another node.
    """

    def __init__(self, store, change):
        self._store = store
        self._change = change

    def __getattr__(self, name):
        return getattr(self._store, name)

    def publish(self, *args, **kwargs):
        change, self._change = self._change, None
        if change is not None:
            change()
        return self._store.publish(*args, **kwargs)


class ConcurrentChangeTests(SynchronousTestCase):
    """
    Two changes to one function asked for before the first has finished.
    """

    def setUp(self):
        self.clock = Clock()
        self.store = memory_store(self)
        self.supervisor = FakeSupervisor()
        self.routes = RouteTable("func.local")
        ids = (f"id-{i}" for i in range(1, 100))
        names = (f"gen{i}" for i in range(1, 100))
        self.platform = Platform(
            self.clock,
            self.store,
            self.supervisor,
            self.routes,
            new_id=lambda: next(ids),
            new_version_name=lambda: next(names),
        )
        self.call(self.platform.deploy(deployment("hello", "v1", code=OLD)))
        self.supervisor.hold_starts = True

    def call(self, coroutine):
        """
        C{coroutine} as a Deferred, the clock a second on so that versions are ordered.
        """
        self.clock.advance(1)
        return Deferred.fromCoroutine(coroutine)

    def ready(self, index):
        """
        The start at C{index} (in the order asked) succeeds.
        """
        spec, d = self.supervisor.starting[index]
        d.callback(None)
        return spec

    def latest_spec(self):
        """
        The spec of the version the function's own host is routed to, as stored.
        """
        latest = self.routes.resolve(b"hello.func.local")
        [stored] = self.successResultOf(self.store.routes())
        self.assertEqual(stored.latest, latest)
        return self.successResultOf(self.store.version_spec(latest))

    def secrets(self, spec):
        return {b.name: b.value for b in spec.bindings if b.type == SECRET_TEXT}

    def test_secret_changes_both_kept(self):
        """
        Two secret puts at once both answer, and the version that serves at the end has
        both secrets: the second is built on the version the first deployed, and it reads
        that version only once the first has published it.
        """
        first = self.call(self.platform.change_bindings("hello", put_secret("A", "1"), {}))
        second = self.call(self.platform.change_bindings("hello", put_secret("B", "2"), {}))
        self.assertEqual(len(self.supervisor.starting), 1)
        self.assertNoResult(second)
        self.ready(0)
        self.assertEqual(self.successResultOf(first).version, "gen1")
        self.assertEqual(len(self.supervisor.starting), 2)
        self.ready(1)
        self.assertEqual(self.successResultOf(second).version, "gen2")
        spec = self.latest_spec()
        self.assertEqual((spec.version, self.secrets(spec)), ("gen2", {"A": "1", "B": "2"}))

    def test_deploy_racing_secret_change(self):
        """
        A secret change asked for while a deploy of new code starts does not put the old
        code back: it builds on the new version, which then serves with the secret.
        """
        seed = self.call(self.platform.deploy(deployment("hello", None, code=NEW)))
        secret = self.call(self.platform.change_bindings("hello", put_secret("KEY", "k"), {}))
        self.assertEqual(len(self.supervisor.starting), 1)
        self.ready(0)
        self.assertEqual(self.successResultOf(seed).version, "gen1")
        self.ready(1)
        self.assertEqual(self.successResultOf(secret).version, "gen2")
        spec = self.latest_spec()
        self.assertEqual(spec.modules, script_modules(NEW, "service-worker"))
        self.assertEqual(self.secrets(spec), {"KEY": "k"})

    def test_failed_start_lets_the_next_change_run(self):
        """
        A change whose version fails to start answers its error, and the change waiting
        behind it then runs on what is stored, which the failure left as it was.
        """
        first = self.call(self.platform.change_bindings("hello", put_secret("A", "1"), {}))
        second = self.call(self.platform.change_bindings("hello", put_secret("B", "2"), {}))
        self.supervisor.starting[0][1].errback(StartFailed("Uncaught Error: no"))
        self.failureResultOf(first, StartFailed)
        self.ready(1)
        self.successResultOf(second)
        self.assertEqual(self.secrets(self.latest_spec()), {"B": "2"})

    def test_other_functions_not_held(self):
        """
        A change to one function does not wait for a change to another.
        """
        self.call(self.platform.deploy(deployment("hello", "v2")))
        other = self.call(self.platform.deploy(deployment("other", "v1")))
        self.assertEqual([s.function for s, _ in self.supervisor.starting], ["hello", "other"])
        self.ready(1)
        self.successResultOf(other)

    def test_every_change_waits(self):
        """
        Each kind of change to a function asked for while a deploy of it starts waits for
        that deploy: it asks nothing of the supervisor and writes nothing until the deploy
        has published, then runs on what the deploy left (the version it deployed exists
        for the change to name).
        """
        changes = {
            "deploy": lambda p: p.deploy(deployment("hello", "v3")),
            "change_bindings": lambda p: p.change_bindings("hello", put_secret("A", "1"), {}),
            "deploy_versions": lambda p: p.deploy_versions(
                "hello", [("id-1", 50), ("id-2", 50)], {}
            ),
            "rollback": lambda p: p.rollback("hello", "v1"),
            "set_alias": lambda p: p.set_alias("hello", "beta", "v2"),
            "delete_alias": lambda p: p.delete_alias("hello", "beta"),
            "delete_version": lambda p: p.delete_version("hello", "v1", force=True),
            "delete_function": lambda p: p.delete_function("hello"),
        }
        for name, change in changes.items():
            self.setUp()
            self.supervisor.hold_starts = False
            self.call(self.platform.set_alias("hello", "beta", "v1"))
            self.supervisor.hold_starts = True
            deploy = self.call(self.platform.deploy(deployment("hello", "v2")))
            asked = list(self.supervisor.asked)
            [before] = self.successResultOf(self.store.routes())
            d = self.call(change(self.platform))
            self.assertNoResult(d)
            self.assertEqual(self.supervisor.asked, asked, name)
            self.assertEqual(self.successResultOf(self.store.routes()), [before], name)
            self.ready(0)
            self.successResultOf(deploy)
            if name in ("deploy", "change_bindings"):
                self.ready(1)
            self.successResultOf(d)

    def test_rollback_during_deploy_kept(self):
        """
        A rollback asked for while a deploy starts is made after the deploy, so the
        version it rolled back to is the one serving at the end, as both answers say.
        """
        deploy = self.call(self.platform.deploy(deployment("hello", "v2")))
        rollback = self.call(self.platform.rollback("hello", "v1"))
        self.ready(0)
        self.successResultOf(deploy)
        self.assertEqual(self.successResultOf(rollback), ("hello", "v1"))
        self.assertEqual(self.latest_spec().version, "v1")

    def test_delete_function_during_deploy(self):
        """
        A function deleted while a deploy of it starts is deleted after that deploy: the
        version the deploy answered for goes with it, and nothing of the function is left.
        """
        deploy = self.call(self.platform.deploy(deployment("hello", "v2")))
        delete = self.call(self.platform.delete_function("hello"))
        self.ready(0)
        self.successResultOf(deploy)
        self.successResultOf(delete)
        self.failureResultOf(self.store.function("hello"), NoSuchFunction)
        self.assertEqual(self.supervisor.stopped, ["id-1", "id-2"])


class PublishCheckTests(SynchronousTestCase):
    """
    The store publishes a version only while the version it was built on is still the
    newest: a writer that does not share the platform's lock cannot be undone silently.
    """

    def setUp(self):
        self.clock = Clock()
        self.store = memory_store(self)
        self.supervisor = FakeSupervisor()
        self.routes = RouteTable("func.local")

    def platform(self, store):
        return Platform(
            self.clock, store, self.supervisor, self.routes, new_id=lambda: f"id-{self.next}"
        )

    def deploy(self, platform, version, **kwargs):
        self.clock.advance(1)
        self.next = version
        return Deferred.fromCoroutine(platform.deploy(deployment("hello", version, **kwargs)))

    def test_newer_version_meanwhile(self):
        """
        When another writer publishes a version while this deploy's version starts, the
        deploy fails with a Conflict that says what happened and what to do, its process
        is stopped, and the other writer's version stays the latest.
        """
        self.successResultOf(self.deploy(self.platform(self.store), "v1", env=(("A", "1"),)))
        other = self.platform(self.store)
        racing = self.platform(RacingStore(self.store, lambda: self.deploy(other, "v2")))
        failure = self.failureResultOf(self.deploy(racing, "v3"), Conflict)
        self.assertEqual(
            str(failure.value),
            "function hello changed while version v3 was being deployed (its newest version"
            " is now v2, not the one this deploy built on); nothing was deployed: send the"
            " change again",
        )
        self.assertEqual(self.supervisor.stopped, ["id-v3"])
        [routes] = self.successResultOf(self.store.routes())
        self.assertEqual((routes.latest, sorted(routes.versions)), ("id-v2", ["v1", "v2"]))

    def test_function_deleted_meanwhile(self):
        """
        A function deleted by another writer while a deploy builds on its old version is
        a Conflict too: the deploy does not bring it back with the old version's secrets.
        """
        self.successResultOf(self.deploy(self.platform(self.store), "v1"))

        def recreate():
            self.successResultOf(self.store.delete_function("hello"))

        racing = self.platform(RacingStore(self.store, recreate))
        failure = self.failureResultOf(self.deploy(racing, "v2"), Conflict)
        self.assertIn("(its newest version is now none,", str(failure.value))
        self.failureResultOf(self.store.function("hello"), NoSuchFunction)
