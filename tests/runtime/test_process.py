import ipaddress
import json
import os
import signal
import stat
import tempfile

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from funcplane.errors import StartFailed
from funcplane.interfaces import IChild, IRuntimeLauncher
from funcplane.observe.logbook import LogBook
from funcplane.runtime.config import ConfigBuilder, RuntimeSettings
from funcplane.runtime.egress import EgressPolicy
from funcplane.runtime.events import events_socket_path
from funcplane.runtime.process import (
    CONTROL_FD,
    SOCKET_FD,
    WorkerdLauncher,
    clean_run_dir,
    make_children_directory,
)
from tests.fakes import FakeProcessReactor, spec
from tests.runtime.test_config import SCHEMA

READY = b'{"event":"listen","socket":"http","port":0}\n'


class LauncherTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeProcessReactor()
        self.run_dir = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.unlink(os.path.join(self.run_dir, f)) for f in os.listdir(self.run_dir)] and None)
        self.builder = ConfigBuilder(RuntimeSettings(egress=EgressPolicy(denied_hosts=(ipaddress.ip_network("127.0.0.1/32"),))), SCHEMA)
        self.launcher = WorkerdLauncher(self.reactor, "/opt/workerd", self.run_dir, self.builder, startup_timeout=5)

    def launch(self, **kwargs):
        child = self.launcher.launch(spec(**kwargs))
        return child, self.reactor.spawned[-1]

    def test_interfaces(self):
        """
        The launcher and its children provide their interfaces.
        """
        verifyObject(IRuntimeLauncher, self.launcher)
        verifyObject(IChild, self.launch()[0])

    def test_spawn(self):
        """
        workerd is spawned by absolute path with an empty environment, reading its config
        from a passed fd, serving on a passed socket (and taking events on another),
        announcing readiness on a pipe.
        """
        child, spawned = self.launch(version_id="abc")
        self.assertEqual(spawned["executable"], "/opt/workerd")
        self.assertEqual(
            spawned["args"],
            ["/opt/workerd", "serve", "--verbose", "--binary", "/proc/self/fd/3", "--socket-fd", "http=4",
             "--socket-fd", "events=6", "--control-fd=5"],
        )
        self.assertEqual(spawned["env"], {})
        self.assertEqual(spawned["path"], os.path.join(self.run_dir, "children"))
        fds = spawned["childFDs"]
        self.assertEqual((fds[1], fds[2], fds[CONTROL_FD]), ("r", "r", "r"))
        self.assertNotIn(0, fds)
        self.assertIsInstance(fds[SOCKET_FD], int)
        self.assertEqual(os.path.dirname(child.socket_path), self.run_dir)

    def test_config_passed_in_memory(self):
        """
        The config the child reads is the builder's, for this spec; no file is written but
        the sockets.
        """
        child, spawned = self.launch(env=(("SECRET", "s3cr3t"),))
        config = self.builder.read(spawned["config"])
        self.assertEqual(config["services"][0]["worker"]["bindings"], [{"name": "SECRET", "text": "s3cr3t"}])
        self.assertEqual(
            sorted(os.listdir(self.run_dir)),
            sorted([os.path.basename(child.socket_path), os.path.basename(events_socket_path(child.socket_path))]),
        )
        self.assertRegex(os.path.basename(child.socket_path), r"^[0-9a-f]{32}\.sock$")

    def test_socket_private(self):
        """
        The socket is a fresh 0600 unix socket, of its own for every child, even of one
        version.
        """
        child, _ = self.launch()
        mode = os.stat(child.socket_path).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o600)
        self.assertNotEqual(self.launch()[0].socket_path, child.socket_path)

    def test_ready(self):
        """
        The child is ready when workerd writes its listen event on the control pipe, even
        in pieces.
        """
        child, spawned = self.launch()
        d = child.when_ready()
        spawned["protocol"].childDataReceived(CONTROL_FD, READY[:10])
        self.assertNoResult(d)
        spawned["protocol"].childDataReceived(CONTROL_FD, READY[10:])
        self.assertIs(self.successResultOf(d), child)

    def test_exit_before_ready(self):
        """
        A child that exits before it is ready fails with workerd's stderr, without the
        'service main: ' prefix; the socket file is removed.
        """
        child, spawned = self.launch()
        d = child.when_ready()
        p = spawned["protocol"]
        p.childDataReceived(2, b"service main: Uncaught SyntaxError: missing ) after argument list\n  at worker.js:1:50")
        spawned["transport"].exit(ProcessTerminated(1))
        failure = self.failureResultOf(d, StartFailed)
        self.assertEqual(str(failure.value), "Uncaught SyntaxError: missing ) after argument list\n  at worker.js:1:50")
        self.assertEqual(failure.value.reason, "ScriptError")
        self.assertFalse(os.path.exists(child.socket_path))

    def test_startup_timeout(self):
        """
        A child not ready within the start-up timeout fails with StartupTimeout and is
        SIGKILLed; not a moment before.
        """
        child, spawned = self.launch()
        d = child.when_ready()
        self.reactor.advance(4.9)
        self.assertNoResult(d)
        self.reactor.advance(0.1)
        self.assertEqual(self.failureResultOf(d, StartFailed).value.reason, "StartupTimeout")
        self.assertEqual(spawned["transport"].signals, [signal.SIGKILL])

    def test_ready_cancels_timeout(self):
        """
        Once ready, the start-up timeout is gone.
        """
        child, spawned = self.launch()
        spawned["protocol"].childDataReceived(CONTROL_FD, READY)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_stop_grace(self):
        """
        stop() sends SIGTERM, then SIGKILL after the grace period if the child is still
        there; its Deferred fires when the process has ended.
        """
        child, spawned = self.launch()
        spawned["protocol"].childDataReceived(CONTROL_FD, READY)
        d = child.stop(10)
        self.assertEqual(spawned["transport"].signals, [signal.SIGTERM, signal.SIGCONT])
        self.reactor.advance(9.9)
        self.assertNoResult(d)
        self.reactor.advance(0.1)
        self.assertEqual(spawned["transport"].signals, [signal.SIGTERM, signal.SIGCONT, signal.SIGKILL])
        spawned["transport"].exit(ProcessTerminated(signal=9))
        self.successResultOf(d)

    def test_stop_in_time(self):
        """
        A child that exits within the grace period is not SIGKILLed.
        """
        child, spawned = self.launch()
        d = child.stop(10)
        spawned["transport"].exit(ProcessDone(0))
        self.successResultOf(d)
        self.reactor.advance(20)
        self.assertEqual(spawned["transport"].signals, [signal.SIGTERM, signal.SIGCONT])

    def test_output_logged(self):
        """
        Each line the child prints is a log event with its function, version, stream, kind
        and level, and goes to the log book; console output reads as the function wrote
        it, and an uncaught error is an exception while console.error is console output.
        """
        logbook = LogBook(self.reactor)
        self.launcher = WorkerdLauncher(self.reactor, "/opt/workerd", self.run_dir, self.builder, 5.0, logbook)
        child, spawned = self.launch(function="hello", version="v1")
        compact = {"separators": (",", ":")}
        console = json.dumps({"timestamp": 1, "level": "log", "message": "hello 42 { a: 1 }"}, **compact)
        error = json.dumps({"timestamp": 1, "level": "error", "message": "oops"}, **compact)
        uncaught = json.dumps({"timestamp": "1", "level": "info", "source": "workerd/io/worker.c++:3042",
                               "message": "uncaught exception; source = Uncaught; stack = Error: x\n  at main:1"},
                              **compact)
        repeat = json.dumps({"timestamp": "1", "level": "info", "source": "workerd/io/io-context.c++:656",
                             "message": "uncaught exception; exception = workerd/jsg: x"}, **compact)
        with capturedLogs() as events:
            spawned["protocol"].childDataReceived(1, (console + "\n" + error + "\n" + uncaught[:9]).encode())
            spawned["protocol"].childDataReceived(1, (uncaught[9:] + "\n" + repeat + "\n").encode())
            spawned["protocol"].childDataReceived(2, b"plain text\n")
        fields = [(e["function"], e["version"], e["stream"], e["kind"], e["severity"], e["text"], e["truncated"])
                  for e in events]
        self.assertEqual(
            fields,
            [
                ("hello", "v1", "stdout", "console", "log", "hello 42 { a: 1 }", 0),
                ("hello", "v1", "stdout", "console", "error", "oops", 0),
                ("hello", "v1", "stdout", "exception", "error", "Error: x\n  at main:1", 0),
                ("hello", "v1", "stderr", "runtime", "info", "plain text", 0),
            ],
        )
        self.assertEqual(events[0]["log_level"], LogLevel.info)
        self.assertEqual(
            [(e.version_id, e.kind, e.level, e.message) for e in logbook.lines(["id1"])],
            [
                ("id1", "console", "log", "hello 42 { a: 1 }"),
                ("id1", "console", "error", "oops"),
                ("id1", "exception", "error", "Error: x\n  at main:1"),
                ("id1", "runtime", "info", "plain text"),
            ],
        )


