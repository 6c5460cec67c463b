"""
Attacks from inside a function, and on the machine it runs on: reaching loopback, the
admin API or the host by any spelling, reading funcplane's secrets, exhausting memory,
waking everything at once, printing a 20 MiB line, spinning under a CPU quota (and the
request that comes right after), running funcplane out of file descriptors; and what a
function's console output and its uncaught errors are, as a tail sees them.
"""

import json
import os
import pwd
import resource
import shutil
import sys
import tempfile
from unittest import SkipTest

import ifaddr
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import LoopingCall
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from funcplane.observe.trace import TailFilter
from funcplane.runtime.descriptors import count_open
from funcplane.runtime.limits import MiB, ChildLimits, CgroupPart, detect
from tests.integration.harness import Funcplane, eventually, processes_in
from tests.observe.test_tails import FakeSocket
from tests.integration.test_platform import Canary

PROBE = """import { connect } from "cloudflare:sockets";
export default { async fetch(request) {
  const targets = JSON.parse(decodeURIComponent(new URL(request.url).search.slice(1)));
  const results = {};
  for (const target of targets) {
    try { const r = await fetch(`http://${target}/`); results["fetch " + target] = "reached " + r.status; }
    catch (e) { results["fetch " + target] = "blocked"; }
    try { const s = connect(target); await s.opened; results["connect " + target] = "reached"; s.close(); }
    catch (e) { results["connect " + target] = "blocked"; }
  }
  return Response.json(results);
} }"""

HEAP_BOMB = """export default { fetch(request) {
  if (new URL(request.url).pathname == "/bomb") { const keep = []; for (;;) keep.push(new Array(1e6).fill(1.5)); }
  return new Response("alive");
} }"""


BUFFER_BOMB = """const keep = [];
export default { fetch(request) {
  if (new URL(request.url).pathname == "/bomb") {
    try { for (let i = 0; i < 256; i++) keep.push(new Uint8Array(16 << 20).fill(1)); }
    catch (e) { return new Response("refused: " + e.message, { status: 507 }); }
    return new Response("holding " + keep.length * 16 + " MiB");
  }
  return new Response("alive");
} }"""


def memory_cgroups_here():
    """
    Whether this machine lets funcplane give each child a memory cgroup.
    """
    confiner = detect(ChildLimits(), tempfile.mkdtemp(prefix="fplimits"))
    try:
        return any(isinstance(part, CgroupPart) and part.events for part in confiner.parts)
    finally:
        confiner.close()


def child_cgroups(pid):
    """
    C{{controller: path}} from C{/proc/PID/cgroup}.
    """
    found = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                found[controller] = path
    return found


def host_addresses():
    """
    This machine's own interface addresses, loopback left out.
    """
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                found.append(ip.ip)
    return found


class EgressAttackTests(TestCase):
    timeout = 60

    async def test_loopback_admin_and_host_unreachable(self):
        """
        Neither fetch() nor connect() reaches a server on this machine, by any spelling of
        loopback, by the host's own addresses, or the admin API itself; the canary counts
        zero hits.
        """
        canary = Canary()
        port = reactor.listenTCP(0, Site(canary), interface="0.0.0.0")
        self.addCleanup(port.stopListening)
        p = port.getHost().port
        fp = await Funcplane(self).start()
        await fp.deploy("probe", PROBE)
        spellings = ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "127.0.0.2", "[::1]",
                     "[::ffff:127.0.0.1]", "0.0.0.0", "localhost"]
        targets = [f"{s}:{p}" for s in spellings] + [f"{a}:{p}" for a in host_addresses()]
        targets.append(f"127.0.0.1:{fp.port}")
        query = json.dumps(targets)
        code, text = await fp.get("probe.func.local", "/?" + query)
        self.assertEqual(code, 200, text)
        results = json.loads(text)
        self.assertEqual(len(results), 2 * len(targets))
        self.assertEqual({k: v for k, v in results.items() if v != "blocked"}, {})
        self.assertEqual(canary.hits, 0)


