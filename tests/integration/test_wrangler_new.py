"""
The real wrangler CLI, and the raw v4 API, against a real funcplane, for the rest of the
Cloudflare surface: wrangler versions upload on a worker that does not exist yet, the
features funcplane lacks refused by name, List Workers before a Durable Object migration,
and modules uploaded without a Content-Type.
"""

import os

from twisted.trial.unittest import TestCase

from tests.integration import test_wrangler as base
from tests.integration.harness import AUTH, Funcplane

NAME = base.NAME
HOST = base.HOST
ACCOUNT = "/client/v4/accounts/0123456789abcdef0123456789abcdef"


class NewWorkerTests(base.WranglerCase):
    """
    What wrangler does with a worker funcplane does not have yet, and with features it
    does not have at all, on test_wrangler's project.
    """

    body = base.WranglerTests.body
    version_ids = base.WranglerTests.version_ids

    def setUp(self):
        super().setUp()
        base.project(self.project, "hello from funcplane")

    async def test_versions_upload_new_worker(self):
        """
        wrangler versions upload creates a worker that does not exist: the version answers
        at its own host at once, the worker's host says it is not deployed, deployments
        list shows none, and wrangler versions deploy then deploys it.
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        output = await self.wrangler("versions", "upload", "--message", "first")
        self.assertIn("Worker Version ID:", output)
        [version] = await self.version_ids()
        self.assertEqual(await self.body(f"{version[:8]}.{HOST}"), (200, base.answer("hello from funcplane")))
        status, text = await self.body()
        self.assertEqual(status, 404)
        self.assertIn(f"function {NAME} is not deployed", text)

        self.assertNotIn("Version(s)", await self.wrangler("deployments", "list"))
        self.assertIn(f"The Worker {NAME} has no deployments", await self.wrangler("deployments", "status", ok=False))
        status, shown = await self.fp.api("GET", f"/api/functions/{NAME}")
        self.assertEqual((shown["function"]["latest"], len(shown["function"]["versions"])), (None, 1))

        await self.wrangler("versions", "deploy", f"{version}@100%", "--yes")
        self.assertEqual(await self.body(), (200, base.answer("hello from funcplane")))
        self.assertIn("(100%)", await self.wrangler("deployments", "list"))

    async def test_unsupported_features(self):
        """
        wrangler's commands for features funcplane lacks fail with funcplane's message
        naming the feature; a deploy with a Durable Object lists the workers (as wrangler
        does before a migration) and is refused naming Durable Objects, deploying nothing;
        a deploy with routes deploys, then fails naming routes.
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        cases = [
            (("r2", "bucket", "create", "photos"), "R2 is not supported by funcplane"),
            (("queues", "create", "jobs"), "Queues are not supported by funcplane"),
        ]
        for args, message in cases:
            output = await self.wrangler(*args, ok=False)
            self.assertIn(message, " ".join(output.split()), args)

        toml = os.path.join(self.project, "wrangler.toml")
        with open(toml, "a") as f:
            f.write(
                '[[durable_objects.bindings]]\nname = "COUNTER"\nclass_name = "Counter"\n'
                '[[migrations]]\ntag = "v1"\nnew_sqlite_classes = ["Counter"]\n'
            )
        with open(os.path.join(self.project, "src", "index.js"), "a") as f:
            f.write("export class Counter {}\n")
        output = " ".join((await self.wrangler("deploy", ok=False)).split())
        self.assertIn("Durable Objects are not yet supported by funcplane", output)
        self.assertIn("binding COUNTER has type 'durable_object_namespace'", output)
        status, listed = await self.fp.api("GET", "/api/functions")
        self.assertEqual(listed["functions"], [])

        # Routes: wrangler uploads and deploys first, then asks for the zone.
        base.project(self.project, "routed")
        with open(toml) as f:
            config = f.read()
        with open(toml, "w") as f:
            f.write('routes = ["example.com/*"]\n' + config)
        output = " ".join((await self.wrangler("deploy", ok=False)).split())
        self.assertIn("Routes, Custom Domains and zones are not supported by funcplane", output)
        self.assertEqual(await self.body(), (200, base.answer("routed")))


def _part(name, content):
    """
    A part of a multipart body with boundary C{X}, without a Content-Type; with a
    filename unless it is the metadata.
    """
    head = f'Content-Disposition: form-data; name="{name}"'
    if name != "metadata":
        head += f'; filename="{name}"'
    return f"--X\r\n{head}\r\n\r\n".encode() + content + b"\r\n"


class RawUploadTests(TestCase):
    """
    The v4 API as a hand-made upload uses it, without wrangler.
    """

    timeout = 60

    async def test_module_without_content_type(self):
        """
        Modules sent without a Content-Type are typed by their extension and run (an ES
        module importing a wasm, a text and a data module); Download Worker gives them back
        with their types; a listed script says it has modules.
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        main = (
            b'import wasm from "./add.wasm"; import text from "./readme.txt"; import data from "./blob.bin";\n'
            b"export default { async fetch() { const i = await WebAssembly.instantiate(wasm);\n"
            b" return new Response(`${text.trim()} ${i.exports.add(2, 3)} ${new Uint8Array(data).join(',')}`) } }\n"
        )
        upload = b"".join([
            _part("metadata", b'{"main_module": "index.js", "compatibility_date": "2024-09-23"}'),
            _part("index.js", main),
            _part("./add.wasm", base.ADD_WASM),
            _part("./readme.txt", b"read me\n"),
            _part("./blob.bin", base.BLOB),
        ]) + b"--X--\r\n"
        headers = dict(AUTH, **{"Content-Type": "multipart/form-data; boundary=X"})
        code, content = await self.fp.request("PUT", ACCOUNT + "/workers/scripts/raw", upload, headers=headers)
        self.assertEqual(code, 200, content)
        self.assertEqual(await self.fp.get("raw.func.local"), (200, "read me 5 0,255,16,13,10"))

        code, content = await self.fp.request("GET", ACCOUNT + "/workers/scripts/raw", headers=AUTH)
        self.assertEqual(code, 200)
        for expected in [b"Content-Type: application/javascript+module", b"Content-Type: application/wasm",
                         b"Content-Type: text/plain", b"Content-Type: application/octet-stream"]:
            self.assertIn(expected, content)
        code, listed = await self.fp.api("GET", ACCOUNT + "/workers/scripts")
        self.assertEqual([(s["id"], s["has_modules"]) for s in listed["result"]], [("raw", True)])
