"""
The lives of real workerd children: suspension and wake-up, crashes, wedged handlers,
changes under load, unclean exits, logs.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from funcplane.datadir import DataDirInUse
from funcplane.runtime.locate import find_workerd
from tests.integration.harness import (
    TOKEN,
    Funcplane,
    eventually,
    free_port,
    processes_in,
    raw_connection,
    sleep,
)

V1 = 'export default { fetch() { return new Response("v1") } }'
V2 = 'export default { fetch() { return new Response("v2") } }'
SPIN = 'export default { fetch(request) { if (new URL(request.url).pathname == "/spin") { while (true) {} } return new Response("ok") } }'
CHATTY = """export default { fetch(request) {
  console.log("handling", new URL(request.url).pathname);
  if (new URL(request.url).pathname == "/fail") throw new Error("it broke");
  return new Response("logged");
} }"""


def process_state(pid):
    """
    The one-letter state in /proc/PID/stat (T: stopped by a signal).
    """
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


class LifecycleTests(TestCase):
    timeout = 60

    async def version_state(self, fp, function, version):
        code, body = await fp.api("GET", f"/api/functions/{function}")
        return next(v for v in body["function"]["versions"] if v["name"] == version)

    async def test_suspend_and_wake(self):
        """
        A version idle for the idle timeout has no process and reads suspended; its next
        request wakes it and gets its answer. The latest version stays running.
        """
        fp = await Funcplane(self, idle_timeout=0.5).start()
        await fp.deploy("hello", V1, version="v1")
        await fp.deploy("hello", V2, version="v2")
        self.assertEqual(len(processes_in(fp.run_dir)), 2)
        await eventually(lambda: len(processes_in(fp.run_dir)) == 1)
        v1 = await self.version_state(fp, "hello", "v1")
        self.assertEqual((v1["state"], v1["pid"]), ("suspended", None))
        self.assertEqual((await self.version_state(fp, "hello", "v2"))["state"], "running")
        answers = await gatherResults(
            [Deferred.fromCoroutine(fp.get("v1.hello.func.local")) for _ in range(5)]
        )
        self.assertEqual(answers, [(200, "v1")] * 5)
        v1 = await self.version_state(fp, "hello", "v1")
        self.assertEqual(v1["state"], "running")
        self.assertIsNotNone(v1["lastRequestAt"])
        self.assertEqual(len(processes_in(fp.run_dir)), 2)

    async def test_freeze_and_thaw(self):
        """
        A version idle for freeze_after is stopped by the kernel (SIGSTOP: state T) and
        reads frozen; its next request is answered by the same process, thawed. The frozen
        process is stopped cleanly on shutdown.
        """
        fp = await Funcplane(self, idle_timeout=30, freeze_after=0.3).start()
        await fp.deploy("hello", V1, version="v1")
        await fp.deploy("hello", V2, version="v2")
        await eventually(lambda: any(process_state(pid) == "T" for pid in processes_in(fp.run_dir)))
        v1 = await self.version_state(fp, "hello", "v1")
        self.assertEqual(v1["state"], "frozen")
        self.assertEqual(process_state(v1["pid"]), "T")
        self.assertEqual(await fp.get("v1.hello.func.local"), (200, "v1"))
        after = await self.version_state(fp, "hello", "v1")
        self.assertEqual((after["state"], after["pid"]), ("running", v1["pid"]))
        self.assertNotEqual(process_state(v1["pid"]), "T")
        await eventually(lambda: process_state(v1["pid"]) == "T")
        await fp.stop()
        self.assertEqual(processes_in(fp.run_dir), [])

    async def test_scale_to_zero(self):
        """
        With --scale-to-zero even the latest version is suspended when idle, and its next
        request starts it again.
        """
        fp = await Funcplane(self, idle_timeout=0.3, scale_to_zero=True).start()
        await fp.deploy("hello", V1, version="v1")
        await eventually(lambda: processes_in(fp.run_dir) == [])
        self.assertEqual(await fp.get("hello.func.local"), (200, "v1"))

    async def test_killed_child(self):
        """
        After kill -9 of a child the next request is answered: a warm version has already
        been restarted, a cold one starts on the request.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("hello", V1, version="v1")
        await fp.deploy("hello", V2, version="v2")
        self.ids = {v["name"]: v["id"] for v in (await fp.api("GET", "/api/functions/hello"))[1]["function"]["versions"]}
        for host, body in [("v1.hello.func.local", "v1"), ("hello.func.local", "v2")]:
            before = set(processes_in(fp.run_dir))
            pid = (await self.version_state(fp, "hello", body))["pid"]
            os.kill(pid, signal.SIGKILL)
            await eventually(lambda: pid not in processes_in(fp.run_dir))
            # funcplane hears of the death through SIGCHLD, a moment after the kernel.
            await eventually(lambda: fp.service.supervisor.pid(self.ids[body]) != pid)
            self.assertEqual(await fp.get(host), (200, body))
            state = await self.version_state(fp, "hello", body)
            self.assertEqual((state["state"], state["restarts"]), ("running", 1))
            self.assertNotIn(state["pid"], before)

    async def test_wedged_function(self):
        """
        A handler that never returns gets 504 after the request timeout, while another
        function keeps answering; its child is killed and replaced.
        """
        fp = await Funcplane(self, request_timeout=1.0).start()
        await fp.deploy("spin", SPIN)
        await fp.deploy("other", V1)
        pid = (await self.version_state(fp, "spin", (await fp.api("GET", "/api/functions/spin"))[1]["function"]["latest"]))["pid"]
        spinning = Deferred.fromCoroutine(fp.request("GET", "/spin", host="spin.func.local"))
        for _ in range(3):
            await sleep(0.2)
            self.assertEqual(await fp.get("other.func.local"), (200, "v1"))
        code, body = await spinning
        self.assertEqual((code, body), (504, b"the function did not answer within 1 seconds\n"))
        await eventually(lambda: pid not in processes_in(fp.run_dir))
        self.assertEqual(await fp.get("spin.func.local"), (200, "ok"))

    async def test_no_request_lost_under_change(self):
        """
        Under continuous load, deploying, rolling back and moving an alias fail no request,
        and every answer is complete, from the old version or the new.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("hello", V1, version="v1", alias="test")
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        client = treq.client.HTTPClient(Agent(reactor, pool=pool))
        results = []
        running = [True]

        async def load(host):
            while running[0]:
                try:
                    response = await client.get(f"http://127.0.0.1:{fp.port}/", headers={"Host": host})
                    results.append((response.code, await response.text()))
                except Exception as e:  # noqa: BLE001 - any failure is what is counted
                    results.append((0, repr(e)))

        loads = [load(host) for host in ["hello.func.local", "test.hello.func.local"] * 4]
        done = gatherResults([Deferred.fromCoroutine(c) for c in loads])
        await sleep(0.3)
        await fp.deploy("hello", V2, version="v2")
        await sleep(0.3)
        await fp.api("PUT", "/api/functions/hello/aliases/test", {"version": "v2"})
        await sleep(0.3)
        await fp.api("POST", "/api/rollback/hello", {"version": "v1"})
        await sleep(0.3)
        await fp.api("PUT", "/api/functions/hello/aliases/test", {"version": "v1"})
        await sleep(0.3)
        running[0] = False
        await done
        bad = [r for r in results if r not in [(200, "v1"), (200, "v2")]]
        self.assertEqual(bad, [])
        self.assertGreater(len(results), 100)
        self.assertEqual({body for _, body in results}, {"v1", "v2"})

    async def test_logs(self):
        """
        console.log output and uncaught errors are kept per version and can be followed
        live.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("chatty", CHATTY, version="v1")
        self.assertEqual(await fp.get("chatty.func.local", "/first"), (200, "logged"))
        self.assertEqual((await fp.get("chatty.func.local", "/fail"))[0], 500)
        [version_id] = [v["id"] for v in (await fp.api("GET", "/api/functions/chatty"))[1]["function"]["versions"]]
        await eventually(lambda: len(fp.service.logbook.lines([version_id])) >= 3)
        code, body = await fp.api("GET", "/api/functions/chatty/logs")
        lines = [(line["level"], line["message"]) for line in body["lines"]]
        self.assertEqual(lines[0], ("log", "handling /first"))
        self.assertEqual(lines[1], ("log", "handling /fail"))
        self.assertTrue(any(level == "error" and "it broke" in message for level, message in lines), lines)
        follower = await raw_connection(self, fp.port)
        follower.transport.write(
            b"GET /api/functions/chatty/logs?follow=true&limit=1 HTTP/1.1\r\nHost: admin\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"
        )
        await follower.wait_for(b"text/event-stream")
        await fp.get("chatty.func.local", "/live")
        received = await follower.wait_for(b"handling /live")
        self.assertIn(b"event: log", received)

    async def test_data_dir_taken(self):
        """
        A second funcplane on a data directory in use refuses to start, and says why.
        """
        fp = await Funcplane(self).start()
        second = Funcplane(self, data_dir=fp.data_dir)
        error = await self.assertFailure(Deferred.fromCoroutine(second.start()), DataDirInUse)
        self.assertIn("another funcplane", str(error))

    def twistd(self, port, data_dir, twistd_options=(), options=(), output=subprocess.DEVNULL):
        """
        Start C{twistd -n funcplane} on C{port} of 127.0.0.1 with its data in C{data_dir};
        its standard output and error go to C{output}, as systemd would collect them.
        """
        twistd = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "twistd"), "-n", "--pidfile=",
             *twistd_options, "funcplane",
             "--port", f"tcp:{port}:interface=127.0.0.1", *options,
             "--data-dir", data_dir, "--workerd", find_workerd()],
            env=dict(os.environ, FUNCPLANE_ADMIN_TOKEN=TOKEN),
            stdout=output, stderr=subprocess.STDOUT,
        )
        self.addCleanup(lambda: twistd.poll() is None and twistd.kill())
        return twistd

    async def twistd_refused(self, port, data_dir):
        """
        Run C{twistd -n funcplane}, which is expected to refuse to start, with a pidfile;
        return its exit status and what it printed, once it has exited.
        """
        directory = tempfile.mkdtemp(prefix="fp")
        output_path = os.path.join(directory, "output")
        pidfile = os.path.join(directory, "twistd.pid")
        with open(output_path, "wb") as output:
            twistd = self.twistd(port, data_dir, [f"--pidfile={pidfile}"], output=output)
        await eventually(lambda: twistd.poll() is not None, seconds=20)
        with open(output_path) as f:
            printed = f.read()
        # It exited after twistd's own shutdown, which removes the pidfile.
        self.assertFalse(os.path.exists(pidfile))
        self.assertIn("Server Shut Down.", printed)
        return twistd.returncode, printed

    def one_reason(self, printed):
        """
        The only line of C{printed} that says funcplane could not start (there is no
        traceback), without its timestamp and source.
        """
        self.assertNotIn("Traceback", printed)
        [line] = [line for line in printed.splitlines() if "could not start" in line]
        return line.partition("] ")[2]

    async def test_data_dir_in_use_exits(self):
        """
        twistd funcplane on a data directory another funcplane holds exits with status 1
        and one line saying why and what to do; the first funcplane serves on.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("hello", V1, version="v1")
        status, printed = await self.twistd_refused(free_port(), fp.data_dir)
        self.assertEqual(status, 1)
        self.assertEqual(
            self.one_reason(printed),
            f"funcplane could not start: another funcplane (pid {os.getpid()}) is using"
            f" {fp.data_dir}; stop it or choose another --data-dir",
        )
        self.assertEqual(await fp.get("hello.func.local"), (200, "v1"))

    async def test_taken_port_exits(self):
        """
        twistd funcplane on a port something else listens on exits with status 1 and one
        line saying why and what to do, once the children it had begun to start (its
        functions' latest versions) are stopped.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("hello", V1, version="v1")
        await fp.stop()
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, printed = await self.twistd_refused(port, fp.data_dir)
        self.assertEqual(status, 1)
        self.assertEqual(
            self.one_reason(printed),
            f"funcplane could not start: cannot listen on tcp:{port}:interface=127.0.0.1"
            " (address already in use): stop what listens there, or choose another --port",
        )
        self.assertEqual(processes_in(fp.run_dir), [])

    async def twistd_with_hello(self, data_dir, twistd_options=(), options=()):
        """
        Run C{twistd -n funcplane} on a free port with its data in C{data_dir}, deploy
        hello v1 to it, and check that one child runs; return the twistd process and the
        run directory.
        """
        port = free_port()
        twistd = self.twistd(port, data_dir, twistd_options, options)
        fp = Funcplane(self, data_dir=data_dir)
        fp.port = port
        for _ in range(100):
            try:
                await fp.api("GET", "/api/functions")
                break
            except Exception:  # noqa: BLE001 - not listening yet
                await sleep(0.1)
        await fp.deploy("hello", V1, version="v1")
        run_dir = os.path.join(data_dir, "run")
        self.assertEqual(len(processes_in(run_dir)), 1)
        return twistd, run_dir

    async def test_unclean_exit(self):
        """
        When funcplane is killed outright its children die with it, and the next start on
        the same data directory finds no stale socket or process.
        """
        data_dir = os.path.join(tempfile.mkdtemp(prefix="fp"), "d")
        twistd, run_dir = await self.twistd_with_hello(data_dir)
        twistd.send_signal(signal.SIGKILL)
        twistd.wait()
        await eventually(lambda: processes_in(run_dir) == [])
        again = await Funcplane(self, data_dir=data_dir).start()
        self.assertEqual(await again.get("hello.func.local"), (200, "v1"))
        # The child's HTTP socket and its events socket.
        self.assertEqual(len([n for n in os.listdir(run_dir) if n.endswith(".sock")]), 2)

    async def test_stop_during_boot(self):
        """
        Stopped while it still starts the latest versions (just after a restart), funcplane
        spawns nothing more, and no process outlives the stop, not even a moment later.
        """
        fp = await Funcplane(self).start()
        for i in range(6):
            await fp.deploy(f"f{i}", V1, version="v1")
        await fp.stop()
        again = await Funcplane(self, data_dir=fp.data_dir).start()
        await again.stop()
        self.assertEqual(processes_in(again.run_dir), [])
        await sleep(0.5)
        self.assertEqual(processes_in(again.run_dir), [])

    async def test_twistd_stops_cleanly(self):
        """
        twistd funcplane, sent SIGTERM, stops every child before its reactor stops, and
        the data directory is free for the next funcplane at once.
        """
        data_dir = os.path.join(tempfile.mkdtemp(prefix="fp"), "d")
        logfile = os.path.join(os.path.dirname(data_dir), "twistd.log")
        twistd, run_dir = await self.twistd_with_hello(
            data_dir, [f"--logfile={logfile}"], ["--stop-grace", "2"]
        )
        twistd.send_signal(signal.SIGTERM)
        await eventually(lambda: twistd.poll() is not None, seconds=10)
        # twistd ends itself with the signal that stopped it, once it has shut down.
        self.assertEqual(twistd.returncode, -signal.SIGTERM)
        self.assertEqual(processes_in(run_dir), [])
        with open(logfile) as f:
            log = f.read()
        self.assertNotIn("Traceback", log)
        # Every line reads as text: no bytes literal, no object repr.
        self.assertNotRegex(log, r"\bb'|\bb\"| at 0x")
        self.assertLess(log.index("stopped hello:v1"), log.index("Main loop terminated."))
        again = await Funcplane(self, data_dir=data_dir).start()
        self.assertEqual(await again.get("hello.func.local"), (200, "v1"))
