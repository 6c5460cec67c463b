"""
Attacks from inside a function, and on the machine it runs on: reaching loopback, the
admin API or the host by any spelling, reading funcplane's secrets, exhausting memory,
waking everything at once.
"""

import json
import os
import pwd
import tempfile
from unittest import SkipTest

import ifaddr
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import LoopingCall
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from funcplane.runtime.limits import MiB, ChildLimits, CgroupPart, detect
from tests.integration.harness import Funcplane, processes_in
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
