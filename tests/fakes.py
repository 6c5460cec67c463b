"""
Fakes for funcplane's seams.  Each is checked against its interface when this module is
imported, so a fake cannot drift from what it stands in for.
"""

import signal

from pysqlite3 import dbapi2
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyClass

from funcplane.interfaces import IChild, IRuntimeLauncher, ISupervisor, ITailSink
from funcplane.model import Deployment, VersionSpec, script_modules, text_bindings
from funcplane.runtime.process import CONFIG_FD, _Observers
from funcplane.store.database import connected
from funcplane.store.sqlite import SQLiteStore

TOKEN = "test-token-0123456789abcdef0123456789"
AUTH = {b"Authorization": [b"Bearer " + TOKEN.encode()]}


@implementer(IChild)
class FakeChild:
    """
    A child whose life the test drives: L{become_ready}, L{fail_start}, L{exit}.
    """

    _next_pid = 1000

    def __init__(self, spec):
        FakeChild._next_pid += 1
        self.spec = spec
        self.pid = FakeChild._next_pid
        self.socket_path = f"/run/{spec.id}.sock"
        self.signals = []
        self.grace = None
        self._ready = _Observers()
        self._ended = _Observers()

    def become_ready(self):
        self._ready.fire(self)

    def fail_start(self, error):
        self._ready.fire(error)
        self.exit(ProcessTerminated(1))

    def exit(self, reason=None):
        self.pid = None
        if not self._ready.done:
            self._ready.fire(reason)
        self._ended.fire(reason or ProcessDone(0))

    def when_ready(self):
        def check(result):
            if isinstance(result, Exception):
                raise result
            return result

        return self._ready.when().addCallback(check)

    def when_ended(self):
        return self._ended.when()

    def stderr_tail(self):
        return ["last words"]

    def stop(self, grace):
        self.signals.append(signal.SIGTERM)
        self.grace = grace
        return self.when_ended()

    def signal(self, signum):
        if self.pid is not None:
            self.signals.append(signum)


@implementer(IRuntimeLauncher)
class FakeLauncher:
    """
    Records launches.  With C{auto_ready}, every child is ready at once and exits when
    stopped.
    """

    def __init__(self, auto_ready=False):
        self.launched = []
        self.auto_ready = auto_ready

    def launch(self, spec):
        child = FakeChild(spec)
        self.launched.append(child)
        if self.auto_ready:
            child.become_ready()
            original = child.stop

            def stop(grace, child=child, original=original):
                d = original(grace)
                child.exit()
                return d

            child.stop = stop
        return child

    def running(self):
        return [c for c in self.launched if c.pid is not None]


verifyClass(IChild, FakeChild)
verifyClass(IRuntimeLauncher, FakeLauncher)


class InlinePool:
    """
    Stands in for C{adbapi.ConnectionPool}: runs each interaction at once, on the calling
    thread, against an in-memory database (or the file C{path}), so store tests need no
    threads and no reactor.  C{statements} is every SQL statement run, in order, so a test
    can count the queries a read costs.
    """

    def __init__(self, path=None, reactor=None):
        self._connection = dbapi2.connect(path or ":memory:")
        connected(self._connection)
        self.statements = []
        self._connection.set_trace_callback(self.statements.append)
        self.closed = False

    def runInteraction(self, interaction, *args, **kwargs):
        cursor = self._connection.cursor()
        try:
            result = interaction(cursor, *args, **kwargs)
        except BaseException:
            self._connection.rollback()
            return fail()
        self._connection.commit()
        return succeed(result)

    def runOperation(self, sql, *args):
        return self.runInteraction(lambda cursor: cursor.execute(sql, *args) and None)

    def close(self):
        self.closed = True
        self._connection.close()


def memory_store(test_case):
    """
    An opened L{SQLiteStore} on an L{InlinePool}.
    """
    store = SQLiteStore(":memory:", None, pool_factory=InlinePool)
    test_case.successResultOf(store.open())
    return store


def deployment(
    function="hello", version="v1", alias=None, code=None, env=(), fmt="service-worker", **kwargs
):
    """
    A L{Deployment} with defaults for what a test does not care about.
    """
    code = code or 'addEventListener("fetch", e => e.respondWith(new Response("hi")))'
    return Deployment(
        function=function,
        format=fmt,
        modules=script_modules(code, fmt),
        bindings=text_bindings(env),
        version=version,
        alias=alias,
        **kwargs,
    )