class ProcessAttackTests(TestCase):
    timeout = 60

    async def test_child_environment_and_secrets(self):
        """
        A child's environment is empty (no admin token), and an env value planted as a
        secret never appears in any log event.
        """
        events = []
        observer = lambda event: events.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        fp = await Funcplane(self).start()
        secret = "planted-secret-4f1c9a"
        code, body = await fp.deploy("keeper", "export default { fetch(r, env) { return new Response('ok') } }",
                                     version="v1", env_vars={"API_KEY": secret})
        self.assertEqual(code, 200, body)
        await fp.get("keeper.func.local")
        await fp.deploy("keeper", "export default {", version="v2", env_vars={"API_KEY": secret})
        [pid] = processes_in(fp.run_dir)
        with open(f"/proc/{pid}/environ", "rb") as f:
            self.assertEqual(f.read(), b"")
        self.assertTrue(events)
        self.assertEqual([e for e in events if secret in e], [])
        for root, _, files in os.walk(fp.data_dir):
            for name in files:
                path = os.path.join(root, name)
                if name.startswith("funcplane.sqlite3"):
                    self.assertEqual(os.stat(path).st_mode & 0o077, 0, path)
                    continue
                if os.path.isfile(path):
                    with open(path, "rb") as f:
                        self.assertNotIn(secret.encode(), f.read(), path)

    async def test_children_not_root(self):
        """
        When funcplane runs as root, its children do not: they run as nobody.
        """
        if os.geteuid() != 0:
            raise SkipTest("funcplane is not running as root here: children run as its own user")
        fp = await Funcplane(self).start()
        await fp.deploy("who", "export default { fetch() { return new Response('x') } }")
        [pid] = processes_in(fp.run_dir)
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        self.assertEqual(set(uids), {str(pwd.getpwnam("nobody").pw_uid)})

    async def test_heap_bomb(self):
        """
        A function that exhausts its heap kills only its own child: its client gets an
        error, another function keeps answering, and its next request gets a fresh child.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("bomb", HEAP_BOMB)
        await fp.deploy("other", "export default { fetch() { return new Response('fine') } }")
        code, _ = await fp.get("bomb.func.local", "/bomb")
        self.assertIn(code, [502, 503])
        self.assertEqual(await fp.get("other.func.local"), (200, "fine"))
        self.assertEqual(await fp.get("bomb.func.local"), (200, "alive"))

    async def test_wake_storm_within_budget(self):
        """
        Concurrent requests to more suspended versions than --max-running never run more
        children than the budget; each is answered, or refused with 503 while all are busy.
        """
        fp = await Funcplane(self, max_running=2, scale_to_zero=True, idle_timeout=30).start()
        for i in range(5):
            await fp.deploy(f"f{i}", f"export default {{ fetch() {{ return new Response('f{i}') }} }}")
        peak = [0]

        def sample():
            peak[0] = max(peak[0], len(processes_in(fp.run_dir)))

        sampler = LoopingCall(sample)
        sampler.start(0.005)
        answers = await gatherResults(
            [Deferred.fromCoroutine(fp.get(f"f{i % 5}.func.local")) for i in range(20)]
        )
        sampler.stop()
        sample()
        self.assertLessEqual(peak[0], 2)
        for i, (code, text) in enumerate(answers):
            if code == 503:
                self.assertIn("every one is busy", text)
            else:
                self.assertEqual((code, text), (200, f"f{i % 5}"))
        self.assertTrue(any(code == 200 for code, _ in answers))

    async def test_array_buffer_bomb_bounded(self):
        """
        ArrayBuffers live outside V8's heap, so the heap limit does not stop them; the
        child's memory cgroup does.  The kernel kills the bomb's child at its limit (not
        the 6 GiB it asks for), the client gets 502, the logs say why, and the next request
        gets a fresh child.
        """
        if not memory_cgroups_here():
            raise SkipTest(
                "no writable memory cgroup on this machine: children get an address-space"
                " rlimit instead (see test_limits.RlimitTests)"
            )
        fp = await Funcplane(self, child_limits=ChildLimits(memory_bytes=256 * MiB, cpu=0.5)).start()
        await fp.deploy("bomb", BUFFER_BOMB)
        await fp.deploy("other", "export default { fetch() { return new Response('fine') } }")
        [first, _] = sorted(processes_in(fp.run_dir))
        groups = child_cgroups(first)
        self.assertIn("/funcplane-", groups.get("memory", "") + groups.get("", ""))
        code, text = await fp.get("bomb.func.local", "/bomb")
        self.assertEqual((code, text), (502, "the function did not answer\n"))
        self.assertEqual(await fp.get("other.func.local"), (200, "fine"))
        self.assertEqual(await fp.get("bomb.func.local"), (200, "alive"))
        self.assertNotIn(first, processes_in(fp.run_dir))
        code, logs = await fp.api("GET", "/api/functions/bomb/logs")
        messages = [line["message"] for line in logs["lines"]]
        self.assertIn("killed by the kernel: it used more than its memory limit", messages)

    async def test_child_cpu_quota(self):
        """
        Each child sits in a CPU cgroup of its own with the operator's --child-cpu as its
        quota, so a spinning child is throttled to that share and leaves the other cores
        alone.
        """
        confiner = detect(ChildLimits(cpu=0.5), tempfile.mkdtemp(prefix="fplimits"))
        confiner.close()
        if confiner.missing:
            raise SkipTest(confiner.missing[0])
        fp = await Funcplane(self, child_limits=ChildLimits(cpu=0.5)).start()
        await fp.deploy("spin", "export default { fetch() { return new Response('x') } }")
        [pid] = processes_in(fp.run_dir)
        groups = child_cgroups(pid)
        group = groups.get("cpu") or groups[""]
        [part] = [p for p in fp.service.runtime.confiner.parts if "CPU" in p.label]
        self.assertEqual(os.path.basename(os.path.dirname(group)), os.path.basename(part.parent))
        if "cpu" in groups:
            quota_file, expected = "cpu.cfs_quota_us", "50000"
        else:
            quota_file, expected = "cpu.max", "50000 100000"
        with open(os.path.join(part.parent, os.path.basename(group), quota_file)) as f:
            self.assertEqual(f.read().strip(), expected)


LOUD = """export default { fetch(request) {
  if (new URL(request.url).pathname == "/loud") {
    console.log("x".repeat(20 * 1024 * 1024));
    return new Response("said 20 MiB");
  }
  return new Response("quiet");
} }"""

CONSOLE_AND_THROW = """export default { fetch(request) {
  const path = new URL(request.url).pathname;
  if (path == "/throw") throw new TypeError("kaboom");
  console.log("a log");
  console.info("an info");
  console.debug("a debug");
  console.warn("a warn");
  console.error("an error, not thrown");
  return new Response("printed");
} }"""

SPIN = """export default { fetch(request) {
  if (new URL(request.url).pathname == "/spin") { for (;;) {} }
  return new Response("not spinning");
} }"""


class OutputAttackTests(TestCase):
    """
    What a function prints cannot cost funcplane more than its share.
    """

    timeout = 60

    async def test_huge_console_log(self):
        """
        One console.log of 20 MiB: other requests are answered meanwhile without a stall,
        and funcplane keeps only the line cap of it (the line says how much was dropped),
        in the log book and in its own log event.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        fp = await Funcplane(self, max_log_line_bytes=16 * 1024).start()
        await fp.deploy("loud", LOUD)
        await fp.deploy("quiet", "export default { fetch() { return new Response('fine') } }")
        loud = Deferred.fromCoroutine(fp.get("loud.func.local", "/loud"))
        latencies = []
        loud_id = self.version_id(fp, "loud")
        while not loud.called or not fp.service.logbook.lines([loud_id]):
            started = reactor.seconds()
            self.assertEqual(await fp.get("quiet.func.local"), (200, "fine"))
            latencies.append(reactor.seconds() - started)
        self.assertEqual(await loud, (200, "said 20 MiB"))
        self.assertLess(max(latencies), 0.5, f"{len(latencies)} requests, slowest {max(latencies):.2f} s")
        [entry] = fp.service.logbook.lines([loud_id])
        self.assertLess(len(entry.message), 16 * 1024, f"kept {len(entry.message)} characters of the line")
        dropped = 20 * 1024 * 1024 + len('{"timestamp":0000000000000,"level":"log","message":""}') - 16 * 1024
        self.assertEqual((entry.kind, entry.level), ("console", "log"))
        self.assertRegex(entry.message, r"^x{16000,} \[truncated: \d+ more bytes dropped\]$")
        self.assertAlmostEqual(int(entry.message.rsplit("truncated: ", 1)[1].split()[0]), dropped, delta=8)
        [event] = [e for e in events if e.get("function") == "loud" and "truncated" in e]
        self.assertEqual(event["text"], entry.message)
        self.assertGreater(event["truncated"], 20 * 1024 * 1024 - 16 * 1024)

    def version_id(self, fp, function):
        """
        The id of C{function}'s latest version.
        """
        return fp.service.routes.resolve(f"{function}.func.local")


