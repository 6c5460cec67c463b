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