def spec_for(deployment, version_id):
    """
    The L{VersionSpec} a platform would make of C{deployment} (which names its version),
    with nothing inherited.
    """
    return VersionSpec(
        id=version_id,
        function=deployment.function,
        version=deployment.version,
        format=deployment.format,
        modules=deployment.modules,
        bindings=deployment.bindings,
        compatibility_date=deployment.compatibility_date,
        compatibility_flags=deployment.compatibility_flags,
        assets=deployment.assets,
    )


def spec(version_id="id1", function="hello", version="v1", env=()):
    return VersionSpec(
        id=version_id,
        function=function,
        version=version,
        format="module",
        modules=script_modules("c", "module"),
        bindings=text_bindings(env),
    )


class FakeProcessReactor(MemoryReactorClock):
    """
    A L{MemoryReactorClock} that records C{spawnProcess} calls and hands back a transport
    whose signals the test can read.
    """

    def __init__(self):
        super().__init__()
        self.spawned = []

    def spawnProcess(self, protocol, executable, args=(), env=None, path=None, uid=None,
                     gid=None, usePTY=False, childFDs=None):
        transport = FakeProcessTransport(protocol)
        # Read the config now, as the child would: the launcher closes its copy after spawning.
        with open(f"/proc/self/fd/{childFDs[CONFIG_FD]}", "rb") as f:
            config = f.read()
        self.spawned.append(
            dict(protocol=protocol, executable=executable, args=list(args), env=env, path=path,
                 childFDs=dict(childFDs), config=config, transport=transport)
        )
        protocol.makeConnection(transport)
        return transport


class FakeProcessTransport:
    """
    The process transport L{FakeProcessReactor} returns.
    """

    def __init__(self, protocol):
        self.protocol = protocol
        self.pid = 4242
        self.signals = []

    def signalProcess(self, signum):
        if self.pid is None:
            raise ProcessExitedAlready()
        self.signals.append(signum)

    def closeStdin(self):
        pass

    def loseConnection(self):
        pass

    def exit(self, reason):
        self.pid = None
        self.protocol.processEnded(Failure(reason))


@implementer(ISupervisor)
class FakeSupervisor:
    """
    Hands out socket paths by version id, at once or when the test fires C{held}; records
    what the platform asks of it.  C{start} succeeds at once, or fails with C{start_error};
    with C{hold_starts}, it returns a Deferred that the test fires, kept with its spec in
    C{starting}.
    """

    def __init__(self):
        self.asked = []
        self.held = None
        self.result = None
        self.in_flight = {}
        self.timed_out = []
        self.stopped = []
        self.retired = []
        self.hold_starts = False
        self.starting = []
        self.start_error = None

    def lease(self, version_id):
        self.in_flight[version_id] = self.in_flight.get(version_id, 0) + 1
        return Lease(self, version_id)

    def request_timed_out(self, version_id):
        self.timed_out.append(version_id)

    def running_socket(self, version_id):
        if self.result is None and self.held is None:
            self.asked.append(version_id)
            return f"/run/{version_id}.sock"
        return None

    def ensure_running(self, version_id):
        self.asked.append(version_id)
        if self.result is not None:
            return self.result
        if self.held is not None:
            return self.held.addCallback(lambda _: f"/run/{version_id}.sock")
        return succeed(f"/run/{version_id}.sock")

    def start(self, spec):
        self.asked.append(spec.id)
        if self.start_error is not None:
            return fail(self.start_error)
        if self.hold_starts:
            d = Deferred()
            self.starting.append((spec, d))
            return d
        return succeed(None)

    def retire(self, version_id):
        self.retired.append(version_id)

    def stop(self, version_id):
        self.stopped.append(version_id)
        return succeed(None)

    def forget(self, version_id):
        return self.stop(version_id)

    def runtime(self, version_id):
        return None

    def has_room(self):
        return True


class Lease:
    """
    One request counted in flight by a L{FakeSupervisor}.
    """

    def __init__(self, supervisor, version_id):
        self.supervisor = supervisor
        self.version_id = version_id
        self.released = False

    def release(self):
        assert not self.released, "released twice"
        self.released = True
        self.supervisor.in_flight[self.version_id] -= 1


@implementer(ITailSink)
class RecordingTails:
    """
    Stands in for L{funcplane.observe.tails.Tails}: records what the proxy reports.
    """

    def __init__(self, active=True):
        self.active = active
        self.watched = {b"hello.func.local": "hello", b"v1.hello.func.local": "hello"}
        self.done = []

    def watching(self, host):
        return self.watched.get(host)

    def request_done(self, traced):
        self.done.append(traced)


verifyClass(ISupervisor, FakeSupervisor)
verifyClass(ITailSink, RecordingTails)
