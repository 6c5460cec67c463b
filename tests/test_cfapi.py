"""
Tests for L{funcplane.cfapi}: the Cloudflare v4 subset, through the admin API's resource,
on a real store and fake children.
"""

import json
import uuid

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane.api import AdminAPI
from funcplane.auth import TokenChecker, token_hash
from funcplane.cfapi import CloudflareAPI
from funcplane.model import PLAIN_TEXT, SECRET_TEXT, Binding
from funcplane.parse import Limits
from funcplane.platform import Platform
from funcplane.routing import RouteTable
from funcplane.runtime.supervisor import Supervisor
from funcplane.upload import multipart_parts
from tests.fakes import AUTH, TOKEN, FakeLauncher, memory_store
from tests.test_upload import CONTENT_TYPE, body, metadata, module

BASE = "http://127.0.0.1:8081/client/v4/accounts/0123456789abcdef0123456789abcdef"
SCRIPT = BASE + "/workers/scripts/hello"
INDEX = module("index.js", "export default { fetch() { return new Response('hi') } }")
UPLOAD = {b"Content-Type": [CONTENT_TYPE.encode()], **AUTH}


def vid(i):
    """
    The i-th version id: distinct in its first 8 hex digits, as random ones are.
    """
    return f"{i:08x}" + "a" * 24


def cf(i):
    return str(uuid.UUID(hex=vid(i)))


class CloudflareCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.store = memory_store(self)
        self.launcher = FakeLauncher(auto_ready=True)
        self.supervisor = Supervisor(Clock(), self.launcher, self.store.version_spec)
        self.routes = RouteTable("func.local")
        ids = iter(vid(i) for i in range(1, 100))
        names = iter(f"gen{i}" for i in range(1, 100))
        self.platform = Platform(
            self.clock, self.store, self.supervisor, self.routes,
            new_id=lambda: next(ids), new_version_name=lambda: next(names),
            new_deployment_id=lambda: uuid.uuid4().hex,
        )
        checker = TokenChecker(token_hash(TOKEN))
        limits = Limits(max_code_bytes=10_000)
        cloudflare = CloudflareAPI(self.platform, checker, limits, self.clock)
        self.api = AdminAPI(self.platform, checker, limits, "func.local", 8081, clock=self.clock, cloudflare=cloudflare)
        self.client = StubTreq(self.api.resource())
        self.seen = []

    def call(self, method, url, data=None, headers=AUTH):
        if isinstance(data, (dict, list)):
            data = json.dumps(data).encode()
        d = self.client.request(method, url, data=data, headers=headers)
        self.client.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(self.client.content(response))
        self.seen.append(content)
        return response.code, json.loads(content)

    def ok(self, method, url, data=None, headers=AUTH):
        status, answer = self.call(method, url, data, headers)
        self.assertEqual((status, answer["success"], answer["errors"], answer["messages"]), (200, True, [], []), answer)
        return answer["result"]

    def assertCfError(self, result, status, code, text=""):
        self.assertEqual(result[0], status, result)
        self.assertEqual((result[1]["success"], result[1]["result"]), (False, None))
        self.assertEqual(result[1]["errors"][0]["code"], code, result)
        self.assertIn(text, result[1]["errors"][0]["message"])

    def upload(self, *parts, url=SCRIPT, method="PUT"):
        return self.ok(method, url, body(*parts), UPLOAD)

    def deployed(self):
        return self.upload(metadata(bindings=[{"name": "GREETING", "type": "plain_text", "text": "hi"}]), INDEX)


