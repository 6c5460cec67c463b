"""
Compatibility dates and flags against real workerd children: each version behaves as its
own date says, nodejs_compat works end to end, and what workerd cannot run (or the
operator does not allow) is refused at deploy with nothing recorded.
"""

import os

from twisted.trial.unittest import TestCase

from tests.integration.harness import Funcplane
from tests.integration.test_wrangler import WranglerCase

NAVIGATOR = 'export default { fetch() { return new Response(typeof navigator) } }'
NODE = """import { Buffer } from "node:buffer";
import { AsyncLocalStorage } from "node:async_hooks";
const storage = new AsyncLocalStorage();
function who() { return storage.getStore(); }
export default {
  async fetch(request, env) {
    const stored = await storage.run("alice", async () => { await null; return who(); });
    return new Response([Buffer.from("hi").toString("base64"), stored, process.env.GREETING,
                         env.GREETING].join(" "));
  }
}
"""


class CompatibilityTests(TestCase):
    """
    The seed API's compatibility fields, through real workerd.
    """

    timeout = 60

    async def test_each_version_its_own_date(self):
        """
        A version pinned to 2020-01-01 has no navigator global (it came with
        global_navigator, 2022-03-21) while one of 2024-09-23 has; a deploy that names no
        date is pinned to the operator's default; the API shows each version's date and
        flags.
        """
        fp = await Funcplane(self, compatibility_date="2024-01-15").start()
        self.addCleanup(fp.remove)
        for version, date in (("old", "2020-01-01"), ("new", "2024-09-23")):
            status, body = await fp.deploy("nav", NAVIGATOR, version=version, compatibility_date=date)
            self.assertEqual(status, 200, body)
        status, body = await fp.deploy("nav", NAVIGATOR, version="plain")
        self.assertEqual(status, 200, body)
        self.assertEqual(await fp.get("old.nav.func.local"), (200, "undefined"))
        self.assertEqual(await fp.get("new.nav.func.local"), (200, "object"))
        _, shown = await fp.api("GET", "/api/functions/nav")
        self.assertEqual(
            [(v["name"], v["compatibilityDate"], v["compatibilityFlags"]) for v in shown["function"]["versions"]],
            [("old", "2020-01-01", []), ("new", "2024-09-23", []), ("plain", "2024-01-15", [])],
        )

    async def test_nodejs_compat(self):
        """
        With nodejs_compat, node:buffer and AsyncLocalStorage work, and process.env holds
        the version's vars, as on Cloudflare from 2025-04-01.
        """
        fp = await Funcplane(self).start()
        self.addCleanup(fp.remove)
        status, body = await fp.deploy(
            "node", NODE, compatibility_date="2025-09-23", compatibility_flags=["nodejs_compat"],
            env_vars={"GREETING": "hello"},
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(await fp.get("node.func.local"), (200, "aGk= alice hello hello"))
        status, body = await fp.deploy("bare", NODE, compatibility_date="2025-09-23")
        self.assertEqual(status, 422)
        self.assertIn("node:buffer", body["error"]["message"])

    async def test_refused(self):
        """
        A date after workerd's newest, a flag that needs --experimental, an unknown flag and
        contradictory flags are refused with why, and nothing is recorded; a flag the date
        already implies is accepted.
        """
        fp = await Funcplane(self).start()
        self.addCleanup(fp.remove)
        cases = [
            (dict(compatibility_date="2099-01-01"), "compatibility_date 2099-01-01 is in the future:"
             " choose a date from 2000-01-01 to "),
            (dict(compatibility_flags=["experimental"]), "funcplane never runs workerd with --experimental"),
            (dict(compatibility_flags=["no_such_flag"]), "No such compatibility flag: no_such_flag"),
            (dict(compatibility_flags=["nodejs_compat", "no_nodejs_compat"]), "mutually contradictory"),
            (dict(compatibility_flags="nodejs_compat"), "'compatibility_flags' must be a list"),
        ]
        for fields, message in cases:
            status, body = await fp.deploy("refused", NAVIGATOR, **fields)
            self.assertEqual(status, 400, (fields, body))
            self.assertIn(message, body["error"]["message"])
        status, _ = await fp.api("GET", "/api/functions/refused")
        self.assertEqual(status, 404)
        status, body = await fp.deploy(
            "implied", NAVIGATOR, compatibility_date="2024-09-23", compatibility_flags=["global_navigator"]
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(await fp.get("implied.func.local"), (200, "object"))

    async def test_operator_lists(self):
        """
        An operator's allow list refuses every other flag, naming what it accepts.
        """
        fp = await Funcplane(self, flags_allowed=frozenset({"nodejs_compat"})).start()
        self.addCleanup(fp.remove)
        status, body = await fp.deploy("listed", NAVIGATOR, compatibility_flags=["url_standard"])
        self.assertEqual(status, 400)
        self.assertEqual(
            body["error"]["message"],
            "this funcplane's operator does not allow the compatibility flag url_standard;"
            " it accepts nodejs_compat",
        )


HONO = """import { Hono } from "hono";
import { contextStorage, getContext } from "hono/context-storage";
const app = new Hono();
app.use(contextStorage());
app.use(async (c, next) => { c.set("who", c.req.header("x-who") || "nobody"); await next(); });
function greeting() { return `hello ${getContext().var.who} from ${process.env.PLACE}`; }
app.get("/", (c) => c.text(greeting()));
export default app;
"""


class HonoTests(WranglerCase):
    """
    A Hono app with nodejs_compat and context storage, deployed with the real wrangler.
    """

    async def test_hono_context_storage(self):
        """
        wrangler deploys it with its compatibility date and flags; Hono's context-storage
        middleware (AsyncLocalStorage) and process.env work; a date after workerd's newest
        makes wrangler deploy fail with the range.
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        self.write_project(
            {
                "wrangler.toml": 'name = "hono-fp"\nmain = "src/index.js"\ncompatibility_date = "2025-09-23"\n'
                'compatibility_flags = ["nodejs_compat"]\n[vars]\nPLACE = "funcplane"\n',
                "src/index.js": HONO,
            }
        )
        await self.wrangler("deploy")
        status, body = await self.fp.request("GET", "/", host="hono-fp.func.local", headers={"x-who": "ada"})
        self.assertEqual((status, body), (200, b"hello ada from funcplane"))
        _, shown = await self.fp.api("GET", "/api/functions/hono-fp")
        [version] = shown["function"]["versions"]
        self.assertEqual((version["compatibilityDate"], version["compatibilityFlags"]), ("2025-09-23", ["nodejs_compat"]))

        with open(os.path.join(self.project, "wrangler.toml")) as f:
            toml = f.read()
        self.write_project({"wrangler.toml": toml.replace("2025-09-23", "2099-01-01")})
        output = await self.wrangler("deploy", ok=False)
        self.assertIn("compatibility_date 2099-01-01 is in the future", output)
