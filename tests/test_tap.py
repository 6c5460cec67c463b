import ast
import importlib.metadata
import io
import os
import shutil
import sys
import tempfile

import twisted

from twisted.application.service import IServiceMaker
from twisted.internet.error import ReactorNotRunning
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.plugin import getPlugins
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.scripts._twistd_unix import ServerOptions
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import funcplane
from funcplane import tap
from funcplane.datadir import DataDirInUse, lock_data_dir
from funcplane.edge.listener import ProxyLimits
from funcplane.ordered import StoppedWhileStarting
from funcplane.runtime.limits import MiB, ChildLimits
from funcplane.service import CannotListen, FuncplaneService


def fake_workerd(test_case):
    path = os.path.join(test_case.mktemp())
    with open(path, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(path, 0o755)
    return os.path.abspath(path)


class PluginTests(SynchronousTestCase):
    def test_plugin(self):
        """
        twistd finds the funcplane plugin, and it provides IServiceMaker.
        """
        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("funcplane", makers)
        verifyObject(IServiceMaker, makers["funcplane"])
        self.assertIs(makers["funcplane"].options, tap.Options)


class OptionsTests(SynchronousTestCase):
    def parse(self, *args):
        options = tap.Options()
        options.parseOptions(["--workerd", fake_workerd(self), "--data-dir", "/tmp/fpd", *args])
        return options

    def test_defaults(self):
        """
        By default funcplane listens on tcp:8081, function URLs carry :8081, hosts end in
        func.local and the data directory is absolute.
        """
        options = self.parse()
        settings = tap.settings_from(options)
        self.assertEqual((settings.listen, settings.public_port, settings.domain, settings.data_dir),
                         ("tcp:8081", 8081, "func.local", "/tmp/fpd"))
        self.assertEqual((settings.startup_timeout, settings.stop_grace, settings.egress_allow), (5.0, 10.0, ()))
        self.assertEqual(
            (settings.idle_timeout, settings.scale_to_zero, settings.max_running, settings.request_timeout),
            (300.0, False, None, 60.0),
        )

    def test_lifecycle(self):
        """
        The idle timeout, scale-to-zero, the running budget and the request timeout reach the
        settings as numbers.
        """
        settings = tap.settings_from(
            self.parse("--idle-timeout", "30", "--scale-to-zero", "--max-running", "50", "--request-timeout", "5")
        )
        self.assertEqual(
            (settings.idle_timeout, settings.scale_to_zero, settings.max_running, settings.request_timeout),
            (30.0, True, 50, 5.0),
        )
        limits = tap.settings_from(
            self.parse("--max-header-bytes", "1000", "--max-url-bytes", "200", "--max-body-bytes", "5",
                       "--max-response-header-bytes", "300", "--header-timeout", "2", "--keep-alive-timeout", "9")
        ).proxy_limits
        self.assertEqual(
            (limits.head_bytes, limits.target_bytes, limits.body_bytes, limits.response_head_bytes,
             limits.head_seconds, limits.idle_seconds),
            (1000, 200, 5, 300, 2.0, 9.0),
        )
        self.assertEqual(tap.settings_from(self.parse()).proxy_limits, ProxyLimits())
        self.assertEqual(
            tap.settings_from(self.parse("--max-connections-per-ip", "0")).proxy_limits.connections_per_ip, 0
        )
        for bad in [("--max-connections-per-ip", "-1"), ("--max-body-bytes", "0"), ("--max-url-bytes", "x"), ("--header-timeout", "0"),
                    ("--max-running", "0"), ("--max-running", "x"), ("--idle-timeout", "-1"), ("--request-timeout", "0")]:
            self.assertRaises(UsageError, self.parse, *bad)

    def test_port_descriptions(self):
        """
        A bare number is TCP; other strports descriptions pass through; the public port
        follows TCP ports and defaults to 80 otherwise; --public-port overrides.
        """
        self.assertEqual(self.parse("--port", "9000")["listen"], "tcp:9000")
        options = self.parse("--port", "tcp:8082:interface=127.0.0.1")
        self.assertEqual((options["listen"], options["public-port"]), ("tcp:8082:interface=127.0.0.1", 8082))
        self.assertEqual(self.parse("--port", "unix:/tmp/fp.sock")["public-port"], 80)
        self.assertEqual(self.parse("--public-port", "80")["public-port"], 80)

    def test_egress_allow(self):
        """
        --egress-allow is repeatable and must be a network.
        """
        self.assertEqual(self.parse("--egress-allow", "127.0.0.1/32", "--egress-allow", "10.0.0.0/8")["egress-allow"],
                         ["127.0.0.1/32", "10.0.0.0/8"])
        self.assertRaises(UsageError, self.parse, "--egress-allow", "nonsense")

    def test_trusted_proxy(self):
        """
        --trusted-proxy is repeatable, none by default, and refuses what is not a network.
        """
        settings = tap.settings_from(self.parse("--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1"))
        self.assertEqual(settings.trusted_proxies, ("10.0.0.0/8", "::1"))
        self.assertEqual(tap.settings_from(self.parse()).trusted_proxies, ())
        self.assertRaises(UsageError, self.parse, "--trusted-proxy", "lb.example")

    def test_freeze_after(self):
        """
        --freeze-after is 30 s by default, 0 turns freezing off, and anything but a
        non-negative number is refused.
        """
        self.assertEqual(tap.settings_from(self.parse()).freeze_after, 30.0)
        self.assertEqual(tap.settings_from(self.parse("--freeze-after", "2.5")).freeze_after, 2.5)
        self.assertIsNone(tap.settings_from(self.parse("--freeze-after", "0")).freeze_after)
        self.assertRaises(UsageError, self.parse, "--freeze-after", "soon")
        self.assertRaises(UsageError, self.parse, "--freeze-after", "-1")

    def test_child_limits(self):
        """
        Each child gets 1 GiB and one core unless told otherwise; 0 turns a limit off;
        less memory than a child needs to start, or a CPU share that is not a number, is
        a usage error that says what is wanted.
        """
        self.assertEqual(tap.settings_from(self.parse()).child_limits, ChildLimits(1024 * MiB, 1.0))
        settings = tap.settings_from(self.parse("--child-memory-mb", "1024", "--child-cpu", "0.25"))
        self.assertEqual(settings.child_limits, ChildLimits(1024 * MiB, 0.25))
        settings = tap.settings_from(self.parse("--child-memory-mb", "0", "--child-cpu", "0"))
        self.assertEqual(settings.child_limits, ChildLimits(None, None))
        for args in (["--child-memory-mb", "100"], ["--child-memory-mb", "1.5"], ["--child-cpu", "half"],
                     ["--child-cpu", "-1"]):
            self.assertRaises(UsageError, self.parse, *args)
        error = self.assertRaises(UsageError, self.parse, "--child-memory-mb", "64")
        self.assertIn("at least 192", str(error))

    def test_child_heap(self):
        """
        Each child's V8 heap is 128 MiB unless --child-heap-mb says otherwise; less than
        16 MiB, or what is not a whole number, is refused, and so is a heap that leaves
        workerd less than 64 MiB of --child-memory-mb (without a memory limit any heap
        of at least 16 MiB goes).
        """
        self.assertEqual(tap.settings_from(self.parse()).child_heap_mb, 128)
        self.assertEqual(tap.settings_from(self.parse("--child-heap-mb", "16")).child_heap_mb, 16)
        self.assertEqual(
            tap.settings_from(self.parse("--child-memory-mb", "0", "--child-heap-mb", "4096")).child_heap_mb,
            4096,
        )
        self.assertEqual(
            tap.settings_from(self.parse("--child-memory-mb", "192", "--child-heap-mb", "128")).child_heap_mb,
            128,
        )
        for bad in ["15", "0", "x", "1.5", "-128", ""]:
            error = self.assertRaises(UsageError, self.parse, "--child-heap-mb", bad)
            self.assertEqual(str(error), "--child-heap-mb must be a whole number of MiB, at least 16")
        error = self.assertRaises(UsageError, self.parse, "--child-memory-mb", "192", "--child-heap-mb", "129")
        self.assertIn("give the heap at most 128 MiB, or raise --child-memory-mb", str(error))

    def test_compatibility_date(self):
        """
        The compatibility date is a calendar date; anything else (which would reach
        workerd's config) is a usage error.
        """
        self.assertEqual(tap.settings_from(self.parse("--compatibility-date", "2025-06-01")).compatibility_date,
                         "2025-06-01")
        for bad in ["2025-6-1", "2025-02-30", "2025-06-01\nexperimental", "", "20250601"]:
            self.assertRaises(UsageError, self.parse, "--compatibility-date", bad)

    def test_compatibility_flags(self):
        """
        The allow and deny lists of compatibility flags are comma-separated flag names;
        without them any flag is allowed and none denied; a name that is not a flag's is
        refused.
        """
        default = tap.settings_from(self.parse())
        self.assertEqual((default.flags_allowed, default.flags_denied), (None, frozenset()))
        given = tap.settings_from(
            self.parse("--compatibility-flags-allowed", "nodejs_compat, nodejs_als,",
                       "--compatibility-flags-denied", "url_standard")
        )
        self.assertEqual(
            (given.flags_allowed, given.flags_denied),
            (frozenset({"nodejs_compat", "nodejs_als"}), frozenset({"url_standard"})),
        )
        for bad in ("NodeJS", "node-compat", "a b", "nodé", "1flag"):
            e = self.assertRaises(UsageError, self.parse, "--compatibility-flags-allowed", bad)
            self.assertIn("is not a compatibility flag name", str(e))

    def test_bad_values(self):
        """
        Non-positive timeouts, a non-numeric public port and an over-long data directory are
        usage errors.
        """
        self.assertRaises(UsageError, self.parse, "--startup-timeout", "0")
        self.assertRaises(UsageError, self.parse, "--stop-grace", "x")
        self.assertRaises(UsageError, self.parse, "--public-port", "http")
        self.assertRaises(UsageError, self.parse, "--data-dir", "/tmp/" + "d" * 80)

    def test_missing_workerd(self):
        """
        A missing workerd is a usage error that says how to install it.
        """
        options = tap.Options()
        e = self.assertRaises(UsageError, options.parseOptions, ["--workerd", "/nonexistent/workerd"])
        self.assertIn("does not exist", str(e))

    def test_make_service_builds_only(self):
        """
        Given no reactor, makeService builds the service on the global one, without
        starting it: nothing listens, nothing is created on disk.
        """
        data_dir = os.path.join(tempfile.mkdtemp(), "data")
        options = tap.Options()
        options.parseOptions(["--workerd", fake_workerd(self), "--data-dir", data_dir])
        service = tap.makeService(options)
        from twisted.internet import reactor

        self.assertIsInstance(service, FuncplaneService)
        self.assertIs(service.supervisor._clock, reactor)
        self.assertFalse(service.running)
        self.assertFalse(os.path.exists(data_dir))


class VersionTests(SynchronousTestCase):
    def test_version(self):
        """
        C{twistd funcplane --version} prints funcplane's installed version and Twisted's,
        and exits with 0.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        exit = self.assertRaises(SystemExit, ServerOptions().parseOptions, ["funcplane", "--version"])
        self.assertIn(exit.code, (0, None))
        self.assertEqual(
            out.getvalue().splitlines(),
            [f"funcplane version: {importlib.metadata.version('funcplane')}",
             f"Twisted version: {twisted.__version__}"],
        )

    def test_not_installed(self):
        """
        Run from a tree that is not installed, the version says so and how to mend it.
        """

        def missing(name):
            raise importlib.metadata.PackageNotFoundError(name)

        self.patch(importlib.metadata, "version", missing)
        self.assertEqual(tap.funcplane_version(), "unknown (funcplane is not installed: run ./dev setup)")


class TreeTests(SynchronousTestCase):
    """
    makeService builds the whole tree up front, in the order it starts.
    """

    def build(self):
        # Never created: the test checks that it is not.
        self.data_dir = os.path.join(tempfile.mkdtemp(), "data")
        options = tap.Options()
        options.parseOptions(["--workerd", fake_workerd(self), "--data-dir", self.data_dir])
        self.reactor = MemoryReactorClock()
        return tap.makeService(options, reactor=self.reactor)

    def test_named_children_in_order(self):
        """
        The tree's children are named, in the order they start: the data directory, the
        store, the purge of expired KV keys, the D1 databases, the admin token, the asset
        store, the runtime,
        the supervisor, the upstream pool, the routes, the scheduler, the tails and, last,
        the listener.
        """
        service = self.build()
        self.assertEqual(
            [child.name for child in service],
            ["data-dir", "store", "kv-purge", "d1", "admin-token", "assets", "runtime", "supervisor",
             "upstream-pool", "routes", "scheduler", "tails", "listener"],
        )
        self.assertIs(service.getServiceNamed("supervisor"), service.supervisor)
        self.assertIs(service.getServiceNamed("listener"), service.listener)

    def test_child_heap_reaches_runtime(self):
        """
        --child-heap-mb reaches the runtime part's choices, which give it to every
        child's config.
        """
        options = tap.Options()
        options.parseOptions(["--workerd", fake_workerd(self), "--data-dir", "/tmp/fpd", "--child-heap-mb", "48"])
        service = tap.makeService(options, reactor=MemoryReactorClock())
        self.assertEqual(service.settings.child_heap_mb, 48)
        self.assertEqual(service.runtime._choices.heap_limit_mb, 48)

    def test_builds_only(self):
        """
        Building the tree on a memory reactor listens on nothing, schedules nothing,
        creates nothing on disk and starts no part.
        """
        service = self.build()
        self.assertIsInstance(service, FuncplaneService)
        self.assertFalse(service.running)
        self.assertEqual([child.running for child in service], [0] * 13)
        self.assertEqual((self.reactor.tcpServers, self.reactor.unixServers), ([], []))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertFalse(os.path.exists(self.data_dir))
        self.assertIsNone(service.port)
        self.assertNoResult(service.ready)


class GlobalReactorTests(SynchronousTestCase):
    def test_no_module_level_reactor(self):
        """
        No module in funcplane/ imports the global reactor at module level (tap.py imports
        it inside makeService, and only when no reactor is given).
        """
        root = os.path.dirname(os.path.abspath(funcplane.__file__))
        found = []
        for directory, _, files in os.walk(root):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read(), path)
                for node in tree.body:
                    if isinstance(node, ast.ImportFrom) and node.module == "twisted.internet":
                        imported = [alias.name for alias in node.names]
                    elif isinstance(node, ast.Import):
                        imported = [alias.name.rpartition(".")[2] for alias in node.names]
                    else:
                        continue
                    if "reactor" in imported:
                        found.append(os.path.relpath(path, root))
        self.assertEqual(found, [])


class FakeReactor:
    """
    The reactor's start and stop, as twistd drives them.
    """

    def __init__(self, running=True):
        self.running = running
        self.stopped = False
        self._when_running = []

    def callWhenRunning(self, f, *args):
        if self.running:
            f(*args)
        else:
            self._when_running.append((f, args))

    def run(self):
        self.running = True
        for f, args in self._when_running:
            f(*args)

    def stop(self):
        if self.stopped:
            raise ReactorNotRunning()
        self.stopped = True


class CouldNotStartTests(SynchronousTestCase):
    def setUp(self):
        self.at_exit = []

    def could_not_start(self, error, reactor):
        with capturedLogs() as events:
            tap._could_not_start(Failure(error), reactor, lambda *args: self.at_exit.append(args))
        return list(events)

    def test_reason_logged_and_reactor_stopped(self):
        """
        A start that fails for a reason the operator can act on is logged as one line (no
        traceback), the reactor stops, and the process is to exit with status 1.
        """
        reactor = FakeReactor()
        events = self.could_not_start(DataDirInUse("another funcplane (pid 7) is using /d"), reactor)
        self.assertEqual(
            [formatEvent(e) for e in events], ["funcplane could not start: another funcplane (pid 7) is using /d"]
        )
        self.assertNotIn("log_failure", events[0])
        self.assertTrue(reactor.stopped)
        self.assertEqual(self.at_exit, [(tap._end_process, 1)])

    def test_cannot_listen(self):
        """
        A listener that cannot listen is such a reason too: one line, then exit 1.
        """
        reactor = FakeReactor()
        reason = "cannot listen on tcp:8081 (address already in use): stop what listens there, or choose another --port"
        events = self.could_not_start(CannotListen(reason), reactor)
        self.assertEqual([formatEvent(e) for e in events], [f"funcplane could not start: {reason}"])
        self.assertNotIn("log_failure", events[0])
        self.assertEqual((reactor.stopped, self.at_exit), (True, [(tap._end_process, 1)]))

    def test_before_the_reactor_runs(self):
        """
        A failure before twistd has run the reactor (the first part fails as twistd starts
        the service) stops the reactor as soon as it runs, instead of leaving funcplane
        running with nothing started.
        """
        reactor = FakeReactor(running=False)
        self.could_not_start(DataDirInUse("another funcplane (pid 7) is using /d"), reactor)
        self.assertFalse(reactor.stopped)
        self.assertEqual(self.at_exit, [(tap._end_process, 1)])
        reactor.run()
        self.assertTrue(reactor.stopped)

    def test_already_stopping(self):
        """
        A reactor already stopping is left to it, and the exit status is still 1.
        """
        reactor = FakeReactor()
        reactor.stop()
        self.could_not_start(DataDirInUse("in use"), reactor)
        self.assertEqual(self.at_exit, [(tap._end_process, 1)])

    def test_other_failure_with_traceback(self):
        """
        Any other reason is logged with its traceback, and the process exits with 1.
        """
        reactor = FakeReactor()
        events = self.could_not_start(OSError("disk on fire"), reactor)
        self.assertEqual([formatEvent(e) for e in events], ["funcplane could not start"])
        self.assertIsInstance(events[0]["log_failure"].value, OSError)
        self.assertEqual((reactor.stopped, self.at_exit), (True, [(tap._end_process, 1)]))
        self.flushLoggedErrors(OSError)

    def test_stopped_while_starting(self):
        """
        A start cut short because twistd was told to exit is no failure: nothing is
        logged, the exit status is left alone, and the reactor is left to the shutdown
        already under way.
        """
        reactor = FakeReactor()
        events = self.could_not_start(StoppedWhileStarting("stopped before listener started"), reactor)
        self.assertEqual(events, [])
        self.assertFalse(reactor.stopped)
        self.assertEqual(self.at_exit, [])

    def test_end_process(self):
        """
        The exit hook flushes the standard streams, then ends the process with the status.
        """
        out, ended = io.StringIO(), []
        flushed = []
        out.flush = lambda: flushed.append(True)
        self.patch(sys, "stdout", out)
        self.patch(tap.os, "_exit", ended.append)
        tap._end_process(1)
        self.assertEqual((flushed, ended), ([True], [1]))

    def test_wired_by_make_service(self):
        """
        The service makeService builds says why it could not start and has the process
        exit with 1 once the reactor has run and stopped.
        """
        data_dir = tempfile.mkdtemp(prefix="fp")
        self.addCleanup(shutil.rmtree, data_dir, True)
        held = lock_data_dir(data_dir)
        self.addCleanup(os.close, held)
        options = tap.Options()
        options.parseOptions(["--workerd", fake_workerd(self), "--data-dir", data_dir])
        reactor = FakeReactor(running=False)
        service = tap.makeService(options, reactor=reactor, at_exit=lambda *args: self.at_exit.append(args))
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(
            [formatEvent(e) for e in events],
            [f"funcplane could not start: another funcplane (pid {os.getpid()}) is using {data_dir};"
             " stop it or choose another --data-dir"],
        )
        self.assertEqual(self.at_exit, [(tap._end_process, 1)])
        reactor.run()
        self.assertTrue(reactor.stopped)
