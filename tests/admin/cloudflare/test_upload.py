"""
Tests for L{funcplane.admin.cloudflare.upload}: worker uploads as wrangler sends them.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import CodeTooLarge, InvalidBinding, InvalidName, InvalidRequest
from funcplane.model import JSON, MODULE, PLAIN_TEXT, SCRIPT, SECRET_TEXT, SERVICE_WORKER, Binding, Module
from funcplane.admin.parse import Limits
from funcplane.admin.cloudflare.upload import multipart_parts, parse_bindings, parse_upload

BOUNDARY = "----formdata-undici-033748603979"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
WASM = b"\x00asm\x01\x00\x00\x00" + bytes(range(256))


def part(name, content, filename=None, content_type=None):
    head = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        head += f'; filename="{filename}"'
    if content_type is not None:
        head += f"\r\nContent-Type: {content_type}"
    if isinstance(content, str):
        content = content.encode("utf-8")
    return f"--{BOUNDARY}\r\n{head}\r\n\r\n".encode() + content + b"\r\n"


def body(*parts):
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def metadata(**fields):
    return part("metadata", json.dumps(dict({"main_module": "index.js"}, **fields)))


def module(name, content, content_type="application/javascript+module"):
    return part(name, content, filename=name, content_type=content_type)


INDEX = module("index.js", 'import "./lib/a.js"; export default {}')


class MultipartTests(SynchronousTestCase):
    def test_parts(self):
        """
        Parts without a filename are fields; the others keep their name, filename,
        content type and exact bytes, CR LF and NUL included, in order.
        """
        fields, files = multipart_parts(
            body(
                metadata(),
                module("./a5c3-data.bin", b"\x00\r\n--x\xff", "application/octet-stream"),
                module("odd name \u00e9.txt", "t", "text/plain"),
            ),
            CONTENT_TYPE,
            1 << 20,
        )
        self.assertEqual(json.loads(fields["metadata"]), {"main_module": "index.js"})
        self.assertEqual(
            files,
            [
                ("./a5c3-data.bin", "./a5c3-data.bin", "application/octet-stream", b"\x00\r\n--x\xff"),
                ("odd name \u00e9.txt", "odd name \u00e9.txt", "text/plain", b"t"),
            ],
        )

    def test_quoted_filename(self):
        """
        A double quote in a name arrives as undici encodes it (C{%22}) and is decoded.
        """
        raw = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a%22b.js"; filename="a%22b.js"\r\n'
        raw += "Content-Type: text/plain\r\n\r\nx\r\n"
        _, files = multipart_parts(raw.encode() + f"--{BOUNDARY}--\r\n".encode(), CONTENT_TYPE, 1 << 20)
        self.assertEqual(files[0][:2], ('a"b.js', 'a"b.js'))

    def test_not_multipart(self):
        """
        A body that is not multipart/form-data with a boundary is refused, naming the
        Content-Type it had.
        """
        for content_type in [None, "application/json", "multipart/form-data"]:
            error = self.assertRaises(InvalidRequest, multipart_parts, b"{}", content_type, 100)
            self.assertIn("multipart/form-data", str(error))

    def test_too_large(self):
        """
        More bytes than allowed is L{CodeTooLarge}.
        """
        self.assertRaises(
            CodeTooLarge, multipart_parts, body(module("a.js", "x" * 5000)), CONTENT_TYPE, 1000
        )


class UploadTests(SynchronousTestCase):
    limits = Limits(max_code_bytes=10_000, max_env_vars=4, max_env_value_bytes=50)

    def parse(self, *parts, deploy=True):
        return parse_upload("hello", body(*parts), CONTENT_TYPE, self.limits, deploy=deploy, source="wrangler")

    def test_modules_of_every_kind(self):
        """
        Each part becomes a module of the kind its Content-Type says, named as uploaded,
        the main module first; binary modules keep their bytes; source maps are dropped.
        """
        d = self.parse(
            metadata(),
            module("./hash-data.txt", "h\u00e9llo", "text/plain"),
            module("./c600-empty.wasm", WASM, "application/wasm"),
            module("lib/a.js", "export const a = 1", "application/javascript+module"),
            module("lib/c.cjs", "module.exports = 1", "application/javascript"),
            module("blob.bin", b"\xff\x00", "application/octet-stream"),
            module("x.json", '{"a": 1}', "application/json"),
            module("index.js.map", "{}", "application/source-map"),
            INDEX,
        )
        self.assertEqual(d.format, MODULE)
        self.assertEqual(
            d.modules,
            (
                Module("index.js", "esModule", b'import "./lib/a.js"; export default {}'),
                Module("./hash-data.txt", "text", "h\u00e9llo".encode()),
                Module("./c600-empty.wasm", "wasm", WASM),
                Module("lib/a.js", "esModule", b"export const a = 1"),
                Module("lib/c.cjs", "commonJsModule", b"module.exports = 1"),
                Module("blob.bin", "data", b"\xff\x00"),
                Module("x.json", "json", b'{"a": 1}'),
            ),
        )

    def test_service_worker(self):
        """
        C{body_part} instead of C{main_module} is a service-worker script.
        """
        d = self.parse(
            part("metadata", json.dumps({"body_part": "index.js", "bindings": []})),
            module("index.js", "addEventListener('fetch', () => {})", "application/javascript"),
        )
        self.assertEqual((d.format, d.modules), (SERVICE_WORKER, (Module("index.js", SCRIPT, b"addEventListener('fetch', () => {})"),)))

    def test_bindings_and_metadata(self):
        """
        Vars, JSON vars and secrets become bindings by name; inherit entries and the kept
        types listed are carried (types funcplane has no bindings of are dropped);
        annotations are recorded.
        """
        d = self.parse(
            metadata(
                bindings=[
                    {"name": "GREETING", "type": "plain_text", "text": "hi"},
                    {"name": "CONF", "type": "json", "json": {"on": True}},
                    {"name": "KEY", "type": "secret_text", "text": "s"},
                    {"name": "OLD", "type": "inherit"},
                ],
                keep_bindings=["plain_text", "secret_key"],
                compatibility_date="2024-09-23",
                compatibility_flags=["nodejs_compat"],
                annotations={"workers/message": "m", "workers/tag": "t"},
            ),
            INDEX,
            deploy=False,
        )
        self.assertEqual(
            d.bindings,
            (Binding("CONF", JSON, '{"on": true}'), Binding("GREETING", PLAIN_TEXT, "hi"), Binding("KEY", SECRET_TEXT, "s")),
        )
        self.assertEqual((d.inherit, d.keep_types, d.deploy), (("OLD",), (PLAIN_TEXT,), False))
        self.assertEqual(d.metadata, {"source": "wrangler", "triggered_by": "upload", "message": "m", "tag": "t"})
        self.assertEqual((d.compatibility_date, d.compatibility_flags), ("2024-09-23", ("nodejs_compat",)))

    def test_secrets_kept_unless_told(self):
        """
        Without keep_bindings (a plain wrangler deploy) secrets are kept, as on Cloudflare;
        with it, only the types it lists, so wrangler versions secret delete can drop one.
        """
        self.assertEqual(self.parse(metadata(), INDEX).keep_types, (SECRET_TEXT,))
        self.assertEqual(self.parse(metadata(keep_bindings=["secret_key"]), INDEX).keep_types, ())
        self.assertEqual(
            self.parse(metadata(keep_bindings=["secret_text", "secret_key"]), INDEX).keep_types, (SECRET_TEXT,)
        )

    def assertRefused(self, kind, text, *parts):
        error = self.assertRaises(kind, self.parse, *parts)
        self.assertIn(text, str(error))

    def test_missing_or_broken_metadata(self):
        """
        No metadata part, metadata that is not a JSON object, or no main module named: each
        is refused saying which.
        """
        self.assertRefused(InvalidRequest, "no 'metadata' part", INDEX)
        self.assertRefused(InvalidRequest, "not valid JSON", part("metadata", "{"), INDEX)
        self.assertRefused(InvalidRequest, "JSON object", part("metadata", "[]"), INDEX)
        self.assertRefused(InvalidRequest, "names no 'main_module'", part("metadata", "{}"), INDEX)
        self.assertRefused(InvalidRequest, "main module main.js is not among", metadata(main_module="main.js"), INDEX)

    def test_bad_modules(self):
        """
        Unknown module types, text modules that are not UTF-8, a main module that is not
        JavaScript, a duplicate, and modules over the size limit are refused.
        """
        self.assertRefused(InvalidRequest, "text/x-python", metadata(), INDEX, module("a.py", "x", "text/x-python"))
        self.assertRefused(InvalidRequest, "not valid UTF-8", metadata(), INDEX, module("t.txt", b"\xff", "text/plain"))
        self.assertRefused(InvalidRequest, "must be JavaScript", metadata(main_module="a.wasm"), module("a.wasm", WASM, "application/wasm"))
        self.assertRefused(InvalidRequest, "uploaded twice", metadata(), INDEX, INDEX)
        self.assertRefused(CodeTooLarge, "limit is 10000", metadata(), INDEX, module("big.txt", "x" * 10_001, "text/plain"))

    def test_unsupported(self):
        """
        Binding types funcplane does not provide are refused by name, compatibility fields
        of the wrong type with what they must be; a script name that is not a DNS label too.
        """
        queue = {"name": "JOBS", "type": "queue", "queue_name": "jobs"}
        self.assertRefused(InvalidBinding, "binding JOBS has type 'queue'", metadata(bindings=[queue]), INDEX)
        self.assertRefused(InvalidRequest, "a list of flag names", metadata(compatibility_flags="nodejs_compat"), INDEX)
        self.assertRefused(InvalidRequest, "a list of flag names", metadata(compatibility_flags=[1]), INDEX)
        self.assertRefused(InvalidRequest, "must be a date", metadata(compatibility_date=20240923), INDEX)
        self.assertRaises(
            InvalidName, parse_upload, "bad_name", body(metadata(), INDEX), CONTENT_TYPE, self.limits, True, "api"
        )


class BindingTests(SynchronousTestCase):
    limits = Limits(max_env_vars=3, max_env_value_bytes=10)

    def test_refused(self):
        """
        Bad names, duplicates, missing values, values over the limit and too many bindings
        are refused.
        """
        cases = [
            ([{"name": "1X", "type": "plain_text", "text": "a"}], InvalidName),
            ([{"name": "A", "type": "plain_text", "text": "a"}] * 2, InvalidBinding),
            ([{"name": "A", "type": "plain_text"}], InvalidBinding),
            ([{"name": "A", "type": "json"}], InvalidBinding),
            ([{"name": "A", "type": "secret_text", "text": "x" * 11}], InvalidBinding),
            ([{"name": f"A{i}", "type": "plain_text", "text": "a"} for i in range(4)], InvalidBinding),
            ("nope", InvalidBinding),
        ]
        for entries, kind in cases:
            self.assertRaises(kind, parse_bindings, entries, self.limits)

    def test_keep_entries(self):
        """
        With C{allow_keep}, an entry with only a name and a type keeps the binding.
        """
        given, keep = parse_bindings(
            [{"name": "A", "type": "secret_text"}, {"name": "B", "type": "secret_text", "text": "b"}],
            self.limits,
            allow_keep=True,
        )
        self.assertEqual((given, keep), ((Binding("B", SECRET_TEXT, "b"),), ("A",)))
