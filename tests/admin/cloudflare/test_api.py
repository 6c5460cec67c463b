"""
Tests for L{funcplane.admin.cloudflare.api}: the Cloudflare v4 subset, through the admin API's resource,
on a real store and fake children.
"""

import json
import uuid

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from funcplane import errors
from funcplane.admin.api import AdminAPI
from funcplane.admin.auth import TokenChecker, token_hash
from funcplane.admin.cloudflare.api import CloudflareAPI
from funcplane.observe.logbook import LogBook
from funcplane.model import PLAIN_TEXT, SECRET_TEXT, Binding
from funcplane.admin.parse import Limits
from funcplane.platform import Platform
from funcplane.edge.listener import ProxyFactory
from funcplane.routing import RouteTable
from funcplane.runtime.supervisor import Supervisor
from funcplane.admin.site import admin_site
from funcplane.observe.tails import SETTLE_SECONDS, SILENT_SECONDS, Tails
from funcplane.observe.trace import Traced
from funcplane.admin.cloudflare.upload import multipart_parts
from tests.fakes import AUTH, TOKEN, FakeLauncher, memory_store
from funcplane.admin.websocket import CLOSE, PING, PONG, TEXT, FrameParser
from tests.admin.cloudflare.test_upload import CONTENT_TYPE, body, metadata, module
from tests.admin.test_websocket import client_frame

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
        self.logbook = LogBook(self.clock)
        tail_ids = iter(f"{i:032x}" for i in range(1, 100))
        self.tails = Tails(self.clock, self.logbook, "func.local", new_id=lambda: next(tail_ids))
        ids = iter(vid(i) for i in range(1, 100))
        names = iter(f"gen{i}" for i in range(1, 100))
        self.platform = Platform(
            self.clock, self.store, self.supervisor, self.routes,
            new_id=lambda: next(ids), new_version_name=lambda: next(names),
            new_deployment_id=lambda: uuid.uuid4().hex, tails=self.tails,
        )
        checker = TokenChecker(token_hash(TOKEN))
        limits = Limits(max_code_bytes=10_000)
        cloudflare = CloudflareAPI(self.platform, checker, limits, self.clock, self.tails)
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


UPGRADE = {
    b"Upgrade": [b"websocket"],
    b"Connection": [b"Upgrade"],
    b"Sec-WebSocket-Version": [b"13"],
    b"Sec-WebSocket-Key": [b"dGhlIHNhbXBsZSBub25jZQ=="],
    b"Sec-WebSocket-Protocol": [b"trace-v1"],
}
TAIL_SOCKET = "http://127.0.0.1:8081/client/v4/tails/"


class TailTests(CloudflareCase):
    def test_create(self):
        """
        POST .../tails (JSON sent as text/plain, as wrangler does) makes a tail and answers
        with its WebSocket address on the host the request named, and its expiry.
        """
        self.deployed()
        headers = {b"Content-Type": [b"text/plain;charset=UTF-8"], **AUTH}
        result = self.ok("POST", SCRIPT + "/tails", {"filters": [{"method": ["POST"]}]}, headers)
        tail_id = "0" * 31 + "1"
        self.assertEqual(
            result,
            {
                "id": tail_id,
                "url": "ws://127.0.0.1:8081/client/v4/tails/" + tail_id,
                "expires_at": "2027-01-15T14:00:00.000Z",
            },
        )
        tail = self.tails.waiting(tail_id)
        self.assertEqual((tail.function, tail.filter.methods), ("hello", frozenset(["POST"])))

    def test_create_refused(self):
        """
        An unknown script is 10007, a bad filter 10021, a tail too many 429; none of them
        leaves a tail behind but the ones allowed.
        """
        self.assertCfError(self.call("POST", SCRIPT + "/tails", {}), 404, 10007)
        self.deployed()
        self.assertCfError(
            self.call("POST", SCRIPT + "/tails", {"filters": [{"colour": 1}]}), 400, 10021, "unknown filter"
        )
        self.assertEqual(self.tails.count(), 0)
        for _ in range(10):
            self.ok("POST", SCRIPT + "/tails", b"")
        self.assertCfError(self.call("POST", SCRIPT + "/tails", {}), 429, 10429, "end one first")
        self.assertEqual(self.tails.count(), 10)

    def test_delete(self):
        """
        DELETE ends the tail, and answers success again for a tail already ended, which
        is what wrangler asks after the server closed its socket.
        """
        self.deployed()
        tail_id = self.ok("POST", SCRIPT + "/tails", {})["id"]
        self.assertIsNone(self.ok("DELETE", SCRIPT + f"/tails/{tail_id}"))
        self.assertRaises(errors.NoSuchTail, self.tails.waiting, tail_id)
        self.assertIsNone(self.ok("DELETE", SCRIPT + f"/tails/{tail_id}"))

    def test_socket_refusals(self):
        """
        The WebSocket address needs no token but a WebSocket handshake (400 otherwise) and
        a waiting tail's id (404 otherwise).
        """
        self.deployed()
        tail_id = self.ok("POST", SCRIPT + "/tails", {})["id"]
        self.assertCfError(self.call("GET", TAIL_SOCKET + tail_id, headers={}), 400, 10021, "wrangler tail")
        self.assertCfError(self.call("GET", TAIL_SOCKET + "f" * 32, headers=UPGRADE), 404, 10007, "make a new one")
        self.assertCfError(self.call("GET", TAIL_SOCKET + "ABC", headers=UPGRADE), 404, 10007, "not a tail id")
        self.assertIs(self.tails.waiting(tail_id).socket, None)

    def test_function_deleted(self):
        """
        Deleting the script ends its tails.
        """
        self.deployed()
        tail_id = self.ok("POST", SCRIPT + "/tails", {})["id"]
        self.ok("DELETE", BASE + "/workers/services/hello")
        self.assertRaises(errors.NoSuchTail, self.tails.waiting, tail_id)


