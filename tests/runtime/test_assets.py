"""
Tests for L{funcplane.runtime.assets}: what a version with static assets adds to its
workerd config, and the store's descriptor its child is handed.
"""

import json
import os
import stat
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import StartFailed
from funcplane.model import MODULE, Assets, Binding, VersionSpec, script_modules
from funcplane.runtime.assets import (
    ASSETS_FD,
    ASSETS_ONLY_MODULE,
    ASSETS_ONLY_SOURCE,
    worker_source,
)
from funcplane.runtime.process import WorkerdLauncher
from tests.fakes import FakeProcessReactor
from tests.runtime.test_config import builder

HOSTILE = '/"); ../../etc/passwd \\0 (name = "x") :splat'
ASSETS = Assets(
    manifest=(
        (HOSTILE, "ab" + "0" * 30, 3, None),
        ("/index.html", "cd" + "1" * 30, 5, "text/html; charset=utf-8"),
    ),
    config=json.dumps({"html_handling": "none", "not_found_handling": "404-page",
                       "run_worker_first": ["/api/*"], "has_user_worker": True,
                       "_redirects": "/a /b 301\n", "_headers": f"{HOSTILE}\n  X: y\n"}),
    binding="ASSETS",
)


def spec(assets=ASSETS, modules=None, bindings=(), date="2025-05-05"):
    return VersionSpec(
        "id", "f", "v", MODULE, modules or script_modules("export default {fetch(){}}", MODULE),
        bindings, compatibility_date=date, compatibility_flags=("nodejs_compat",), assets=assets,
    )


def services(config):
    return {service["name"]: service for service in config["services"]}


class ConfigTests(SynchronousTestCase):
    def read(self, version):
        b = builder()
        return b.read(b.build(version))

    def test_services(self):
        """
        A version with assets has the asset worker and a read-only store beside its worker:
        the socket points at the router, which reaches the user's worker as USER and the
        store as STORE; the store is the descriptor the child is handed, no dotfiles.
        """
        config = self.read(spec())
        found = services(config)
        self.assertEqual(sorted(found), ["assets", "assets-store", "internet", "main"])
        [socket] = [s for s in config["sockets"] if s["name"] == "http"]
        self.assertEqual(socket["service"]["name"], "assets")
        router = found["assets"]["worker"]
        self.assertEqual([m["name"] for m in router["modules"]], ["asset-worker.js"])
        self.assertEqual(router["modules"][0]["esModule"], worker_source())
        bindings = {b["name"]: b for b in router["bindings"]}
        self.assertEqual(bindings["STORE"]["service"]["name"], "assets-store")
        self.assertEqual(bindings["USER"]["service"]["name"], "main")
        self.assertEqual(found["assets-store"]["disk"], {"path": f"/proc/self/fd/{ASSETS_FD}", "writable": False, "allowDotfiles": False})

    def test_user_strings_are_only_binding_text(self):
        """
        Asset paths and the _headers and _redirects text reach the config only inside the
        JSON bindings' text, exactly; the version's date and flags are in CONFIG.
        """
        config = self.read(spec())
        bindings = {b["name"]: b for b in services(config)["assets"]["worker"]["bindings"]}
        manifest = json.loads(bindings["MANIFEST"]["json"])
        self.assertEqual(manifest[HOSTILE], ["ab" + "0" * 30, 3, None])
        self.assertEqual(manifest["/index.html"][2], "text/html; charset=utf-8")
        settings = json.loads(bindings["CONFIG"]["json"])
        self.assertEqual(settings["_headers"], f"{HOSTILE}\n  X: y\n")
        self.assertEqual(settings["run_worker_first"], ["/api/*"])
        self.assertEqual((settings["compatibility_date"], settings["compatibility_flags"]), ("2025-05-05", ["nodejs_compat"]))
        outside = dict(config)
        for service in outside["services"]:
            if service["name"] == "assets":
                service["worker"]["bindings"] = [b for b in service["worker"]["bindings"] if b["name"] not in ("MANIFEST", "CONFIG")]
        self.assertNotIn("passwd", json.dumps(outside))

    def test_assets_binding(self):
        """
        The user's worker gets its ASSETS binding after its own, naming the asset worker's
        files-only entrypoint.
        """
        config = self.read(spec(bindings=(Binding("A", "plain_text", "1"),)))
        bindings = services(config)["main"]["worker"]["bindings"]
        self.assertEqual([b["name"] for b in bindings], ["A", "ASSETS"])
        self.assertEqual((bindings[1]["service"]["name"], bindings[1]["service"]["entrypoint"]), ("assets", "binding"))

    def test_assets_only(self):
        """
        An assets-only version's router has no USER binding, and no ASSETS binding is made.
        """
        only = Assets(ASSETS.manifest, json.dumps({"has_user_worker": False}), None)
        modules = script_modules(ASSETS_ONLY_SOURCE.decode(), MODULE)
        config = self.read(spec(only, modules=modules))
        found = services(config)
        self.assertNotIn("USER", [b["name"] for b in found["assets"]["worker"]["bindings"]])
        self.assertEqual(found["main"]["worker"].get("bindings", []), [])
        self.assertTrue(ASSETS_ONLY_MODULE.startswith("__funcplane"))

    def test_no_assets(self):
        """
        A version without assets has no asset services, and its socket points at its worker.
        """
        config = self.read(spec(None))
        self.assertEqual(sorted(services(config)), ["internet", "main"])
        [socket] = [s for s in config["sockets"] if s["name"] == "http"]
        self.assertEqual(socket["service"]["name"], "main")

    def test_default_date(self):
        """
        A version without a date gives the asset worker the operator's default.
        """
        config = self.read(spec(date=None))
        bindings = {b["name"]: b for b in services(config)["assets"]["worker"]["bindings"]}
        self.assertEqual(json.loads(bindings["CONFIG"]["json"])["compatibility_date"], "2026-11-01")


class DescriptorTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeProcessReactor()
        self.run_dir = tempfile.mkdtemp()
        self.store = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.unlink(os.path.join(self.run_dir, f)) for f in os.listdir(self.run_dir)] and None)
        self.launcher = WorkerdLauncher(
            self.reactor, "/opt/workerd", self.run_dir, builder(), startup_timeout=5, assets_dir=self.store
        )

    def test_store_descriptor(self):
        """
        A child whose version has assets is handed a descriptor of the store's directory
        as ASSETS_FD (closed in funcplane once it is spawned); one without is handed none.
        """
        opened = []
        real_open = os.open

        def spy(path, flags, *args):
            fd = real_open(path, flags, *args)
            opened.append((path, fd))
            return fd

        self.patch(os, "open", spy)
        self.launcher.launch(spec())
        [(_path, fd)] = [(p, fd) for p, fd in opened if p == self.store]
        self.assertEqual(self.reactor.spawned[-1]["childFDs"][ASSETS_FD], fd)
        self.assertRaises(OSError, os.fstat, fd)
        self.launcher.launch(spec(None))
        self.assertNotIn(ASSETS_FD, self.reactor.spawned[-1]["childFDs"])

    def test_no_store(self):
        """
        A launcher without a store refuses to start a version with assets.
        """
        launcher = WorkerdLauncher(self.reactor, "/opt/workerd", self.run_dir, builder(), startup_timeout=5)
        error = self.assertRaises(StartFailed, launcher.launch, spec())
        self.assertIn("no asset store", str(error))
        self.assertTrue(stat.S_ISDIR(os.stat(self.store).st_mode))
