"""
The core scenario end to end: deploy, route, alias, roll back, env vars, outbound fetch,
failures, restart.
"""

import json

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.integration.harness import Funcplane, processes_in, raw_connection
from tests.runtime.test_config import HOSTILE

V1 = 'addEventListener("fetch", e => e.respondWith(new Response("v1")))'
V2 = 'export default { fetch(request, env) { return new Response("v2 " + env.APP_ENV) } }'
SW_ENV = 'addEventListener("fetch", e => e.respondWith(new Response(APP_ENV)))'
ECHO_ENV = "export default { fetch(request, env) { return Response.json(env) } }"
ECHO_REQUEST = """export default { async fetch(request) {
  const url = new URL(request.url);
  return Response.json({method: request.method, path: url.pathname + url.search,
                        header: request.headers.get("x-test"), body: await request.text()},
                       {status: 201, headers: {"x-from": "function"}});
} }"""

# Answers each piece of the request body as it arrives, in a response that streams.
DUPLEX = """export default { async fetch(request) {
  const { readable, writable } = new TransformStream();
  const writer = writable.getWriter();
  const encoder = new TextEncoder();
  (async () => {
    const reader = request.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      await writer.write(encoder.encode("got " + new TextDecoder().decode(value) + ";"));
    }
    await writer.close();
  })();
  return new Response(readable);
} }"""


def fetcher(target):
    return (
        'export default { async fetch(request, env) {'
        f' try {{ const r = await fetch("{target}"); return new Response("fetched " + await r.text()); }}'
        ' catch (e) { return new Response("blocked " + e.message, {status: 502}); } } }'
    )


WS_ECHO = """export default { fetch(request) {
  if (request.headers.get("upgrade") !== "websocket") return new Response("WebSocket only", {status: 426});
  const [client, server] = Object.values(new WebSocketPair());
  server.accept();
  server.addEventListener("message", e => server.send("echo: " + e.data));
  return new Response(null, {status: 101, webSocket: client});
} }"""


def ws_frame(opcode, payload, mask=b"\x11\x22\x33\x44"):
    """
    A masked client frame (RFC 6455 5.2), payload under 126 bytes.
    """
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