class TailSocketTests(CloudflareCase):
    """
    A tail's WebSocket end to end, on a connection that reaches the admin API through the
    proxy's channel, as on funcplane's port.
    """

    def setUp(self):
        super().setUp()
        self.deployed()
        self.tail_id = self.ok("POST", SCRIPT + "/tails", {"filters": []})["id"]
        site = admin_site(self.routes, self.api.resource(), 10_000)
        self.proxy = ProxyFactory(self.routes, None, None, site, self.clock, tails=self.tails)
        self.channel = self.proxy.buildProtocol(None)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "198.51.100.7", 40000))
        self.channel.makeConnection(self.transport)

    def open(self, protocol=b"trace-v1"):
        self.channel.dataReceived(
            b"GET /client/v4/tails/%s HTTP/1.1\r\nHost: 127.0.0.1:8081\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: %s\r\n"
            b"User-Agent: wrangler/4.86.0\r\n\r\n" % (self.tail_id.encode(), protocol)
        )
        head, _, rest = self.transport.value().partition(b"\r\n\r\n")
        self.transport.clear()
        return head, rest

    def frames(self):
        data = self.transport.value()
        self.transport.clear()
        return FrameParser(1 << 20).feed(data)

    def test_stream(self):
        """
        The handshake answers 101 with the accept key and trace-v1; wrangler's unmasked
        first frame is accepted, its ping answered, and a request to the function arrives
        as an event frame.
        """
        head, rest = self.open()
        self.assertEqual(
            head.split(b"\r\n"),
            [
                b"HTTP/1.1 101 Switching Protocols",
                b"Upgrade: websocket",
                b"Connection: Upgrade",
                b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                b"Sec-WebSocket-Protocol: trace-v1",
            ],
        )
        self.assertEqual(rest, b"")
        self.assertTrue(self.tails.active)
        self.channel.dataReceived(client_frame(TEXT, b'{"debug":false}', mask=False))
        self.channel.dataReceived(client_frame(PING, b"wrangler tail ping"))
        self.assertEqual(self.frames(), [(PONG, True, b"wrangler tail ping")])
        self.tails.request_done(
            Traced("hello", vid(1), b"hello.func.local", b"GET", b"/", (), "203.0.113.1", False, self.clock.seconds(), 200, "ok")
        )
        self.clock.advance(SETTLE_SECONDS)
        [(opcode, _, payload)] = self.frames()
        event = json.loads(payload)
        self.assertEqual(
            (opcode, event["scriptName"], event["event"]["request"]["url"], event["outcome"]),
            (TEXT, "hello", "http://hello.func.local/", "ok"),
        )

    def test_closed_by_client(self):
        """
        When the client goes, the tail ends and the proxy's count of its connections
        drops back to none.
        """
        self.open()
        self.assertEqual(self.proxy._open, {"198.51.100.7": 1})
        self.channel.dataReceived(client_frame(CLOSE, b"\x03\xe8"))
        self.assertEqual(self.frames(), [(CLOSE, True, b"\x03\xe8")])
        self.assertTrue(self.transport.disconnecting)
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertFalse(self.tails.active)
        self.assertEqual(self.tails.count(), 0)
        self.assertEqual(self.proxy._open, {})

    def test_closed_by_server(self):
        """
        Deleting the tail through the API sends a close frame to its socket.
        """
        self.open()
        self.ok("DELETE", SCRIPT + f"/tails/{self.tail_id}")
        [(opcode, _, payload)] = self.frames()
        self.assertEqual((opcode, payload), (CLOSE, b"\x03\xe8tail deleted"))
        self.assertTrue(self.transport.disconnecting)

    def test_silent_client(self):
        """
        A client that sends nothing (not even wrangler's ping) for SILENT_SECONDS is closed
        with 1001 and its tail ends; one that pings is kept.
        """
        self.open()
        for _ in range(3):
            self.clock.advance(SILENT_SECONDS - 1)
            self.channel.dataReceived(client_frame(PING, b"wrangler tail ping"))
        self.assertEqual(len(self.frames()), 3)
        self.clock.advance(SILENT_SECONDS)
        [(opcode, _, payload)] = self.frames()
        self.assertEqual((opcode, payload[:2]), (CLOSE, b"\x03\xe9"))
        self.assertTrue(self.transport.disconnecting)
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.tails.count(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_without_subprotocol(self):
        """
        A client that asks for no subprotocol is answered without one.
        """
        head, _ = self.open(b"other")
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "))
        self.assertNotIn(b"Sec-WebSocket-Protocol", head)

    def test_slow_reader(self):
        """
        When the client stops reading, the socket is paused (events are dropped), and
        resumed when it reads again.
        """
        self.open()
        socket = self.tails._live["hello"][0].socket
        self.transport.producer.pauseProducing()
        self.assertTrue(socket.paused)
        self.transport.producer.resumeProducing()
        self.assertFalse(socket.paused)