class CountingBytes(bytes):
    """
    One read from a pipe that counts every byte copied out of it, by concatenation or by
    slicing, in C{copied}.
    """

    copied = [0]

    def __add__(self, other):
        self.copied[0] += len(self) + len(other)
        return bytes.__add__(self, other)

    def __radd__(self, other):
        self.copied[0] += len(self) + len(other)
        return bytes.__add__(other, self)

    def __getitem__(self, index):
        result = bytes.__getitem__(self, index)
        if isinstance(index, slice):
            self.copied[0] += len(result)
        return result


class LongLineTests(SynchronousTestCase):
    """
    A function decides how long its lines are; funcplane's cost must stay linear in what
    it prints, and what it keeps of a line bounded by the cap.
    """

    def setUp(self):
        self.reactor = FakeProcessReactor()
        self.run_dir = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.unlink(os.path.join(self.run_dir, f)) for f in os.listdir(self.run_dir)] and None)
        self.logbook = LogBook(self.reactor)
        builder = ConfigBuilder(RuntimeSettings(egress=EgressPolicy()), SCHEMA)
        self.launcher = WorkerdLauncher(
            self.reactor, "/opt/workerd", self.run_dir, builder, 5.0, self.logbook, max_line_bytes=16 * 1024
        )
        self.launcher.launch(spec())
        self.protocol = self.reactor.spawned[-1]["protocol"]
        CountingBytes.copied[0] = 0

    def test_long_line_held_as_pieces(self):
        """
        A line that arrives in many reads is held as the reads themselves, never copied
        into a growing buffer: of 1,000 reads of 1 KiB only the read that reaches the cap
        is cut (its part up to the cap copied, once), and the rest is only counted.  Its
        end joins the pieces once, and the line in the log book and the log event says how
        many bytes were dropped.
        """
        opening = CountingBytes(b'{"timestamp":1,"level":"log","message":"')
        reads = [opening] + [CountingBytes(b"x" * 1024) for _ in range(1000)]
        for data in reads:
            self.protocol.childDataReceived(1, data)
        cut = 16 * 1024 - len(opening) - 15 * 1024
        self.assertEqual(CountingBytes.copied[0], cut)
        held, pieces = self.protocol._lines.held(1)
        self.assertEqual(held, 16 * 1024)
        self.assertEqual(len(pieces), 17)
        self.assertTrue(all(piece is read for piece, read in zip(pieces[:16], reads)))
        self.assertEqual(pieces[16], b"x" * cut)
        with capturedLogs() as events:
            self.protocol.childDataReceived(1, CountingBytes(b'"}\n'))
        total = len(opening) + 1000 * 1024 + 2
        dropped = total - 16 * 1024
        [entry] = self.logbook.lines(["id1"])
        kept = 16 * 1024 - len(opening)
        self.assertEqual((entry.kind, entry.level), ("console", "log"))
        self.assertEqual(entry.message, "x" * kept + f" [truncated: {dropped} more bytes dropped]")
        [event] = events
        self.assertEqual((event["truncated"], event["text"]), (dropped, entry.message))
        self.assertEqual(self.protocol._lines.held(1), (0, []))

    def test_lines_within_reads(self):
        """
        Lines that end inside reads are each copied once; a line split over two reads, and
        several lines in one read, all come out whole, in order.
        """
        self.protocol.childDataReceived(2, CountingBytes(b"one\ntw"))
        self.protocol.childDataReceived(2, CountingBytes(b"o\nthree\nfour"))
        self.protocol.childDataReceived(2, CountingBytes(b"\n"))
        self.assertEqual([e.message for e in self.logbook.lines(["id1"])], ["one", "two", "three", "four"])
        self.assertLessEqual(CountingBytes.copied[0], len(b"one\ntwo\nthree\nfour"))

    def test_long_line_in_one_read(self):
        """
        A line longer than the cap that starts and ends in one read is cut at the cap too,
        and the line after it in the same read is whole.
        """
        self.protocol.childDataReceived(2, b"z" * (17 * 1024) + b"\nnext\n")
        self.assertEqual(
            [e.message for e in self.logbook.lines(["id1"])],
            ["z" * (16 * 1024) + " [truncated: 1024 more bytes dropped]", "next"],
        )

    def test_unfinished_line_at_exit(self):
        """
        A line the child left unfinished when it exited is kept, cut at the cap like any.
        """
        self.protocol.childDataReceived(2, b"y" * (20 * 1024))
        self.protocol.processEnded(Failure(ProcessDone(0)))
        [entry] = self.logbook.lines(["id1"])
        self.assertEqual(entry.message, "y" * (16 * 1024) + f" [truncated: {4 * 1024} more bytes dropped]")


