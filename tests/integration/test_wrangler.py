"""
The unmodified wrangler CLI (from npm, installed by the project's set-up) against a real
funcplane: every command funcplane supports, checked by what the function then answers.
wrangler talks only to 127.0.0.1, with telemetry, error reports and update checks off.
"""

import json
import os
import shutil
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration.harness import TOKEN, Funcplane

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WRANGLER = os.path.join(ROOT, "node_modules", ".bin", "wrangler")
NAME = "hello-fp"
HOST = f"{NAME}.func.local"

INDEX = """import { greet } from "./lib/greet.js";
import data from "./blob.bin";
import text from "./readme.txt";
import wasm from "./add.wasm";
export default {
  async fetch(request, env) {
    const instance = await WebAssembly.instantiate(wasm);
    const bytes = Array.from(new Uint8Array(data)).join(",");
    return new Response(`${greet(env.GREETING)} conf=${JSON.stringify(env.CONF)} text=${text.trim()}`
      + ` bytes=${bytes} add=${instance.exports.add(2, 3)} secret=${env.API_KEY || "none"}`);
  }
}
"""
# (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
ADD_WASM = bytes.fromhex(
    "0061736d0100000001070160027f7f017f030201000707010361646400000a09010700200020016a0b"
)
BLOB = b"\x00\xff\x10\r\n"


def project(directory, greeting):
    os.makedirs(os.path.join(directory, "src", "lib"), exist_ok=True)
    files = {
        "wrangler.toml": f'name = "{NAME}"\nmain = "src/index.js"\ncompatibility_date = "2024-09-23"\n'
        f'[vars]\nGREETING = "{greeting}"\nCONF = {{ on = true, n = 2 }}\n',
        "src/index.js": INDEX,
        "src/lib/greet.js": 'export function greet(g) { return g + "!"; }\n',
        "src/readme.txt": "read me\n",
    }
    for path, text in files.items():
        with open(os.path.join(directory, path), "w") as f:
            f.write(text)
    for path, data in {"src/add.wasm": ADD_WASM, "src/blob.bin": BLOB}.items():
        with open(os.path.join(directory, path), "wb") as f:
            f.write(data)


def answer(greeting, secret="none"):
    return f"{greeting}! conf={{\"on\":true,\"n\":2}} text=read me bytes=0,255,16,13,10 add=5 secret={secret}"


class WranglerCase(TestCase):
    """
    A home and an empty project directory for the real wrangler, whose packages (hono
    and the like) resolve from the checkout's node_modules; the base of the wrangler
    tests.
    """

    timeout = 300

    def setUp(self):
        if not os.path.exists(WRANGLER):
            raise SkipTest("wrangler is not installed: run ./dev setup (npm ci installs it)")
        self.home = tempfile.mkdtemp(prefix="fpwrangler")
        self.addCleanup(shutil.rmtree, self.home, ignore_errors=True)
        self.project = os.path.join(self.home, "project")
        os.makedirs(self.project)
        os.symlink(os.path.join(ROOT, "node_modules"), os.path.join(self.project, "node_modules"))

    def write_project(self, files):
        """
        Write C{files} (path in the project -> text) into the project.
        """
        for path, text in files.items():
            full = os.path.join(self.project, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)

    def environment(self):
        """
        wrangler's whole environment: pointed at funcplane, nothing sent anywhere else.
        """
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.home,
            "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
            "CLOUDFLARE_API_BASE_URL": f"http://127.0.0.1:{self.fp.port}/client/v4",
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": "0123456789abcdef0123456789abcdef",
            "WRANGLER_SEND_METRICS": "false",
            "WRANGLER_SEND_ERROR_REPORTS": "false",
            "WRANGLER_HIDE_BANNER": "true",
            # The update check goes to the npm registry unless pointed elsewhere: nowhere.
            "npm_registry": "http://127.0.0.1:9/",
            "CI": "true",
            "NO_COLOR": "1",
        }

    async def wrangler(self, *args, stdin=None, ok=True):
        """
        Run wrangler in the project; return its output (stdout and stderr).
        """
        env = self.environment()
        if stdin is None:
            command, argv = WRANGLER, list(args)
        else:
            command, argv = "/bin/sh", ["-c", 'value="$1"; shift; printf %s "$value" | "$0" "$@"', WRANGLER, stdin, *args]
        out, err, code = await getProcessOutputAndValue(command, argv, env=env, path=self.project, reactor=reactor)
        output = (out + err).decode("utf-8", "replace")
        if ok and code != 0:
            self.fail(f"wrangler {' '.join(args)} exited {code}:\n{output}")
        if not ok:
            self.assertNotEqual(code, 0, output)
        return output



