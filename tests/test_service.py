"""
The parts of funcplane's service tree, each started and stopped on its own, and the boot
work the routes part owns.
"""

import errno
import os
import shutil
import signal
import tempfile

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer
from zope.interface.verify import verifyClass, verifyObject

from funcplane import tap
from funcplane.admin.auth import TokenSource
from funcplane.datadir import DataDirectory, DataDirInUse, lock_data_dir
from funcplane.errors import Unauthorized
from funcplane.ordered import OrderedMultiService
from funcplane.platform import Platform
from funcplane.routing import RouteTable
from funcplane.runtime.lifecycle import RUNNING, Lifecycle
from funcplane.interfaces import IRuntimeLauncher
from funcplane.runtime.config import ConfigBuilder, RuntimeSettings, load_schema
from funcplane.runtime.egress import EgressPolicy
from funcplane.runtime.host import ChildRuntime, RuntimeChoices
from funcplane.runtime.limits import ChildLimits, IChildLimits
from funcplane.runtime.supervisor import Supervisor
from funcplane.service import (
    AdminToken,
    CannotListen,
    FuncplaneService,
    Listener,
    RouteLoader,
    Settings,
)
from tests.fakes import FakeLauncher, FakeProcessReactor, memory_store, spec
from tests.test_start_latest import functions
from tests.test_tap import FakeReactor


@implementer(IChildLimits)
class FakeLimits:
    """
    What L{ChildRuntime} detects, recording what is asked of it.
    """

    applied = ["memory 1024 MiB (fake)"]
    missing = ["CPU is not limited (fake)"]

    def __init__(self):
        self.cleaned = 0
        self.closed = False
        self.confined = []

    def confine(self, pid, name):
        self.confined.append((pid, name))
        return "confinement"

    def clean(self):
        self.cleaned += 1
        return 2

    def close(self):
        self.closed = True


verifyClass(IChildLimits, FakeLimits)


class RoutesStore:
    """
    A store that knows only every function's routes.
    """

    def __init__(self, all_routes):
        self._routes = all_routes

    def routes(self):
        return succeed(self._routes)


def token_request(token):
    request = DummyRequest([b""])
    request.requestHeaders.addRawHeader(b"authorization", b"Bearer " + token)
    return request


class DataDirectoryTests(SynchronousTestCase):
    def setUp(self):
        self.path = os.path.abspath(self.mktemp())

    def test_held(self):
        """
        Starting creates the directory and its run/ readable by funcplane only and takes
        the lock: another on the same directory fails with DataDirInUse, naming the pid
        that holds it; once the first stops, the directory can be taken again.
        """
        first = DataDirectory(self.path)
        first.startService()
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o700)
        self.assertEqual(os.stat(first.run_dir).st_mode & 0o777, 0o700)
        second = DataDirectory(self.path)
        error = self.assertRaises(DataDirInUse, second.startService)
        self.assertIn(f"pid {os.getpid()}", str(error))
        second.stopService()
        first.stopService()
        os.close(lock_data_dir(self.path))

    def test_stale_sockets(self):
        """
        Sockets an earlier funcplane left in run/ are removed at start, and the log says
        how many.
        """
        os.makedirs(os.path.join(self.path, "run"))
        stale = os.path.join(self.path, "run", "0123.sock")
        open(stale, "w").close()
        part = DataDirectory(self.path)
        with capturedLogs() as events:
            part.startService()
        self.addCleanup(part.stopService)
        self.assertFalse(os.path.exists(stale))
        self.assertEqual(
            [(e["orphans"], e["sockets"]) for e in events if "sockets" in e], [(0, 1)]
        )
        self.assertEqual(
            [formatEvent(e) for e in events], ["an earlier funcplane did not stop cleanly: removed 1 stale socket"]
        )


class AdminTokenTests(SynchronousTestCase):
    def test_decided_at_start(self):
        """
        Until it has started no request passes, not even one with the right token (its
        hash is not known yet); once started, the token passes and another is refused.
        """
        secret = "s3cret-0123456789abcdef0123456789abcdef"
        source = TokenSource(memory_store(self), self.mktemp(), {"FUNCPLANE_ADMIN_TOKEN": secret})
        token = AdminToken(source)
        self.assertRaises(Unauthorized, token.check, token_request(secret.encode()))
        self.successResultOf(token.startService())
        token.check(token_request(secret.encode()))
        error = self.assertRaises(Unauthorized, token.check, token_request(b"guess"))
        self.assertEqual(str(error), "the admin token is not valid")


