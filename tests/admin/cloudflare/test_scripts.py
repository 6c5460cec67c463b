"""
Tests for L{funcplane.admin.cloudflare.scripts}: uploads and deploys, a version's content,
and the bindings a version gets from an upload or a settings change.
"""

import json

from funcplane.admin.cloudflare.upload import multipart_parts
from funcplane.model import PLAIN_TEXT, SECRET_TEXT, Binding
from tests.admin.cloudflare.harness import BASE, INDEX, SCRIPT, UPLOAD, CloudflareCase, cf, vid
from tests.admin.cloudflare.test_upload import body, metadata, module
from tests.fakes import AUTH


class ScriptTests(CloudflareCase):
    """
    A script is a function: created by its first upload, visible to the admin API.
    """

    def test_first_deploy(self):
        """
        PUT creates the function, deploys the version at 100%, and answers its id as the
        deployment id; the admin API sees the same function.
        """
        result = self.deployed()
        self.assertEqual((result["id"], result["deployment_id"], result["has_modules"]), ("hello", cf(1), True))
        self.assertEqual(self.routes.resolve(b"hello.func.local"), vid(1))
        self.assertEqual(self.launcher.launched[0].spec.bindings, (Binding("GREETING", PLAIN_TEXT, "hi"),))
        status, listed = self.call("GET", "http://127.0.0.1:8081/api/functions")
        self.assertEqual([(f["name"], f["latest"]) for f in listed["functions"]], [("hello", "gen1")])
        service = self.ok("GET", BASE + "/workers/services/hello")
        self.assertEqual(service["default_environment"]["script"]["last_deployed_from"], "wrangler")

    def test_content(self):
        """
        A version's content comes back as the multipart body it was uploaded in, with its
        entry point named.
        """
        wasm = b"\x00asm\x01\x00\x00\x00\xff"
        self.upload(metadata(), INDEX, module("./a.wasm", wasm, "application/wasm"))
        d = self.client.get(SCRIPT + f"/content/v2?version={cf(1)}", headers=AUTH)
        self.client.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(self.client.content(response))
        self.assertEqual(response.headers.getRawHeaders(b"cf-entrypoint"), [b"index.js"])
        _, files = multipart_parts(content, response.headers.getRawHeaders(b"content-type")[0].decode(), 1 << 20)
        self.assertEqual([(name, kind, data) for name, _, kind, data in files][1], ("./a.wasm", "application/wasm", wasm))


class InheritedBindingTests(CloudflareCase):
    """
    The bindings a new version keeps from an older one: by a settings change, or by an
    upload that inherits them.
    """

    def test_bulk(self):
        """
        PATCH settings keeps the bindings named without a value and sets the others.
        """
        self.deployed()
        self.ok("PUT", SCRIPT + "/secrets", {"name": "A", "text": "a", "type": "secret_text"})
        settings = {"bindings": [{"type": "plain_text", "name": "GREETING"}, {"type": "secret_text", "name": "A"}, {"type": "secret_text", "name": "B", "text": "b"}]}
        raw = f'--X\r\nContent-Disposition: form-data; name="settings"\r\n\r\n{json.dumps(settings)}\r\n--X--\r\n'.encode()
        result = self.ok("PATCH", SCRIPT + "/settings", raw, {b"Content-Type": [b"multipart/form-data; boundary=X"], **AUTH})
        self.assertEqual([b["name"] for b in result["bindings"]], ["A", "B", "GREETING"])
        self.assertEqual(
            self.launcher.launched[-1].spec.bindings,
            (Binding("A", SECRET_TEXT, "a"), Binding("B", SECRET_TEXT, "b"), Binding("GREETING", PLAIN_TEXT, "hi")),
        )
        self.assertNotIn(b'"text": "b"', self.seen[-1])

    def test_inherit_from_newest(self):
        """
        Inherited and kept bindings come from the newest version even when it is only
        uploaded, as wrangler versions secret put/delete expect: they build on it.
        """
        self.deployed()
        secret = {"name": "VS_KEY", "type": "secret_text", "text": "sekrit"}
        new = [{"name": "GREETING", "type": "inherit"}, secret]
        self.upload(metadata(bindings=new), INDEX, url=SCRIPT + "/versions?excludeScript=true", method="POST")
        keep = [{"name": "GREETING", "type": "inherit"}, {"name": "VS_KEY", "type": "inherit"}]
        self.upload(metadata(bindings=keep), INDEX, url=SCRIPT + "/versions", method="POST")
        self.assertEqual(
            self.launcher.launched[-1].spec.bindings,
            (Binding("GREETING", PLAIN_TEXT, "hi"), Binding("VS_KEY", SECRET_TEXT, "sekrit")),
        )
        self.assertEqual(self.routes.resolve(b"hello.func.local"), vid(1))

    def test_inherit_missing_is_10057(self):
        """
        An inherit binding the newest version does not have is refused with 10057.
        """
        self.deployed()
        result = self.call("POST", SCRIPT + "/versions", body(metadata(bindings=[{"name": "NOPE", "type": "inherit"}]), INDEX), UPLOAD)
        self.assertCfError(result, 400, 10057, "NOPE")