class EnvelopeTests(CloudflareCase):
    def test_unknown_script_is_10007(self):
        """
        A script that does not exist is a 404 with code 10007: how wrangler tells a first
        deploy.
        """
        self.assertCfError(self.call("GET", BASE + "/workers/services/hello"), 404, 10007, "hello")
        self.assertCfError(self.call("GET", SCRIPT + "/deployments"), 404, 10007)

    def test_unknown_route(self):
        """
        A route funcplane does not implement answers in the envelope, naming it.
        """
        self.assertCfError(self.call("GET", BASE + "/workers/durable_objects/namespaces"), 404, 7003, "does not implement")

    def test_token_required(self):
        """
        Without the admin token nothing is done: 401 with code 10000 in the envelope.
        """
        headers = {b"Content-Type": [CONTENT_TYPE.encode()]}
        result = self.call("PUT", SCRIPT, body(metadata(), INDEX), headers)
        self.assertCfError(result, 401, 10000)
        self.assertEqual(self.launcher.launched, [])
        self.assertCfError(self.call("GET", BASE + "/workers/subdomain", headers={}), 401, 10000)

    def test_validation_is_10021(self):
        """
        A malformed upload is a 400 with code 10021 and nothing starts.
        """
        self.assertCfError(self.call("PUT", SCRIPT, body(INDEX), UPLOAD), 400, 10021, "metadata")
        self.assertCfError(self.call("PUT", BASE + "/workers/scripts/Bad_Name", body(metadata(), INDEX), UPLOAD), 400, 10021)
        self.assertEqual(self.launcher.launched, [])

    def test_health(self):
        """
        GET /health needs no token and says nothing but that funcplane is up.
        """
        d = self.client.get("http://127.0.0.1:8081/health")
        self.client.flush()
        response = self.successResultOf(d)
        self.assertEqual((response.code, json.loads(self.successResultOf(self.client.content(response)))), (200, {"status": "ok"}))


class DeployTests(CloudflareCase):
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

    def test_upload_then_split_then_rollback(self):
        """
        An uploaded version answers at its own hosts (name and id prefix) without taking
        traffic; a deployment splits traffic 90/10; the seed API's rollback is a deployment
        too, listed newest first.
        """
        self.deployed()
        version = self.upload(metadata(annotations={"workers/message": "two"}), INDEX, url=SCRIPT + "/versions", method="POST")
        self.assertEqual((version["id"], version["annotations"]["workers/message"]), (cf(2), "two"))
        self.assertIn("script", version["resources"])
        self.assertGreater(version["startup_time_ms"], 0)
        self.assertEqual(self.routes.resolve(b"hello.func.local"), vid(1))
        self.assertEqual(self.routes.resolve(vid(2)[:8].encode() + b".hello.func.local"), vid(2))
        self.assertEqual(self.routes.resolve(b"gen2.hello.func.local"), vid(2))
        split = {"strategy": "percentage", "versions": [{"version_id": cf(1), "percentage": 90}, {"version_id": cf(2), "percentage": 10}], "annotations": {"workers/message": "canary"}}
        deployment = self.ok("POST", SCRIPT + "/deployments", split)
        self.assertEqual(deployment["versions"], split["versions"])
        self.assertEqual(self.routes._functions["hello"].split, ((vid(1), 90), (vid(2), 10)))
        status, _ = self.call("POST", "http://127.0.0.1:8081/api/rollback/hello", {"version": "gen2"})
        self.assertEqual(status, 200)
        history = self.ok("GET", SCRIPT + "/deployments")["deployments"]
        self.assertEqual(
            [[(v["version_id"], v["percentage"]) for v in d["versions"]] for d in history],
            [[(cf(2), 100)], [(cf(1), 90), (cf(2), 10)], [(cf(1), 100)]],
        )
        self.assertEqual(history[1]["annotations"]["workers/message"], "canary")
        items = self.ok("GET", SCRIPT + "/versions")["items"]
        self.assertEqual([item["id"] for item in items], [cf(2), cf(1)])

    def test_bad_deployments(self):
        """
        Shares that do not sum to 100, unknown versions, and a duplicate are refused and
        change nothing.
        """
        self.deployed()
        cases = [
            ([{"version_id": cf(1), "percentage": 50}], 400, 10021, "sum to 50"),
            ([{"version_id": cf(9), "percentage": 100}], 404, 10007, "no version"),
            ([{"version_id": cf(1), "percentage": 50}, {"version_id": vid(1), "percentage": 50}], 400, 10021, "twice"),
            ([], 400, 10021, "at least one"),
        ]
        for versions, status, code, text in cases:
            self.assertCfError(self.call("POST", SCRIPT + "/deployments", {"versions": versions}), status, code, text)
        self.assertEqual(len(self.ok("GET", SCRIPT + "/deployments")["deployments"]), 1)

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

    def test_aliases(self):
        """
        PUT aliases/NAME points an alias at a version id; GET lists them.
        """
        self.deployed()
        self.assertEqual(self.ok("PUT", SCRIPT + "/aliases/staging", {"version_id": cf(1)}), {"name": "staging", "version_id": cf(1)})
        self.assertEqual(self.ok("GET", SCRIPT + "/aliases"), [{"name": "staging", "version_id": cf(1)}])
        self.assertEqual(self.routes.resolve(b"staging.hello.func.local"), vid(1))