class Canary(Resource):
    """
    A local HTTP server that counts the requests that reach it.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.hits = 0

    def render_GET(self, request):
        self.hits += 1
        return b"canary"


class PlatformTests(TestCase):
    timeout = 60

    async def test_scenario(self):
        """
        The README's walk-through: v1 at its host; v2 with alias test serves test and the
        function host; rollback moves the function host back to v1 and keeps v2's host.
        """
        fp = await Funcplane(self).start()
        code, body = await fp.deploy("hello", V1, version="v1")
        self.assertEqual((code, body), (200, {
            "status": "success", "funcName": "hello", "version": "v1", "alias": "",
            "subdomain": "v1.hello.func.local", "accessUrl": "http://v1.hello.func.local"}))
        self.assertEqual(await fp.get("v1.hello.func.local"), (200, "v1"))
        code, body = await fp.deploy("hello", V2, version="v2", alias="test", env_vars={"APP_ENV": "production"})
        self.assertEqual((code, body["alias"], body["subdomain"]), (200, "test", "v2.hello.func.local"))
        self.assertEqual(await fp.get("test.hello.func.local"), (200, "v2 production"))
        self.assertEqual(await fp.get("Hello.Func.Local.:8081"), (200, "v2 production"))
        code, body = await fp.api("POST", "/api/rollback/hello", {"version": "v1"})
        self.assertEqual(body, {"status": "success", "funcName": "hello", "targetVersion": "v1", "alias": "",
                                "accessUrl": "http://v1.hello.func.local"})
        self.assertEqual(await fp.get("hello.func.local"), (200, "v1"))
        self.assertEqual(await fp.get("v2.hello.func.local"), (200, "v2 production"))
        self.assertEqual(await fp.get("test.hello.func.local"), (200, "v2 production"))
        code, text = await fp.get("v3.hello.func.local")
        self.assertEqual((code, text), (404, "function hello has no version or alias v3\n"))

    async def test_requests_relayed(self):
        """
        Method, path, query, headers and body reach the function; status, headers and body
        come back; a HEAD answer keeps the length of the body it stands for.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("echo", ECHO_REQUEST)
        response = await fp.client.request(
            "PUT", f"http://127.0.0.1:{fp.port}/a/b?c=1", data=b"x" * 100_000,
            headers={"Host": "echo.func.local", "X-Test": "yes"})
        self.assertEqual(response.code, 201)
        self.assertEqual(response.headers.getRawHeaders("x-from"), ["function"])
        self.assertEqual(json.loads(await response.content()),
                         {"method": "PUT", "path": "/a/b?c=1", "header": "yes", "body": "x" * 100_000})
        await fp.deploy("fixed", V1)
        head = await fp.client.request("HEAD", f"http://127.0.0.1:{fp.port}/", headers={"Host": "fixed.func.local"})
        self.assertEqual((head.code, head.headers.getRawHeaders("content-length")), (200, ["2"]))
        self.assertEqual(await head.content(), b"")

    async def test_bodies_stream_both_ways(self):
        """
        The function reads the first piece of a chunked request body and answers it before
        the client has sent the second: neither body is buffered whole on the way.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("duplex", DUPLEX)
        client = await raw_connection(self, fp.port)
        client.transport.write(
            b"POST / HTTP/1.1\r\nHost: duplex.func.local\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nfirst\r\n"
        )
        await client.wait_for(b"got first;")
        client.transport.write(b"6\r\nsecond\r\n")
        await client.wait_for(b"got second;")
        client.transport.write(b"0\r\n\r\n")
        received = await client.wait_for(b"\r\n0\r\n\r\n")
        head, _, body = received.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head)
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertEqual(body, b"a\r\ngot first;\r\nb\r\ngot second;\r\n0\r\n\r\n")

    async def test_websocket(self):
        """
        A WebSocket through funcplane to a real workerd function: the handshake, a message
        each way (including one sent with the handshake, before the 101), and the close.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("chat", WS_ECHO)
        client = await raw_connection(self, fp.port)
        client.transport.write(
            b"GET /room HTTP/1.1\r\nHost: chat.func.local\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" + ws_frame(1, b"first")
        )
        received = await client.wait_for(b"echo: first")
        head, _, frames = received.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head)
        self.assertIn(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", head)
        self.assertIn(b"Upgrade: websocket", head)
        self.assertEqual(frames, b"\x81\x0becho: first")
        client.transport.write(ws_frame(1, b"second"))
        received = await client.wait_for(b"echo: second")
        self.assertTrue(received.endswith(b"\x81\x0cecho: second"))
        client.transport.write(ws_frame(8, b"\x03\xe8"))
        received = await client.lost
        # workerd answers a close with a close (code 1000), then closes the connection.
        self.assertTrue(received.endswith(b"\x81\x0cecho: second\x88\x02\x03\xe8"), received[-20:])
        self.assertEqual(await fp.get("chat.func.local"), (426, "WebSocket only"))

    async def test_env_vars_both_formats(self):
        """
        Env vars are globals in a service worker and on env in a module; hostile values
        arrive byte for byte and add no binding.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("envTest", SW_ENV, env_vars={"APP_ENV": "production"})
        self.assertEqual(await fp.get("envtest.func.local"), (200, "production"))
        env = {f"V{i}": value for i, value in enumerate(HOSTILE) if "\x00" not in value}
        env["NUL"] = "a\x00b"
        code, body = await fp.deploy("hostile", ECHO_ENV, env_vars=env)
        self.assertEqual(code, 200, body)
        code, text = await fp.get("hostile.func.local")
        self.assertEqual(json.loads(text), env)

    async def test_outbound_fetch(self):
        """
        With --egress-allow a function's fetch reaches a local server; without it the same
        fetch is blocked and the server sees nothing.
        """
        canary = Canary()
        port = reactor.listenTCP(0, Site(canary), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        target = f"http://127.0.0.1:{port.getHost().port}/"
        opened = await Funcplane(self, egress_allow=("127.0.0.1/32",)).start()
        await opened.deploy("out", fetcher(target))
        self.assertEqual(await opened.get("out.func.local"), (200, "fetched canary"))
        self.assertEqual(canary.hits, 1)
        closed = await Funcplane(self).start()
        await closed.deploy("out", fetcher(target))
        for spelling in [target, target.replace("127.0.0.1", "localhost"), target.replace("127.0.0.1", "127.1")]:
            await closed.deploy("out", fetcher(spelling))
            code, text = await closed.get("out.func.local")
            self.assertEqual(code, 502, text)
            self.assertTrue(text.startswith("blocked"), text)
        self.assertEqual(canary.hits, 1)

    async def test_start_failures(self):
        """
        Code that does not start (syntax error, top-level throw, a top-level hang) answers
        422 with workerd's message; nothing is recorded, no process is left, and the
        previous latest keeps serving.
        """
        fp = await Funcplane(self, startup_timeout=1.0).start()
        await fp.deploy("hello", V1, version="v1")
        cases = [
            ("export default { fetch() { return new Response('x') }", "script_error", "SyntaxError"),
            ("throw new Error('boom at load')", "script_error", "Uncaught Error: boom at load"),
            ("while (true) {}\nexport default {}", "startup_timeout", "did not become ready within 1 seconds"),
        ]
        for code_text, error_code, message in cases:
            code, body = await fp.deploy("hello", code_text, version="v2")
            self.assertEqual((code, body["error"]["code"]), (422, error_code), body)
            self.assertIn(message, body["error"]["message"])
        self.assertEqual(len(processes_in(fp.run_dir)), 1)
        self.assertEqual(await fp.get("hello.func.local"), (200, "v1"))
        code, body = await fp.api("GET", "/api/functions/hello")
        self.assertEqual([v["name"] for v in body["function"]["versions"]], ["v1"])

    async def test_no_fetch_handler(self):
        """
        An ES module whose default export has no fetch handler, or a service worker that
        registers no fetch listener, is refused at deploy with 422 and the reason (workerd alone would start it and answer 500 to every request);
        a WorkerEntrypoint class with a fetch method, in a module with more exports than
        its default, deploys and answers.
        """
        fp = await Funcplane(self).start()
        for code_text in ["export default {}", "export default { scheduled() {} }",
                          "export function fetch() { return new Response('named') }"]:
            code, body = await fp.deploy("hello", code_text, version="v1", format="module")
            self.assertEqual((code, body["error"]["code"]), (422, "script_error"), body)
            self.assertIn("has no fetch handler", body["error"]["message"])
        code, body = await fp.deploy(
            "hello", "addEventListener('scheduled', e => {})", version="v1", format="service-worker"
        )
        self.assertEqual((code, body["error"]["code"]), (422, "script_error"), body)
        self.assertIn("registers no fetch listener", body["error"]["message"])
        self.assertEqual(processes_in(fp.run_dir), [])
        code, body = await fp.deploy(
            "hello",
            'import { WorkerEntrypoint } from "cloudflare:workers";\n'
            "export class Helper {}\n"
            "export default class extends WorkerEntrypoint {"
            " fetch() { return new Response('class ' + typeof Helper) } }",
            version="v2",
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(await fp.get("v2.hello.func.local"), (200, "class function"))

    async def test_bad_requests(self):
        """
        Without the token nothing deploys; bad names, runtimes and conflicts get their
        statuses.
        """
        fp = await Funcplane(self).start()
        code, body = await fp.api("POST", "/api/deploy/hello", {"runtime": "js", "code": V1}, headers={})
        self.assertEqual((code, body["error"]["code"]), (401, "unauthorized"))
        code, body = await fp.deploy("../x", V1)
        self.assertEqual((code, body["error"]["code"]), (400, "invalid_name"))
        self.assertEqual((await fp.deploy("a.b", V1))[1]["error"]["code"], "invalid_name")
        self.assertEqual((await fp.deploy("hello", V1, runtime="python"))[0], 400)
        await fp.deploy("hello", V1, version="v1")
        self.assertEqual((await fp.deploy("hello", V1, version="v1"))[0], 409)
        self.assertEqual((await fp.deploy("HELLO", V1, version="v2"))[0], 409)
        self.assertEqual(await fp.get("nope.func.local"), (404, "function nope not found\n"))

    async def test_manage(self):
        """
        Stop, delete a version, delete a function: processes end and hosts answer 404.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("hello", V1, version="v1")
        await fp.deploy("hello", V2, version="v2", env_vars={"APP_ENV": "x"})
        self.assertEqual(len(processes_in(fp.run_dir)), 2)
        await fp.api("POST", "/api/functions/hello/versions/v1/stop")
        self.assertEqual(len(processes_in(fp.run_dir)), 1)
        self.assertEqual(await fp.get("v1.hello.func.local"), (200, "v1"))
        self.assertEqual((await fp.api("DELETE", "/api/functions/hello/versions/v1"))[0], 200)
        self.assertEqual((await fp.get("v1.hello.func.local"))[0], 404)
        self.assertEqual((await fp.api("DELETE", "/api/functions/hello"))[0], 200)
        self.assertEqual((await fp.get("hello.func.local"))[0], 404)
        self.assertEqual(processes_in(fp.run_dir), [])

    async def test_restart(self):
        """
        After funcplane stops, none of its children is left; started again on the same data
        directory, every host answers exactly as before, without a redeploy.
        """
        fp = await Funcplane(self).start()
        self.addCleanup(fp.remove)
        await fp.deploy("hello", V1, version="v1")
        await fp.deploy("hello", V2, version="v2", alias="test", env_vars={"APP_ENV": "production"})
        await fp.deploy("sw", SW_ENV, env_vars={"APP_ENV": "kept"})
        await fp.api("POST", "/api/rollback/hello", {"version": "v1"})
        hosts = ["hello.func.local", "v1.hello.func.local", "v2.hello.func.local", "test.hello.func.local", "sw.func.local"]
        before = [await fp.get(h) for h in hosts]
        await fp.stop()
        self.assertEqual(processes_in(fp.run_dir), [])
        again = await Funcplane(self, data_dir=fp.data_dir).start()
        self.assertEqual([await again.get(h) for h in hosts], before)
        self.assertEqual(before, [(200, "v1"), (200, "v1"), (200, "v2 production"), (200, "v2 production"), (200, "kept")])