class ConsoleAndExceptionTests(TestCase):
    """
    A real child's console output and its uncaught errors are different events, as on
    Cloudflare.
    """

    timeout = 60

    async def test_console_error_is_not_an_exception(self):
        """
        console.log, .info, .debug, .warn and .error come back as console lines at their
        own levels, and a tail sees a request that called console.error as outcome ok
        with no exception; a request that throws is an exception, with its name and
        message, and no console line.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("printer", CONSOLE_AND_THROW)
        version_id = fp.service.routes.resolve("printer.func.local")
        tail = fp.service.tails.open("printer", TailFilter())
        socket = FakeSocket()
        fp.service.tails.attached(fp.service.tails.waiting(tail.id), socket)
        self.assertEqual(await fp.get("printer.func.local", "/print"), (200, "printed"))
        await eventually(lambda: len(socket.sent) == 1)
        code, _ = await fp.get("printer.func.local", "/throw")
        self.assertEqual(code, 500)
        await eventually(lambda: len(socket.sent) == 2)
        printed, threw = socket.sent
        self.assertEqual((printed["outcome"], printed["exceptions"]), ("ok", []))
        self.assertEqual(
            [(log["level"], log["message"]) for log in printed["logs"]],
            [("log", ["a log"]), ("info", ["an info"]), ("debug", ["a debug"]), ("warn", ["a warn"]),
             ("error", ["an error, not thrown"])],
        )
        self.assertEqual((threw["outcome"], threw["logs"]), ("exception", []))
        [exception] = threw["exceptions"]
        self.assertEqual((exception["name"], exception["message"]), ("TypeError", "kaboom"))
        kept = [(e.kind, e.level, e.message.splitlines()[0]) for e in fp.service.logbook.lines([version_id])]
        self.assertEqual(
            kept,
            [("console", "log", "a log"), ("console", "info", "an info"), ("console", "debug", "a debug"),
             ("console", "warn", "a warn"), ("console", "error", "an error, not thrown"),
             ("exception", "error", "TypeError: kaboom")],
        )
        code, logs = await fp.api("GET", "/api/functions/printer/logs")
        self.assertEqual([line["level"] for line in logs["lines"]], ["log", "info", "debug", "warn", "error", "error"])


class SpinAttackTests(TestCase):
    """
    A handler in an endless loop, under a CPU quota of half a core.
    """

    timeout = 60

    async def test_throttled_spinner_killed_and_next_request_served(self):
        """
        With --child-cpu 0.5 the spinning child uses half a core at most, and is killed
        all the same once its request timed out (504); a request sent right after the
        504, while the child is watched, waits for the verdict and is answered by a fresh
        child, not killed with the wedged one.
        """
        confiner = detect(ChildLimits(cpu=0.5), tempfile.mkdtemp(prefix="fplimits"))
        confiner.close()
        if confiner.missing:
            raise SkipTest(confiner.missing[0])
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        fp = await Funcplane(self, child_limits=ChildLimits(cpu=0.5), request_timeout=1.0).start()
        await fp.deploy("spin", SPIN)
        [wedged] = processes_in(fp.run_dir)
        code, text = await fp.get("spin.func.local", "/spin")
        self.assertEqual((code, text), (504, "the function did not answer within 1 seconds\n"))
        self.assertEqual(await fp.get("spin.func.local", "/"), (200, "not spinning"))
        await eventually(lambda: wedged not in processes_in(fp.run_dir))
        [killed] = [e for e in events if e.get("log_format", "").startswith("killed {function}")]
        # Throttled to half a core, it still ran or waited to run all of the time.
        self.assertEqual(killed["function"], "spin")
        self.assertGreater(killed["percent"], 80)


class DescriptorAttackTests(TestCase):
    """
    Running out of file descriptors refuses new versions with the reason, and leaves
    what runs serving.
    """

    timeout = 60

    async def test_out_of_descriptors(self):
        """
        With descriptors held elsewhere until a few deploys' worth are left above the
        reserve, deploys succeed until fewer than the reserve are free; then a deploy
        answers 503 saying why and what to do, and every version that started still
        answers; once the descriptors are freed, a deploy succeeds again.
        """
        fp = await Funcplane(self, fd_reserve=64).start()
        code, body = await fp.deploy("f0", "export default { fetch() { return new Response('f0') } }")
        self.assertEqual(code, 200, body)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        # A limit above every descriptor open now (one under an open descriptor breaks
        # spawning), then descriptors held until 76 are free: about four deploys' worth
        # above the reserve of 64.
        limit = max(int(fd) for fd in os.listdir("/proc/self/fd")) + 200
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        held = [os.open(os.devnull, os.O_RDONLY) for _ in range(limit - 76 - count_open())]
        self.addCleanup(lambda: [os.close(fd) for fd in held if fd is not None])
        deployed, refused = ["f0"], None
        for i in range(1, 30):
            code, body = await fp.deploy(f"f{i}", f"export default {{ fetch() {{ return new Response('f{i}') }} }}")
            if code != 200:
                refused = (code, body)
                break
            deployed.append(f"f{i}")
        self.assertIsNotNone(refused, "no deploy was refused")
        code, body = refused
        self.assertEqual((code, body["error"]["code"]), (503, "at_capacity"), body)
        self.assertRegex(
            body["error"]["message"],
            r"^funcplane has \d+ of its \d+ file descriptors free, fewer than the 64 it keeps for the"
            r" versions already running \(--fd-reserve\), so no other version starts until some close;"
            r" raise funcplane's open files limit \(LimitNOFILE= in its systemd unit, or ulimit -n\)"
            r" or lower --max-running$",
        )
        self.assertGreater(len(deployed), 2)
        for name in deployed:
            self.assertEqual(await fp.get(f"{name}.func.local"), (200, name))
        for index, fd in enumerate(held):
            os.close(fd)
            held[index] = None
        name = f"f{len(deployed)}"
        code, body = await fp.deploy(name, f"export default {{ fetch() {{ return new Response('{name}') }} }}")
        self.assertEqual(code, 200, body)
        self.assertEqual(await fp.get(f"{name}.func.local"), (200, name))


# Run inside a private network namespace (unshare -n): puts ADDRESSES on its loopback, serves
# a canary on all of them, runs one real workerd child with funcplane's egress policy (the
# host's own addresses left out, so that only the special-purpose ranges can deny), and
# prints what the child's fetch() and connect() reached and how often the canary was hit.
NAMESPACE_PROBE = r"""
import http.server, json, os, socket, subprocess, sys, tempfile, threading, time, ipaddress
from funcplane.model import VersionSpec, script_modules
from funcplane.runtime.config import ConfigBuilder, RuntimeSettings
from funcplane.runtime.egress import EgressPolicy
from funcplane.runtime.locate import find_workerd

