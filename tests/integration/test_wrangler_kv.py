"""
Workers KV with the unmodified wrangler CLI: C{wrangler kv namespace create/list/rename/
delete}, C{wrangler kv key put/get/list/delete --remote} (with C{--metadata} and C{--ttl})
and C{wrangler kv bulk put/get/delete --remote}, all against funcplane's own store.
"""

import json
import os

from tests.integration.harness import Funcplane
from tests.integration.test_wrangler import WranglerCase


class WranglerKVTests(WranglerCase):
    timeout = 120

    async def namespaces(self):
        return json.loads(await self.wrangler("kv", "namespace", "list"))

    async def test_kv(self):
        """
        A namespace made with wrangler is listed, renamed, written key by key (text, a
        file's bytes, metadata, a TTL) and in bulk,
        read back (value, list with metadata and expiration), deleted key by key and in
        bulk, and deleted; a title taken is refused with wrangler's own advice.
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        output = await self.wrangler("kv", "namespace", "create", "fp-cache")
        [namespace] = await self.namespaces()
        self.assertEqual(namespace["title"], "fp-cache")
        self.assertIn(namespace["id"], output)
        ns = ["--namespace-id", namespace["id"]]
        taken = await self.wrangler("kv", "namespace", "create", "fp-cache", ok=False)
        self.assertIn('A KV namespace with the title "fp-cache" already exists.', taken)

        output = await self.wrangler("kv", "namespace", "rename", "fp-cache", "--new-name", "fp-store")
        self.assertIn("fp-store", output)
        self.assertEqual([n["title"] for n in await self.namespaces()], ["fp-store"])

        await self.wrangler("kv", "key", "put", "greeting", "hello", *ns, "--remote")
        await self.wrangler(
            "kv", "key", "put", "a/b c", "meta", *ns, "--remote", "--metadata", '{"owner":"fp"}', "--ttl", "3600"
        )
        self.assertEqual(await self.wrangler("kv", "key", "get", "greeting", *ns, "--remote", "--text"), "hello\n")
        self.write_project({"bin.dat": "\x00\x01"})
        await self.wrangler("kv", "key", "put", "bin", *ns, "--remote", "--path", "bin.dat", "--metadata", '{"b":1}')
        stored = await self.fp.service.kv.get(namespace["id"], "bin")
        self.assertEqual((stored.value, stored.metadata), (b"\x00\x01", '{"b":1}'))
        await self.wrangler("kv", "key", "delete", "bin", *ns, "--remote")
        self.assertEqual(await self.wrangler("kv", "key", "get", "a/b c", *ns, "--remote", "--text"), "meta\n")
        listed = json.loads(await self.wrangler("kv", "key", "list", *ns, "--remote"))
        self.assertEqual([k["name"] for k in listed], ["a/b c", "greeting"])
        self.assertEqual(listed[0]["metadata"], {"owner": "fp"})
        now = self.fp.service.kv.now()
        self.assertTrue(now + 3500 < listed[0]["expiration"] <= now + 3600, listed[0])

        bulk = os.path.join(self.project, "bulk.json")
        self.write_project({"bulk.json": json.dumps([{"key": f"bulk{i:04d}", "value": str(i)} for i in range(1500)])})
        await self.wrangler("kv", "bulk", "put", bulk, *ns, "--remote")
        listed = json.loads(await self.wrangler("kv", "key", "list", *ns, "--remote", "--prefix", "bulk"))
        self.assertEqual([k["name"] for k in listed], [f"bulk{i:04d}" for i in range(1500)])
        self.assertEqual(await self.wrangler("kv", "key", "get", "bulk1499", *ns, "--remote", "--text"), "1499\n")
        self.write_project({"bulk.json": json.dumps(["bulk0007", "nope"])})
        output = await self.wrangler("kv", "bulk", "get", bulk, *ns, "--remote")
        self.assertEqual(json.loads(output.split("\nSuccess!")[0]), {"bulk0007": "7", "nope": None})

        self.write_project({"bulk.json": json.dumps([f"bulk{i:04d}" for i in range(1500)])})
        await self.wrangler("kv", "bulk", "delete", bulk, *ns, "--remote", "--force")
        await self.wrangler("kv", "key", "delete", "greeting", *ns, "--remote")
        listed = json.loads(await self.wrangler("kv", "key", "list", *ns, "--remote"))
        self.assertEqual([k["name"] for k in listed], ["a/b c"])
        missing = await self.wrangler("kv", "key", "get", "greeting", *ns, "--remote", "--text", ok=False)
        self.assertIn("404", missing)

        await self.wrangler("kv", "namespace", "delete", *ns, "--skip-confirmation")
        self.assertEqual(await self.namespaces(), [])

    async def test_deploy_provisions(self):
        """
        wrangler deploy of a [[kv_namespaces]] binding without an id provisions the
        namespace (titled <script>-<binding>) and binds it; the worker counts in it; a
        second deploy inherits the same namespace and the count goes on.
        """
        self.fp = Funcplane(self)
        self.addCleanup(self.fp.remove)
        await self.fp.start()
        self.write_project(
            {
                "wrangler.toml": 'name = "kv-fp"\nmain = "src/index.js"\ncompatibility_date = "2024-09-23"\n'
                'workers_dev = true\n[[kv_namespaces]]\nbinding = "COUNTER_NS"\n',
                "src/index.js": COUNTER,
            }
        )
        await self.wrangler("deploy")
        [namespace] = await self.namespaces()
        self.assertEqual(namespace["title"], "kv-fp-counter-ns")
        self.assertEqual([await self.count() for _ in range(2)], ["1", "2"])
        await self.wrangler("deploy")
        self.assertEqual([n["id"] for n in await self.namespaces()], [namespace["id"]])
        self.assertEqual(await self.count(), "3")
        stored = await self.fp.service.kv.get(namespace["id"], "count")
        self.assertEqual(stored.value, b"3")

    async def count(self):
        status, text = await self.fp.get("kv-fp.func.local")
        self.assertEqual(status, 200, text)
        return text


COUNTER = """export default {
  async fetch(request, env) {
    const n = Number(await env.COUNTER_NS.get("count") || "0") + 1;
    await env.COUNTER_NS.put("count", String(n));
    return new Response(String(n));
  },
};
"""
