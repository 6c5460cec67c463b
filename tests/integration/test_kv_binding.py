"""
The KV binding inside real workerd children (running as C{nobody} when the tests run as
root): a version bound to a namespace reads and writes it through C{env.NS}, over its own
storage socket, and nothing else.
"""

import json
import os
import stat

from twisted.internet import reactor
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from funcplane.runtime.process import children_directory
from tests.integration.harness import Funcplane, RawClient

COUNTER = """export default {
  async fetch(request, env) {
    const n = Number(await env.NS.get("count") || "0") + 1;
    await env.NS.put("count", String(n));
    return new Response(String(n));
  },
};
"""

PROBE = """export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const ns = env.NS;
    const out = {};
    try {
      switch (url.pathname) {
        case "/types":
          await ns.put("t", JSON.stringify({a: [1, "é"]}), {metadata: {owner: "fp", n: 1}});
          out.text = await ns.get("t");
          out.json = await ns.get("t", "json");
          out.buffer = Array.from(new Uint8Array(await ns.get("t", "arrayBuffer"))).length;
          out.stream = await new Response(await ns.get("t", {type: "stream"})).text();
          out.meta = await ns.getWithMetadata("t", "json");
          out.missing = await ns.get("nope");
          out.cached = await ns.get("t", {cacheTtl: 60});
          await ns.put("a key/ü?&+=", new Uint8Array([0, 1, 255]));
          out.odd = Array.from(new Uint8Array(await ns.get("a key/ü?&+=", "arrayBuffer")));
          out.bulk = Object.fromEntries(await ns.get(["t", "nope"], "json"));
          out.bulkMeta = Object.fromEntries(await ns.getWithMetadata(["t"]));
          await ns.delete("a key/ü?&+=");
          out.deleted = await ns.get("a key/ü?&+=");
          break;
        case "/list": {
          for (let i = 0; i < 5; i++) await ns.put("p/" + i, "v" + i, {metadata: {i}});
          await ns.put("q", "x");
          const first = await ns.list({prefix: "p/", limit: 2});
          const rest = await ns.list({prefix: "p/", cursor: first.cursor});
          out.first = first.keys.map((k) => [k.name, k.metadata]);
          out.complete = [first.list_complete, rest.list_complete];
          out.rest = rest.keys.map((k) => k.name);
          break;
        }
        case "/ttl": {
          await ns.put("e", "soon", {expirationTtl: 120});
          out.expiration = (await ns.list({prefix: "e"})).keys[0].expiration;
          await ns.put("e2", "x", {expirationTtl: 10});
          break;
        }
      }
    } catch (e) {
      out.error = String(e);
    }
    return Response.json(out);
  },
};
"""