addresses, allowed, code = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
for address in addresses:
    family = "-6" if ":" in address else "-4"
    extra = ["nodad"] if ":" in address else []
    subprocess.run(["ip", family, "addr", "add", address, "dev", "lo", *extra], check=True)
hits = []

class Canary(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        hits.append(self.path)
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass

class DualStack(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

server = DualStack(("::", 0), Canary)
port = server.server_address[1]
threading.Thread(target=server.serve_forever, daemon=True).start()
policy = EgressPolicy(allowed=tuple(ipaddress.ip_network(n) for n in allowed))
spec = VersionSpec(id="x", function="probe", version="v1", format="module",
                   modules=script_modules(code, "module"), bindings=())
blob = ConfigBuilder(RuntimeSettings(egress=policy)).build(spec)
directory = tempfile.mkdtemp()
config = os.path.join(directory, "config.bin")
with open(config, "wb") as f:
    f.write(blob)
path = os.path.join(directory, "s.sock")
listening = socket.socket(socket.AF_UNIX)
listening.bind(path)
listening.listen(8)
child = subprocess.Popen([find_workerd(), "serve", "--binary", config, "--socket-fd", f"http={listening.fileno()}",
                          "--socket-addr", "events=unix:" + os.path.join(directory, "e.sock")],
                         pass_fds=[listening.fileno()], env={}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    targets = [f"[{a.split('/')[0]}]:{port}" if ":" in a else f"{a.split('/')[0]}:{port}" for a in addresses]
    query = json.dumps(targets)
    for attempt in range(100):
        try:
            client = socket.socket(socket.AF_UNIX)
            client.connect(path)
            break
        except OSError:
            time.sleep(0.05)
    from urllib.parse import quote
    client.sendall(f"GET /?{quote(query)} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
    response = b""
    while True:
        data = client.recv(65536)
        if not data:
            break
        response += data
    body = response.partition(b"\r\n\r\n")[2]
    print(json.dumps({"results": json.loads(body), "hits": len(hits)}))
finally:
    child.kill()
    child.wait()
"""

# Addresses in ranges workerd counts as public, or that embed an IPv4 address: the deny
# list must refuse each.
SPECIAL = ["2002:7f00:1::1/128", "::ffff:0:7f00:1/128", "3fff::1/128", "5f00::1/128", "100:0:0:1::1/128",
           "2001:db8::1/128", "192.0.2.5/32", "198.51.100.7/32", "203.0.113.5/32", "192.88.99.1/32"]


class EgressNamespaceTests(TestCase):
    """
    Egress denial tried for real, inside a private network namespace whose loopback holds
    the addresses: no packet leaves it.
    """

    timeout = 60

    async def probe(self, allowed):
        if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
            raise SkipTest("needs root, unshare and ip for a private network namespace")
        out, err, status = await getProcessOutputAndValue(
            "/usr/bin/env",
            ["unshare", "-n", sys.executable, "-c", NAMESPACE_PROBE, json.dumps(SPECIAL), json.dumps(allowed), PROBE],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join(sys.path)},
            path=os.getcwd(),
        )
        self.assertEqual(status, 0, err.decode())
        return json.loads(out)

    async def test_special_ranges_refused(self):
        """
        fetch() and connect() to an address of each such range (6to4, IPv4-translated,
        documentation, segment routing, the dummy prefix, the 6to4 relay) are refused and
        the canary counts no hit; with those ranges opened by --egress-allow, the same
        child reaches each, so the refusal is the deny list's.
        """
        refused = await self.probe([])
        self.assertEqual(len(refused["results"]), 2 * len(SPECIAL))
        self.assertEqual({k: v for k, v in refused["results"].items() if v != "blocked"}, {})
        self.assertEqual(refused["hits"], 0)
        opened = await self.probe(SPECIAL)
        self.assertEqual({k: v for k, v in opened["results"].items() if not v.startswith("reached")}, {})
        self.assertEqual(opened["hits"], len(SPECIAL))