class SecretTests(CloudflareCase):
    def put_secret(self, name, text):
        return self.ok("PUT", SCRIPT + "/secrets", {"name": name, "text": text, "type": "secret_text"})

    def test_secrets(self):
        """
        A secret put makes a new deployed version with it; it survives a later deploy that
        does not mention it; it is listed by name only and no answer ever carries its
        value; deleting it makes another version without it.
        """
        self.deployed()
        self.put_secret("API_KEY", "s3cr3t-value")
        self.assertEqual(self.routes.resolve(b"hello.func.local"), vid(2))
        self.assertIn(Binding("API_KEY", SECRET_TEXT, "s3cr3t-value"), self.launcher.launched[-1].spec.bindings)
        self.deployed()
        self.assertIn(Binding("API_KEY", SECRET_TEXT, "s3cr3t-value"), self.launcher.launched[-1].spec.bindings)
        self.assertEqual(self.ok("GET", SCRIPT + "/secrets"), [{"name": "API_KEY", "type": "secret_text"}])
        for url in [SCRIPT + "/versions", SCRIPT + f"/versions/{cf(3)}", SCRIPT + "/settings", SCRIPT + "/deployments"]:
            self.ok("GET", url)
        self.call("GET", "http://127.0.0.1:8081/api/functions")
        self.assertFalse([answer for answer in self.seen if b"s3cr3t" in answer])
        self.ok("DELETE", SCRIPT + "/secrets/API_KEY?url_encoded=true")
        self.assertNotIn("API_KEY", [b.name for b in self.launcher.launched[-1].spec.bindings])
        self.assertEqual(self.ok("GET", SCRIPT + "/secrets"), [])
        self.assertCfError(self.call("DELETE", SCRIPT + "/secrets/API_KEY"), 404, 10007, "no secret API_KEY")
        self.assertCfError(self.call("DELETE", SCRIPT + "/secrets/GREETING"), 404, 10007, "no secret GREETING")

    def test_secret_needs_latest_deployed(self):
        """
        With a newer version only uploaded, a secret change is refused with 10215 and
        makes no version.
        """
        self.deployed()
        self.upload(metadata(), INDEX, url=SCRIPT + "/versions", method="POST")
        result = self.call("PUT", SCRIPT + "/secrets", {"name": "K", "text": "v", "type": "secret_text"})
        self.assertCfError(result, 409, 10215, "not deployed")
        self.assertEqual(len(self.ok("GET", SCRIPT + "/versions")["items"]), 2)

    def test_bulk(self):
        """
        PATCH settings keeps the bindings named without a value and sets the others.
        """
        self.deployed()
        self.put_secret("A", "a")
        settings = {"bindings": [{"type": "plain_text", "name": "GREETING"}, {"type": "secret_text", "name": "A"}, {"type": "secret_text", "name": "B", "text": "b"}]}
        raw = f'--X\r\nContent-Disposition: form-data; name="settings"\r\n\r\n{json.dumps(settings)}\r\n--X--\r\n'.encode()
        result = self.ok("PATCH", SCRIPT + "/settings", raw, {b"Content-Type": [b"multipart/form-data; boundary=X"], **AUTH})
        self.assertEqual([b["name"] for b in result["bindings"]], ["A", "B", "GREETING"])
        self.assertEqual(
            self.launcher.launched[-1].spec.bindings,
            (Binding("A", SECRET_TEXT, "a"), Binding("B", SECRET_TEXT, "b"), Binding("GREETING", PLAIN_TEXT, "hi")),
        )
        self.assertNotIn(b'"text": "b"', self.seen[-1])

    def test_inherit_missing_is_10057(self):
        """
        An inherit binding the deployed version does not have is refused with 10057.
        """
        self.deployed()
        result = self.call("POST", SCRIPT + "/versions", body(metadata(bindings=[{"name": "NOPE", "type": "inherit"}]), INDEX), UPLOAD)
        self.assertCfError(result, 400, 10057, "NOPE")
