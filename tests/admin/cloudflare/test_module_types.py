"""
Tests for L{funcplane.admin.cloudflare.upload} through the v4 routes: what a module is when
its part has no Content-Type, and what a binding without a type, or of a type funcplane
lacks, or a Durable Object migration, is answered.
"""

from funcplane.admin.cloudflare import features
from tests.admin.cloudflare.harness import INDEX, SCRIPT, UPLOAD, CloudflareCase, vid
from tests.admin.cloudflare.test_upload import WASM, body, metadata, part

MAIN = b'import a from "./a.cjs"; export default { fetch() { return new Response("hi") } }'


def untyped(name, content):
    """
    A module part with a filename and no Content-Type.
    """
    return part(name, content, filename=name)


class ExtensionTests(CloudflareCase):
    """
    A part without a Content-Type is typed by its extension, as wrangler's module rules do.
    """

    def test_typed_by_extension(self):
        """
        .js and .mjs are ES modules, .cjs CommonJS, .wasm WebAssembly, .bin data, .txt,
        .html and .sql text, .json JSON; the bytes are kept, and the version starts.
        """
        parts = [
            untyped("index.js", MAIN),
            untyped("./b.mjs", "export const b = 1;"),
            untyped("./a.cjs", "module.exports = 1;"),
            untyped("./add.wasm", WASM),
            untyped("./blob.bin", b"\x00\xff"),
            untyped("./readme.txt", "read me"),
            untyped("./page.HTML", "<p>hi</p>"),
            untyped("./q.sql", "SELECT 1"),
            untyped("./conf.json", '{"on": true}'),
        ]
        self.upload(metadata(), *parts)
        self.assertEqual(self.routes.resolve(b"hello.func.local"), vid(1))
        spec = self.launcher.launched[-1].spec
        self.assertEqual(
            [(m.name, m.kind, m.content) for m in spec.modules],
            [
                ("index.js", "esModule", MAIN),
                ("./b.mjs", "esModule", b"export const b = 1;"),
                ("./a.cjs", "commonJsModule", b"module.exports = 1;"),
                ("./add.wasm", "wasm", WASM),
                ("./blob.bin", "data", b"\x00\xff"),
                ("./readme.txt", "text", b"read me"),
                ("./page.HTML", "text", b"<p>hi</p>"),
                ("./q.sql", "text", b"SELECT 1"),
                ("./conf.json", "json", b'{"on": true}'),
            ],
        )

    def test_content_type_wins(self):
        """
        A part's Content-Type, when it has one, says what it is whatever its name.
        """
        self.upload(metadata(), INDEX, part("./data.js", b"\x01", filename="./data.js", content_type="application/octet-stream"))
        self.assertEqual(self.launcher.launched[-1].spec.modules[1].kind, "data")

    def test_unknown_extension(self):
        """
        A part without a Content-Type whose name funcplane cannot type is refused naming it
        and both ways to fix it; nothing starts.
        """
        result = self.call("PUT", SCRIPT, body(metadata(), INDEX, untyped("./logo.png", b"\x89PNG")), UPLOAD)
        self.assertEqual(
            result,
            (400, {
                "success": False,
                "errors": [{
                    "code": 10021,
                    "message": "module ./logo.png has no Content-Type, and funcplane cannot tell its type"
                    " from its name; give the part a Content-Type (application/javascript,"
                    " application/javascript+module, application/json, application/octet-stream,"
                    " application/wasm, text/javascript, text/javascript+module, text/plain) or a"
                    " name ending in .js, .mjs, .cjs, .wasm, .bin, .txt, .html, .sql, .json",
                }],
                "messages": [],
                "result": None,
            }),
        )
        self.assertEqual(self.launcher.launched, [])

    def test_main_module_not_javascript(self):
        """
        A main module that its name types as text is refused, saying what it was taken for.
        """
        result = self.call("PUT", SCRIPT, body(metadata(main_module="main.txt"), untyped("main.txt", "hi")), UPLOAD)
        self.assertCfError(
            result, 400, 10021,
            "the main module main.txt must be JavaScript, and its part's Content-Type makes it a text"
            " module; send it as application/javascript+module",
        )


class BindingTypeTests(CloudflareCase):
    """
    Bindings funcplane cannot make are refused with code 10057, saying why.
    """

    def test_no_type(self):
        """
        A binding without a type is refused naming it and the types funcplane provides.
        """
        result = self.call("PUT", SCRIPT, body(metadata(bindings=[{"name": "GREETING", "text": "hi"}]), INDEX), UPLOAD)
        self.assertCfError(
            result, 400, 10057,
            "binding GREETING has no 'type'. The bindings funcplane provides: plain_text, json,"
            " secret_text, kv_namespace (vars, secrets, KV), and inherit to keep the previous version's"
            " binding of that name.",
        )
        self.assertEqual(self.launcher.launched, [])

    def test_feature_named(self):
        """
        A binding that needs a feature funcplane lacks is refused naming the feature.
        """
        cases = [
            ({"name": "DB", "type": "d1", "id": "6f0a"}, features.D1_BINDING),
            ({"name": "COUNTER", "type": "durable_object_namespace", "class_name": "Counter"},
             features.DURABLE_OBJECTS),
            ({"name": "PHOTOS", "type": "r2_bucket", "bucket_name": "photos"}, features.R2),
            ({"name": "JOBS", "type": "queue", "queue_name": "jobs"}, features.QUEUES),
            ({"name": "AUTH", "type": "service", "service": "auth"}, features.SERVICE_BINDINGS),
        ]
        for binding, feature in cases:
            result = self.call("PUT", SCRIPT, body(metadata(bindings=[binding]), INDEX), UPLOAD)
            self.assertCfError(
                result, 400, 10057,
                f"binding {binding['name']} has type {binding['type']!r}: {feature.message} The"
                " bindings funcplane provides: plain_text, json, secret_text, kv_namespace (vars, secrets, KV).",
            )
        self.assertEqual(self.launcher.launched, [])

    def test_migrations(self):
        """
        A Durable Object migration is refused with Cloudflare's Durable Objects code even
        when no binding names a class; nothing starts.
        """
        migrations = {"new_tag": "v1", "steps": [{"new_sqlite_classes": ["Counter"]}]}
        result = self.call("PUT", SCRIPT, body(metadata(migrations=migrations), INDEX), UPLOAD)
        self.assertEqual(
            result,
            (403, {
                "success": False,
                "errors": [{"code": 10084, "message": features.DURABLE_OBJECTS.message}],
                "messages": [],
                "result": None,
            }),
        )
        self.assertEqual(self.launcher.launched, [])