class WranglerTests(WranglerCase):
    def setUp(self):
        super().setUp()
        project(self.project, "hello from funcplane")

    async def body(self, host=HOST, headers=None):
        code, content = await self.fp.request("GET", "/", host=host, headers=headers)
        return code, content.decode("utf-8")

    async def version_ids(self):
        listed = json.loads(await self.wrangler("versions", "list", "--json"))
        return [item["id"] for item in sorted(listed, key=lambda v: v["metadata"]["created_on"])]

    async def test_wrangler(self):
        """
        deploy, secret put/list/delete/bulk, versions upload/list/deploy, deployments list,
        rollback and delete, each checked by what the function answers.
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)

        output = await self.wrangler("deploy")
        self.assertIn("Current Version ID:", output)
        self.assertEqual(await self.body(), (200, answer("hello from funcplane")))

        await self.wrangler("secret", "put", "API_KEY", stdin="s3cr3t-value")
        self.assertEqual(await self.body(), (200, answer("hello from funcplane", "s3cr3t-value")))
        listed = await self.wrangler("secret", "list")
        self.assertIn('"API_KEY"', listed)
        self.assertNotIn("s3cr3t", listed)

        project(self.project, "second")
        await self.wrangler("deploy", "--message", "second deploy")
        self.assertEqual(await self.body(), (200, answer("second", "s3cr3t-value")))

        project(self.project, "third")
        await self.wrangler("versions", "upload", "--message", "v3", "--tag", "t3")
        _, second, third = (await self.version_ids())[-3:]
        self.assertEqual(await self.body(f"{third[:8]}.{HOST}"), (200, answer("third", "s3cr3t-value")))
        self.assertEqual(await self.body(), (200, answer("second", "s3cr3t-value")))

        await self.wrangler("versions", "deploy", f"{second}@50%", f"{third}@50%", "--yes", "--message", "split")
        seen = {(await self.body())[1] for _ in range(40)}
        self.assertEqual(seen, {answer("second", "s3cr3t-value"), answer("third", "s3cr3t-value")})
        keyed = {(await self.body(headers={"Cloudflare-Workers-Version-Key": "user-7"}))[1] for _ in range(10)}
        self.assertEqual(len(keyed), 1)
        override = {"Cloudflare-Workers-Version-Overrides": f'{NAME}="{third}"'}
        self.assertEqual({(await self.body(headers=override))[1] for _ in range(10)}, {answer("third", "s3cr3t-value")})
        self.assertIn("(50%)", await self.wrangler("deployments", "list"))

        await self.wrangler("rollback", second, "--message", "back", "--yes")
        self.assertEqual({(await self.body())[1] for _ in range(10)}, {answer("second", "s3cr3t-value")})

        # The newest version is not deployed: Cloudflare refuses secret changes (10215).
        await self.wrangler("secret", "delete", "API_KEY", ok=False)
        await self.wrangler("versions", "deploy", f"{third}@100%", "--yes")
        with open(os.path.join(self.home, "secrets.json"), "w") as f:
            json.dump({"DB_PASSWORD": "pw1", "API_KEY": "rotated"}, f)
        self.assertIn("2 secrets successfully uploaded", await self.wrangler("secret", "bulk", "../secrets.json"))
        self.assertEqual(await self.body(), (200, answer("third", "rotated")))
        await self.wrangler("secret", "delete", "API_KEY")
        self.assertEqual(await self.body(), (200, answer("third")))
        self.assertNotIn("API_KEY", await self.wrangler("secret", "list"))

        # Both APIs see the same function.
        status, listed = await self.fp.api("GET", "/api/functions")
        [function] = listed["functions"]
        # deploy, secret put, deploy, versions upload, secret bulk, secret delete
        self.assertEqual((function["name"], len(function["versions"])), (NAME, 6))
        self.assertNotIn(b"pw1", json.dumps(listed).encode())

        self.assertIn(f"Successfully deleted {NAME}", await self.wrangler("delete", "--force"))
        self.assertEqual((await self.body())[0], 404)
        status, listed = await self.fp.api("GET", "/api/functions")
        self.assertEqual(listed["functions"], [])

    async def test_tail(self):
        """
        wrangler tail streams each request with what the function printed and threw,
        filtered as asked, and exits cleanly when the function is deleted.
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        with open(os.path.join(self.project, "src", "index.js"), "w") as f:
            f.write(TAILED)
        await self.wrangler("deploy")

        tail = Tail()
        reactor.spawnProcess(
            tail, WRANGLER, [WRANGLER, "tail", "--format", "json", "--method", "GET"],
            env=self.environment(), path=self.project,
        )
        self.addCleanup(tail.kill)
        await self.until(lambda: self.fp.service.tails.active, tail, "the tail to connect")
        await self.fp.request("GET", "/first", host=HOST)
        await self.fp.request("POST", "/skipped", host=HOST)
        await self.fp.request("GET", "/boom", host=HOST, headers={"Authorization": "Bearer abc"})
        await self.until(lambda: len(tail.events()) >= 2, tail, "two events")

        first, boom = tail.events()
        self.assertEqual(
            (first["outcome"], first["scriptName"], first["event"]["request"]["url"]),
            ("ok", NAME, f"http://{HOST}/first"),
        )
        self.assertEqual(first["event"]["response"], {"status": 200})
        self.assertEqual([log["message"] for log in first["logs"]], [["seen /first"]])
        self.assertEqual((boom["outcome"], boom["event"]["response"]), ("exception", {"status": 500}))
        self.assertEqual(boom["event"]["request"]["headers"]["authorization"], "REDACTED")
        [exception] = boom["exceptions"]
        self.assertEqual((exception["name"], exception["message"]), ("TypeError", "kaboom"))

        await self.wrangler("delete", "--force")
        self.assertEqual(await tail.ended, 0, tail.output)
        self.assertEqual(self.fp.service.tails.count(), 0)

    async def test_versions_secrets(self):
        """
        wrangler versions secret put/bulk/delete/list make new versions from the newest one,
        deployed or not, without deploying them; their secrets reach the function once
        deployed, and no listing shows a value.
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        await self.wrangler("deploy")
        self.assertIn("with secret API_KEY", await self.wrangler("versions", "secret", "put", "API_KEY", stdin="v1-key"))
        first, put = (await self.version_ids())[-2:]
        self.assertEqual(await self.body(), (200, answer("hello from funcplane")))
        self.assertEqual(await self.body(f"{put[:8]}.{HOST}"), (200, answer("hello from funcplane", "v1-key")))

        with open(os.path.join(self.home, "more.json"), "w") as f:
            json.dump({"DB_PASSWORD": "pw", "API_KEY": "v2-key"}, f)
        self.assertIn("with 2 secrets", await self.wrangler("versions", "secret", "bulk", "../more.json"))
        bulk = (await self.version_ids())[-1]
        await self.wrangler("versions", "deploy", f"{bulk}@100%", "--yes")
        # The secrets of the deployed versions.
        listed = await self.wrangler("versions", "secret", "list")
        self.assertIn("API_KEY", listed)
        self.assertIn("DB_PASSWORD", listed)
        self.assertNotIn("v2-key", listed)
        self.assertEqual(await self.body(), (200, answer("hello from funcplane", "v2-key")))

        await self.wrangler("versions", "secret", "delete", "API_KEY")
        deleted = (await self.version_ids())[-1]
        self.assertEqual(await self.body(f"{deleted[:8]}.{HOST}"), (200, answer("hello from funcplane")))
        self.assertEqual(await self.body(), (200, answer("hello from funcplane", "v2-key")))
        status, info = await self.fp.api("GET", f"/api/functions/{NAME}")
        self.assertEqual(len(info["function"]["versions"]), 4)
        self.assertNotIn(b"v2-key", json.dumps(info).encode())

    async def until(self, condition, tail, what, seconds=30):
        for _ in range(int(seconds / 0.05)):
            if condition():
                return
            await deferLater(reactor, 0.05)
        self.fail(f"waited {seconds} s for {what}; wrangler tail printed:\n{tail.output}")


TAILED = """export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    console.log("seen " + path);
    if (path === "/boom") throw new TypeError("kaboom");
    return new Response("ok");
  }
}
"""


class Tail(ProcessProtocol):
    """
    A running wrangler tail: its output, the events in it, and its exit code.
    """

    def __init__(self):
        self.output = ""
        self.ended = Deferred()
        self.exited = False

    def outReceived(self, data):
        self.output += data.decode("utf-8", "replace")

    errReceived = outReceived

    def processEnded(self, reason):
        self.exited = True
        self.ended.callback(reason.value.exitCode)

    def kill(self):
        if not self.exited:
            self.transport.signalProcess("KILL")
            return self.ended

    def events(self):
        """
        The JSON documents printed so far (wrangler prints one per event, indented).
        """
        decoder, found, text = json.JSONDecoder(), [], self.output
        start = text.find("{")
        while start != -1:
            try:
                value, end = decoder.raw_decode(text, start)
            except ValueError:
                break
            found.append(value)
            start = text.find("{", end)
        return found