class SetprivTests(SynchronousTestCase):
    def test_pdeathsig(self):
        """
        With setpriv, workerd is spawned through it, so the kernel kills the child if
        funcplane dies without stopping it.
        """
        run_dir = tempfile.mkdtemp()
        reactor = FakeProcessReactor()
        builder = ConfigBuilder(RuntimeSettings(egress=EgressPolicy()), SCHEMA)
        launcher = WorkerdLauncher(reactor, "/opt/workerd", run_dir, builder, setpriv="/usr/bin/setpriv")
        launcher.launch(spec())
        spawned = reactor.spawned[0]
        self.assertEqual(spawned["executable"], "/usr/bin/setpriv")
        self.assertEqual(spawned["args"][:5], ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--", "/opt/workerd"])

    def test_unprivileged_user(self):
        """
        Given a user, children drop to it (and its group only) before workerd runs.
        """
        run_dir = tempfile.mkdtemp()
        reactor = FakeProcessReactor()
        builder = ConfigBuilder(RuntimeSettings(egress=EgressPolicy()), SCHEMA)
        launcher = WorkerdLauncher(reactor, "/opt/workerd", run_dir, builder, setpriv="/usr/bin/setpriv",
                                   user=(65534, 65533))
        launcher.launch(spec())
        self.assertEqual(
            reactor.spawned[0]["args"][:8],
            ["/usr/bin/setpriv", "--reuid=65534", "--regid=65533", "--clear-groups", "--pdeathsig", "KILL",
             "--", "/opt/workerd"],
        )


    def test_env_changes_directory(self):
        """
        Given env, the child changes to the children's directory through it, and Twisted
        is not asked to (so it can posix_spawn rather than fork funcplane).
        """
        run_dir = tempfile.mkdtemp()
        reactor = FakeProcessReactor()
        builder = ConfigBuilder(RuntimeSettings(egress=EgressPolicy()), SCHEMA)
        launcher = WorkerdLauncher(reactor, "/opt/workerd", run_dir, builder, setpriv="/usr/bin/setpriv",
                                   env="/usr/bin/env")
        launcher.launch(spec())
        spawned = reactor.spawned[0]
        self.assertEqual(spawned["executable"], "/usr/bin/env")
        self.assertEqual(
            spawned["args"][:7],
            ["/usr/bin/env", f"--chdir={run_dir}/children", "/usr/bin/setpriv", "--pdeathsig", "KILL", "--",
             "/opt/workerd"],
        )
        self.assertIsNone(spawned["path"])


class CleanRunDirTests(SynchronousTestCase):
    def test_orphans_and_sockets(self):
        """
        At start, processes working in the run directory (an earlier funcplane's children)
        are SIGKILLed and stale sockets removed; other processes and files are left alone.
        """
        run_dir = os.path.realpath(tempfile.mkdtemp())
        children = make_children_directory(run_dir)
        elsewhere = tempfile.mkdtemp()
        proc = tempfile.mkdtemp()
        for pid, cwd in [("101", children), ("102", elsewhere), ("103", children), ("104", run_dir)]:
            os.mkdir(os.path.join(proc, pid))
            os.symlink(cwd, os.path.join(proc, pid, "cwd"))
        os.mkdir(os.path.join(proc, "self"))
        for name in ["a.sock", "b.sock", "keep.txt"]:
            open(os.path.join(run_dir, name), "w").close()
        killed = []
        found = clean_run_dir(run_dir, kill=lambda pid, sig: killed.append((pid, sig)), proc=proc)
        self.assertEqual(found, (2, 2))
        self.assertEqual(sorted(killed), [(101, signal.SIGKILL), (103, signal.SIGKILL)])
        self.assertEqual(sorted(os.listdir(run_dir)), ["children", "keep.txt"])
        self.assertEqual(os.stat(children).st_mode & 0o777, 0o711)
