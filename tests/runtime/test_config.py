import ipaddress

from twisted.trial.unittest import SynchronousTestCase

from funcplane.model import (
    JSON,
    MODULE,
    PLAIN_TEXT,
    SECRET_TEXT,
    SERVICE_WORKER,
    Binding,
    Module,
    VersionSpec,
    script_modules,
    text_bindings,
)
from funcplane.runtime.config import ENTRY_MODULE, ConfigBuilder, RuntimeSettings, entry_module, load_schema
from funcplane.runtime.config import service_worker_script
from funcplane.runtime.egress import EgressPolicy

SCHEMA = load_schema()
HOSTILE = [
    'x"), (name = "STOLEN", fromEnvironment = "PATH"), (name = "Z", text = "z',
    'text = embed "../../etc/passwd"',
    "line1\nline2\r\t\"quoted\" back\\slash \\x41 # ; ) ] }",
    "\u2028\ufeff héllo ☃ 𝄞 😀",
    "",
    "a\x00b",
    "x" * 5120,
]


def one_script(code, fmt, bindings=()):
    return VersionSpec("id", "f", "v", fmt, script_modules(code, fmt), bindings)


def builder(**kwargs):
    settings = RuntimeSettings(egress=EgressPolicy(denied_hosts=(ipaddress.ip_network("192.0.2.2/32"),)), **kwargs)
    return ConfigBuilder(settings, SCHEMA)


class ConfigTests(SynchronousTestCase):
    def test_hostile_env_values_round_trip(self):
        """
        Env values full of capnp syntax, quotes, newlines and Unicode come back byte for byte
        from the binary config, and no binding is added.
        """
        env = tuple((f"V{i}", value) for i, value in enumerate(HOSTILE))
        b = builder()
        config = b.read(b.build(one_script("c", SERVICE_WORKER, text_bindings(env))))
        bindings = config["services"][0]["worker"]["bindings"]
        self.assertEqual([(x["name"], x["text"]) for x in bindings], list(env))
        self.assertEqual([set(x) for x in bindings], [{"name", "text"}] * len(env))

    def test_service_worker(self):
        """
        A service-worker script is the worker's serviceWorkerScript, as given, with the
        check for a fetch listener on its first line (so no line number moves) and after
        its end.
        """
        b = builder(compatibility_date="2025-01-01")
        worker = b.read(b.build(one_script(HOSTILE[2], SERVICE_WORKER)))["services"][0]["worker"]
        script = worker["serviceWorkerScript"]
        self.assertEqual(script, service_worker_script(HOSTILE[2]))
        prologue, _, rest = script.partition(HOSTILE[2])
        self.assertNotIn("\n", prologue)
        self.assertTrue(rest.startswith("\n;if (!__funcplane_fetches)"), rest)
        self.assertEqual(worker["compatibilityDate"], "2025-01-01")
        self.assertNotIn("modules", worker)

    def test_module(self):
        """
        An ES module is the worker's module, after funcplane's entry module, which workerd
        starts from: it imports the version's main module by its name as a JSON string.
        """
        b = builder()
        worker = b.read(b.build(one_script("export default {}", MODULE)))["services"][0]["worker"]
        self.assertEqual(
            worker["modules"],
            [
                {"name": ENTRY_MODULE, "esModule": entry_module("worker.js")},
                {"name": "worker.js", "esModule": "export default {}"},
            ],
        )
        self.assertIn('import * as version from "./worker.js";', entry_module("worker.js"))
        self.assertIn('from "./a\\"b\\u2028.js";', entry_module('a"b\u2028.js'))

    def test_modules_and_bindings(self):
        """
        Modules of every kind keep their names and exact content (binary ones as bytes),
        the main one first; JSON bindings are JSON, the others text.
        """
        wasm = bytes(range(256))
        modules = (
            Module("index.js", "esModule", b'import w from "./a.wasm"; export default {}'),
            Module("lib/c.cjs", "commonJsModule", b"module.exports = 1"),
            Module("./a.wasm", "wasm", wasm),
            Module("data.bin", "data", b"\x00\xff\r\n"),
            Module("readme.txt", "text", "héllo\u2028".encode()),
            Module("x.json", "json", b'{"a": 1}'),
        )
        bindings = (
            Binding("CONF", JSON, '{"on": true}'),
            Binding("GREETING", PLAIN_TEXT, "hi"),
            Binding("KEY", SECRET_TEXT, "s3cr3t"),
        )
        b = builder()
        spec = VersionSpec("id", "f", "v", MODULE, modules, bindings)
        worker = b.read(b.build(spec))["services"][0]["worker"]
        self.assertEqual(
            worker["modules"],
            [
                {"name": ENTRY_MODULE, "esModule": entry_module("index.js")},
                {"name": "index.js", "esModule": 'import w from "./a.wasm"; export default {}'},
                {"name": "lib/c.cjs", "commonJsModule": "module.exports = 1"},
                {"name": "./a.wasm", "wasm": wasm},
                {"name": "data.bin", "data": b"\x00\xff\r\n"},
                {"name": "readme.txt", "text": "héllo\u2028"},
                {"name": "x.json", "json": '{"a": 1}'},
            ],
        )
        self.assertEqual(
            worker["bindings"],
            [
                {"name": "CONF", "json": '{"on": true}'},
                {"name": "GREETING", "text": "hi"},
                {"name": "KEY", "text": "s3cr3t"},
            ],
        )

    def test_structure(self):
        """
        The config has the worker and an explicit internet network with the egress policy as
        its outbound, one socket without an address (it comes by --socket-fd), and a heap cap.
        """
        b = builder(heap_limit_mb=64)
        config = b.read(b.build(one_script("c", MODULE)))
        main, internet = config["services"]
        self.assertEqual(main["worker"]["globalOutbound"]["name"], "internet")
        self.assertEqual(internet["name"], "internet")
        self.assertEqual(internet["network"]["allow"], ["public"])
        self.assertIn("local", internet["network"]["deny"])
        self.assertIn("192.0.2.2/32", internet["network"]["deny"])
        self.assertTrue(internet["network"]["tlsOptions"]["trustBrowserCas"])
        socket, events_socket = config["sockets"]
        self.assertEqual((socket["name"], socket["service"]["name"]), ("http", "main"))
        self.assertEqual(events_socket["name"], "events")
        self.assertNotIn("address", socket)
        self.assertIn("http", socket)
        self.assertEqual(config["v8Flags"], ["--max-old-space-size=64"])