class KVBindingTests(TestCase):
    timeout = 60

    async def setUp(self):
        self.fp = Funcplane(self)
        self.addCleanup(self.fp.remove)
        await self.fp.start()
        self.ns = (await self.fp.service.kv.create_namespace("counts")).id
        self.other = (await self.fp.service.kv.create_namespace("other")).id

    async def deploy(self, name, code, namespace=None, **fields):
        bound = [{"binding": "NS", "id": namespace or self.ns}]
        status, answer = await self.fp.deploy(name, code, kv_namespaces=bound, **fields)
        self.assertEqual(status, 200, answer)
        return answer

    async def count(self, name="counter"):
        status, text = await self.fp.get(f"{name}.func.local")
        self.assertEqual(status, 200, text)
        return text

    async def probe(self, path):
        status, text = await self.fp.get("probe.func.local", path)
        self.assertEqual(status, 200, text)
        return json.loads(text)

    async def test_counter_survives(self):
        """
        A counter bound to a namespace counts on across a redeploy, a rollback and a restart
        of funcplane; the binding is shown by the API; the child's storage socket belongs
        to the child's user (0600) and is gone once the child is.
        """
        await self.deploy("counter", COUNTER, version="v1")
        self.assertEqual([await self.count() for _ in range(3)], ["1", "2", "3"])
        sockets = [n for n in os.listdir(children_directory(self.fp.run_dir)) if n.endswith(".storage.sock")]
        self.assertEqual(len(sockets), 1)
        mode = os.stat(os.path.join(children_directory(self.fp.run_dir), sockets[0]))
        self.assertEqual(stat.S_IMODE(mode.st_mode), 0o600)
        status, shown = await self.fp.api("GET", "/api/functions/counter")
        pid = shown["function"]["versions"][0]["pid"]
        with open(f"/proc/{pid}/status") as status_file:
            [uid] = [line.split()[1] for line in status_file if line.startswith("Uid:")]
        # The child runs as the socket's owner (nobody, when the tests run as root).
        self.assertEqual(int(uid), mode.st_uid, (pid, uid, mode))
        if os.geteuid() == 0:
            self.assertNotEqual(mode.st_uid, 0)
        await self.deploy("counter", COUNTER, version="v2")
        self.assertEqual(await self.count(), "4")
        status, answer = await self.fp.api("POST", "/api/rollback/counter", {"version": "v1"})
        self.assertEqual(status, 200, answer)
        self.assertEqual(await self.count(), "5")
        status, shown = await self.fp.api("GET", "/api/functions/counter")
        self.assertEqual(
            shown["function"]["versions"][0]["bindings"], [{"name": "NS", "type": "kv_namespace", "namespace_id": self.ns}]
        )
        await self.fp.stop()
        self.assertEqual(
            [n for n in os.listdir(children_directory(self.fp.run_dir)) if n.endswith(".sock")], []
        )
        await self.fp.start()
        self.assertEqual(await self.count(), "6")
        self.assertEqual((await self.fp.service.kv.get(self.ns, "count")).value, b"6")

    async def test_get_types(self):
        """
        Through the binding: get as text, json, arrayBuffer and stream, getWithMetadata,
        a missing key as null, cacheTtl, a key with reserved characters and binary bytes,
        bulk get (json, and with metadata), delete.
        """
        await self.deploy("probe", PROBE)
        out = await self.probe("/types")
        value = {"a": [1, "é"]}
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        self.assertEqual(
            out,
            {
                "text": text,
                "json": value,
                "buffer": len(text.encode()),
                "stream": text,
                "meta": {"value": value, "metadata": {"owner": "fp", "n": 1}, "cacheStatus": "MISS"},
                "missing": None,
                "cached": text,
                "odd": [0, 1, 255],
                "bulk": {"t": value, "nope": None},
                "bulkMeta": {"t": {"value": text, "metadata": {"owner": "fp", "n": 1}}},
                "deleted": None,
            },
        )
        self.assertEqual((await self.fp.service.kv.get(self.ns, "t")).metadata, '{"owner":"fp","n":1}')

    async def test_list_and_ttl(self):
        """
        list pages with prefix, limit and cursor, metadata included; a put with
        expirationTtl expires then, and one under 60 s fails with Cloudflare's message.
        """
        await self.deploy("probe", PROBE)
        out = await self.probe("/list")
        self.assertEqual(out["first"], [["p/0", {"i": 0}], ["p/1", {"i": 1}]])
        self.assertEqual(out["complete"], [False, True])
        self.assertEqual(out["rest"], ["p/2", "p/3", "p/4"])
        out = await self.probe("/ttl")
        now = self.fp.service.kv.now()
        self.assertTrue(now + 110 < out["expiration"] <= now + 121, out)
        self.assertEqual(
            out["error"],
            "Error: KV PUT failed: 400 Invalid expiration_ttl of 10. Expiration TTL must be at least 60.",
        )

    async def test_only_bound_namespace(self):
        """
        A version reaches only the namespace it binds: a request naming another namespace on
        its storage socket is refused (403), and another function bound to the other
        namespace sees only its own keys.
        """
        await self.deploy("counter", COUNTER)
        await self.deploy("elsewhere", COUNTER, namespace=self.other)
        self.assertEqual(await self.count(), "1")
        self.assertEqual(await self.count("elsewhere"), "1")
        self.assertEqual(await self.count("elsewhere"), "2")
        self.assertEqual((await self.fp.service.kv.get(self.ns, "count")).value, b"1")
        directory = children_directory(self.fp.run_dir)
        sockets = [n for n in os.listdir(directory) if n.endswith(".storage.sock")]
        self.assertEqual(len(sockets), 2)
        for name in sockets:
            statuses = []
            for namespace in (self.ns, self.other):
                endpoint = UNIXClientEndpoint(reactor, os.path.join(directory, name))
                client = await connectProtocol(endpoint, RawClient())
                self.addCleanup(client.transport.loseConnection)
                client.transport.write(
                    b"GET /count?urlencoded=true HTTP/1.1\r\nHost: fake-host\r\n"
                    b"X-FP-Namespace: " + namespace.encode() + b"\r\n\r\n"
                )
                statuses.append((await client.wait_for(b"\r\n\r\n")).split(b"\r\n")[0])
            # Each socket serves its own version's namespace, and refuses the other's.
            self.assertEqual(
                sorted(statuses), [b"HTTP/1.1 200 OK", b"HTTP/1.1 403 namespace not bound"], name
            )
        status, answer = await self.fp.deploy(
            "stray", COUNTER, kv_namespaces=[{"binding": "NS", "id": "0" * 32}]
        )
        self.assertEqual(status, 400, answer)
        self.assertIn("is not valid", json.dumps(answer))