class FakeMachine:
    """
    Answers what L{ChildRuntime} asks this machine, recording the questions.
    """

    def __init__(self):
        self.asked = []
        self.detected = FakeLimits()

    def setpriv(self):
        self.asked.append("setpriv")
        return "/usr/bin/setpriv"

    def env(self):
        self.asked.append("env")
        return "/usr/bin/env"

    def user(self):
        self.asked.append("user")
        return (65534, 65534)

    def egress(self, allowed):
        self.asked.append(("egress", allowed))
        return EgressPolicy(allowed=(), denied_hosts=())

    def schema(self):
        self.asked.append("schema")
        return load_schema()

    def limits(self, limits, data_dir):
        self.asked.append(("limits", limits, data_dir))
        return self.detected

    def newest_date(self, reactor, workerd, directory):
        self.asked.append(("newest_date", workerd))
        return succeed("2026-11-24")


class ChildRuntimeTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeProcessReactor()
        # 2026-12-01, UTC: versions' compatibility dates are checked against today.
        self.reactor.advance(1796083200)
        self.machine = FakeMachine()
        self.run_dir = tempfile.mkdtemp(prefix="fp")
        self.addCleanup(shutil.rmtree, self.run_dir, True)
        os.makedirs(os.path.join(self.run_dir, "children"))
        self.runtime = ChildRuntime(
            self.reactor,
            RuntimeChoices(
                workerd="/opt/workerd",
                run_dir=self.run_dir,
                data_dir="/data",
                egress_allow=("10.1.0.0/16",),
            ),
            machine=self.machine,
            in_thread=lambda f, *args: succeed(f(*args)),
        )

    def test_asks_the_machine_at_start(self):
        """
        Building the part asks the machine nothing and no child can be launched; starting
        it finds setpriv, the children's user, the host's addresses, the schema and the
        kernel limits, kills an earlier funcplane's leftovers and logs what applies and
        what does not.
        """
        verifyObject(IRuntimeLauncher, self.runtime)
        self.assertEqual(self.machine.asked, [])
        self.assertRaises(RuntimeError, self.runtime.launch, spec())
        with capturedLogs() as events:
            self.runtime.startService()
        self.assertEqual(
            self.machine.asked,
            [
                "setpriv",
                "user",
                ("egress", ("10.1.0.0/16",)),
                ("limits", ChildLimits(), "/data"),
                "schema",
                "env",
                ("newest_date", "/opt/workerd"),
            ],
        )
        self.assertEqual(self.machine.detected.cleaned, 1)
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "workerd children run as uid 65534, gid 65534",
                "killed 2 workerd processes an earlier funcplane left in its cgroups",
                "each workerd child is limited to: memory 1024 MiB (fake); JS heap 128 MiB (V8)",
                "CPU is not limited (fake)",
                "versions may ask for compatibility dates up to 2026-11-24; the default is 2026-11-01",
            ],
        )

    def test_launches_once_started(self):
        """
        Once started, a launch spawns workerd through env and setpriv as the children's
        user, and the child is confined by what was detected; stopping removes
        funcplane's cgroups and launches nothing more.
        """
        self.runtime.startService()
        child = self.runtime.launch(spec())
        [(executable, args)] = [(p["executable"], p["args"]) for p in self.reactor.spawned]
        self.assertEqual(executable, "/usr/bin/env")
        self.assertEqual(args[2:6], ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        self.assertIn("/opt/workerd", args)
        self.assertEqual(self.machine.detected.confined, [(child.pid, os.path.basename(child.socket_path)[:-5])])
        self.assertFalse(self.machine.detected.closed)
        self.runtime.stopService()
        self.assertTrue(self.machine.detected.closed)
        self.assertRaises(RuntimeError, self.runtime.launch, spec())

    def test_heap_limit(self):
        """
        The heap limit chosen (--child-heap-mb) is the V8 flag in every child's config,
        and the start-up line says it.
        """
        runtime = ChildRuntime(
            self.reactor,
            RuntimeChoices(workerd="/opt/workerd", run_dir=self.run_dir, data_dir="/data", heap_limit_mb=64),
            machine=self.machine,
            in_thread=lambda f, *args: succeed(f(*args)),
        )
        with capturedLogs() as events:
            runtime.startService()
        self.addCleanup(runtime.stopService)
        [limits] = [formatEvent(e) for e in events if "heap" in e]
        self.assertTrue(limits.endswith("; JS heap 64 MiB (V8)"), limits)
        runtime.launch(spec())
        [spawned] = self.reactor.spawned
        reader = ConfigBuilder(RuntimeSettings(egress=None), load_schema())
        self.assertEqual(reader.read(spawned["config"])["v8Flags"], ["--max-old-space-size=64"])


class ListenerTests(SynchronousTestCase):
    def test_listens_while_running(self):
        """
        The listener listens on its description only once it starts, and stops listening
        when it stops.
        """
        reactor = MemoryReactorClock()
        factory = Factory()
        listener = Listener(reactor, "tcp:8081:interface=127.0.0.1", factory)
        self.assertEqual(reactor.tcpServers, [])
        self.successResultOf(listener.startService())
        self.assertEqual(reactor.tcpServers, [(8081, factory, 50, "127.0.0.1")])
        self.assertEqual(listener.port.getHost().port, 8081)
        self.successResultOf(maybeDeferred(listener.stopService))
        self.assertIsNone(listener.port)

    def test_cannot_listen(self):
        """
        A port that cannot be listened on fails the start with L{CannotListen}, which says
        what was wrong and what to do, in one line.
        """
        for number, advice in [
            (errno.EADDRINUSE, "(address already in use): stop what listens there, or choose another --port"),
            (errno.EACCES, "(permission denied): ports below 1024 need root or CAP_NET_BIND_SERVICE;"
                           " choose another --port"),
            (errno.ENOBUFS, "(no buffer space available): choose another --port"),
        ]:
            listener = Listener(RefusingReactor(number), "tcp:80:interface=127.0.0.1", Factory())
            error = self.failureResultOf(listener.startService(), CannotListen).value
            self.assertEqual(str(error), f"cannot listen on tcp:80:interface=127.0.0.1 {advice}")
            self.assertIsNone(listener.port)


class RefusingReactor(MemoryReactorClock):
    """
    A reactor on which every TCP port is refused with C{errno}.
    """

    def __init__(self, number):
        super().__init__()
        self._errno = number

    def listenTCP(self, port, factory, backlog=50, interface=""):
        raise CannotListenError(interface, port, OSError(self._errno, os.strerror(self._errno)))


class BootWorkTests(SynchronousTestCase):
    """
    The routes part loads the route table and starts the latest versions in the
    background; it owns that work, so that once stopping begins no child is spawned.
    """

    def build(self, launcher, count=10):
        self.launcher = launcher
        clock = Clock()
        self.supervisor = Supervisor(
            clock, launcher, lambda version_id: succeed(spec(version_id=version_id)), Lifecycle()
        )
        self.routes = RouteTable("func.local")
        platform = Platform(clock, RoutesStore(functions(count)), self.supervisor, self.routes)
        self.loader = RouteLoader(platform)
        self.tree = OrderedMultiService()
        for name, part in [("supervisor", self.supervisor), ("routes", self.loader)]:
            part.setName(name)
            part.setServiceParent(self.tree)

    def test_loaded(self):
        """
        Once the routes part has started, every function routes, and the first four latest
        versions are starting.
        """
        self.build(FakeLauncher())
        self.successResultOf(self.tree.startService())
        self.assertEqual(self.loader.functions, 10)
        self.assertEqual(self.routes.resolve(b"f7.func.local"), "id7")
        self.assertEqual([c.spec.id for c in self.launcher.launched], ["id0", "id1", "id2", "id3"])

    def test_stop_cancels_boot_work(self):
        """
        Stopping while the latest versions start spawns no further child, not even when
        the starts under way end: those children are stopped once they are ready, and the
        stop fires only once they have exited.
        """
        self.build(FakeLauncher())
        self.successResultOf(self.tree.startService())
        with capturedLogs() as events:
            stopped = self.tree.stopService()
            self.assertNoResult(stopped)
            for child in list(self.launcher.launched):
                child.become_ready()
            self.assertEqual(len(self.launcher.launched), 4)
            self.assertEqual([c.signals for c in self.launcher.launched], [[signal.SIGTERM]] * 4)
            self.assertNoResult(stopped)
            for child in self.launcher.launched:
                child.exit()
            self.successResultOf(stopped)
        self.assertEqual(len(self.launcher.launched), 4)
        self.assertEqual([e for e in events if "log_failure" in e], [])

    def test_stop_after_boot_work(self):
        """
        Once the boot work is done, stopping stops every child it started.
        """
        self.build(FakeLauncher(auto_ready=True))
        self.successResultOf(self.tree.startService())
        self.assertEqual([self.supervisor.state(f"id{i}") for i in range(10)], [RUNNING] * 10)
        self.successResultOf(self.tree.stopService())
        self.assertEqual(self.launcher.running(), [])
        self.assertEqual(len(self.launcher.launched), 10)


class FuncplaneServiceTests(SynchronousTestCase):
    def test_failed_start(self):
        """
        When a part cannot start, ready fails with its reason, the parts after it never
        start (the database is not even created) and the tree is not running.
        """
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        held = lock_data_dir(data_dir)
        self.addCleanup(os.close, held)
        service = FuncplaneService(
            MemoryReactorClock(), Settings(listen="tcp:8081", data_dir=data_dir, workerd="/bin/workerd")
        )
        started = service.startService()
        self.successResultOf(started)
        self.failureResultOf(service.ready, DataDirInUse)
        self.assertFalse(service.running)
        self.assertEqual([part.running for part in service], [0] * len(list(service)))
        self.assertFalse(os.path.exists(service.data_dir.database))

    def test_serving_line(self):
        """
        Once started, one line says how many functions are served, where, and under
        which domain, in plain words for one function as for several.
        """
        service = FuncplaneService(
            MemoryReactorClock(), Settings(listen="tcp:8081", data_dir="/nonexistent", workerd="/bin/workerd")
        )
        lines = []
        for count in (1, 2):
            service.route_loader.functions = count
            service.ready = Deferred()
            with capturedLogs() as events:
                service._settled(None)
            lines.extend(formatEvent(e) for e in events)
        self.assertEqual(
            lines,
            ["funcplane serves 1 function on tcp:8081; function hosts are *.func.local",
             "funcplane serves 2 functions on tcp:8081; function hosts are *.func.local"],
        )


class LogRenderingTests(SynchronousTestCase):
    def test_no_python_reprs(self):
        """
        What the tree's own parts log at start, at stop and when they fail reads as text:
        no bytes literal (C{b'...'}) and no object repr (C{<... at 0x...>}) in any line.
        """
        path = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(path, "run"))
        open(os.path.join(path, "run", "0123.sock"), "w").close()
        run_dir = tempfile.mkdtemp(prefix="fp")
        self.addCleanup(shutil.rmtree, run_dir, True)
        os.makedirs(os.path.join(run_dir, "children"))
        runtime = ChildRuntime(
            FakeProcessReactor(),
            RuntimeChoices(workerd="/opt/workerd", run_dir=run_dir, data_dir=path),
            machine=FakeMachine(),
            in_thread=lambda f, *args: succeed(f(*args)),
        )
        service = FuncplaneService(
            MemoryReactorClock(), Settings(listen="tcp:8081", data_dir=path, workerd="/bin/workerd")
        )
        broken = Service()
        broken.setName("broken")
        broken.stopService = lambda: 1 / 0
        tree = OrderedMultiService()
        broken.setServiceParent(tree)
        listener = Listener(RefusingReactor(errno.EADDRINUSE), "tcp:8081", Factory())
        with capturedLogs() as events:
            data_dir = DataDirectory(path)
            data_dir.startService()
            data_dir.stopService()
            runtime.startService()
            runtime.stopService()
            service._settled(None)
            self.successResultOf(tree.startService())
            self.successResultOf(tree.stopService())
            refused = self.failureResultOf(listener.startService(), CannotListen)
            tap._could_not_start(refused, FakeReactor(), lambda *args: None)
            tap._could_not_start(Failure(KeyError(b"key")), FakeReactor(), lambda *args: None)
        self.flushLoggedErrors(ZeroDivisionError, KeyError)
        lines = [formatEvent(e) for e in events]
        self.assertEqual(len(lines), 10, lines)
        for line in lines:
            self.assertNotRegex(line, r"\bb'|\bb\"| at 0x")
