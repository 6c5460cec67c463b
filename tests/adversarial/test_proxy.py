"""
Attacks on the proxy, over raw sockets: smuggling, Host confusion, hop-by-hop and
forwarding headers, pipelining, slow clients, chunk framing and trailers, refusals a client
must be able to read, WebSockets that would stay forever.
"""

import http.client
import json

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from funcplane.admin.parse import Limits
from funcplane.edge.listener import ProxyLimits
from tests.integration.harness import TOKEN, Funcplane, processes_in, raw_connection

# Counts the requests it sees and echoes the last one.
ECHO = """let seen = 0; const paths = [];
export default { async fetch(request) {
  seen += 1;
  const url = new URL(request.url);
  paths.push(request.method + " " + url.pathname);
  if (url.pathname == "/redirect") return new Response(null, {status: 302, headers: {location: "/elsewhere"}});
  return new Response(JSON.stringify({seen, paths, version: VERSION_NAME, method: request.method,
    path: url.pathname, headers: Object.fromEntries(request.headers), body: await request.text()}),
    {headers: {"connection": "x-internal", "x-internal": "secret", "keep-alive": "timeout=1"}});
} }"""


def echo(version):
    return ECHO.replace("VERSION_NAME", json.dumps(version))


def responses(data):
    """
    Split raw bytes into (status line, headers dict, body) for each Content-Length response.
    """
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        found.append((lines[0], headers, rest[:length]))
        data = rest[length:]
    return found


class ProxyAttackTests(TestCase):
    timeout = 30

    async def setUp(self):
        self.fp = await Funcplane(
            self, proxy_limits=ProxyLimits(head_seconds=1.0, body_bytes=1000)
        ).start()
        await self.fp.deploy("hello", echo("v1"), version="v1")
        await self.fp.deploy("hello", echo("v2"), version="v2")

    async def seen(self, host="v2.hello.func.local"):
        """
        The requests the version has seen, this one included.
        """
        code, body = await self.fp.get(host)
        return json.loads(body)["paths"]

    async def send_raw(self, data, until=None):
        client = await raw_connection(self, self.fp.port)
        client.transport.write(data)
        if until is not None:
            return await client.wait_for(until)
        return await client.lost

    async def test_smuggling_refused(self):
        """
        Requests with ambiguous framing are answered 400 and the connection closes. Those
        whose headers are ambiguous never reach the function; those whose chunked body
        turns out malformed reach it only as far as the bad chunk, and are cut off. The
        request hidden in their bodies is never seen.
        """
        hidden = b"GET /smuggled HTTP/1.1\r\nHost: v2.hello.func.local\r\n\r\n"
        in_headers = [
            b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (5 + len(hidden)) + hidden,
            b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + hidden,
            b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(hidden) + hidden,
            b"Content-Length: +%d\r\n\r\n" % len(hidden) + hidden,
            b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + hidden,
            b"X-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n" + hidden,
        ]
        in_body = [
            b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n" + hidden,
            b"Transfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\n" + hidden,
            b"Transfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n" + hidden,
        ]
        before = await self.seen()
        for attack in in_headers + in_body:
            received = await self.send_raw(b"POST / HTTP/1.1\r\nHost: v2.hello.func.local\r\n" + attack)
            status = received.split(b"\r\n", 1)[0]
            self.assertIn(status, [b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 501 Not Implemented"], attack)
            self.assertEqual(len(responses(received)), 1, received)
            if attack in in_headers:
                self.assertEqual(await self.seen(), before + ["GET /"], attack)
                before = before + ["GET /"]
        for target in [b"/a\x00b", b"/a\rb", b"/a b"]:
            received = await self.send_raw(b"GET " + target + b" HTTP/1.1\r\nHost: v2.hello.func.local\r\n\r\n")
            self.assertTrue(received.startswith(b"HTTP/1.1 400 "), received)
        seen = await self.seen()
        self.assertNotIn("GET /smuggled", seen)
        self.assertEqual(set(seen[len(before):]) - {"POST /"}, {"GET /"})

    async def test_pipelined_versions_in_order(self):
        """
        Pipelined requests to two versions on one connection are answered in the order they
        were sent, each by its own version.
        """
        request = b"GET /%s HTTP/1.1\r\nHost: %s.hello.func.local\r\n\r\n"
        data = b"".join(request % (str(i).encode(), b"v1" if i % 2 else b"v2") for i in range(6))
        client = await raw_connection(self, self.fp.port)
        client.transport.write(data)
        received = await client.wait_for(b'"path":"/5"')
        answers = [json.loads(body) for _, _, body in responses(received)]
        self.assertEqual(
            [(a["path"], a["version"]) for a in answers],
            [(f"/{i}", "v1" if i % 2 else "v2") for i in range(6)],
        )

    async def test_host_confusion_reaches_nothing(self):
        """
        Hosts that only look like function hosts never reach a function and never start a
        process.
        """
        await self.fp.api("POST", "/api/functions/hello/versions/v1/stop")
        running = set(processes_in(self.fp.run_dir))
        for host in [b"v1.hello.func.local.evil.com", b"evil.v1.hello.func.local", b"127.0.0.1",
                     b"[::1]", b"", b"func.local", b"v1.hello.func.local@evil.com"]:
            received = await self.send_raw(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
            self.assertNotIn(b'"version"', received, host)
        for request in [b"GET / HTTP/1.1\r\n\r\n",
                        b"GET / HTTP/1.1\r\nHost: v1.hello.func.local\r\nHost: v2.hello.func.local\r\n\r\n",
                        b"GET http://v1.hello.func.local/ HTTP/1.1\r\nHost: v1.hello.func.local\r\n"
                        b"Connection: close\r\n\r\n"]:
            received = await self.send_raw(request)
            self.assertTrue(received.startswith(b"HTTP/1.1 400 "), received)
        self.assertEqual(set(processes_in(self.fp.run_dir)), running)

    async def test_headers_hop_by_hop_and_forwarding(self):
        """
        Hop-by-hop headers go no further either way; X-Forwarded-* are funcplane's; the
        response gains no Content-Type and a 302 reaches the client.
        """
        received = await self.send_raw(
            b"GET / HTTP/1.1\r\nHost: v2.hello.func.local\r\nConnection: close, X-Secret\r\n"
            b"X-Secret: s\r\nKeep-Alive: 9\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n"
            b"Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Forwarded-For: 6.6.6.6\r\n"
            b"X-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nX-Kept: yes\r\n\r\n"
        )
        [(status, headers, body)] = responses(received)
        seen = json.loads(body)["headers"]
        for name in ["x-secret", "keep-alive", "te", "proxy-authorization", "proxy-connection", "upgrade"]:
            self.assertNotIn(name, seen)
        self.assertEqual(seen["x-kept"], "yes")
        self.assertEqual(
            (seen["x-forwarded-for"], seen["x-forwarded-host"], seen["x-forwarded-proto"]),
            ("127.0.0.1", "v2.hello.func.local", "http"),
        )
        # workerd itself sends neither the function's Connection header nor Keep-Alive; the
        # unit tests show funcplane dropping what a Connection header names.
        self.assertNotIn(b"keep-alive", headers)
        self.assertEqual(headers[b"x-internal"], b"secret")
        self.assertEqual(headers[b"content-type"], b"text/plain;charset=UTF-8")
        received = await self.send_raw(b"GET /redirect HTTP/1.1\r\nHost: v2.hello.func.local\r\nConnection: close\r\n\r\n")
        [(status, headers, body)] = responses(received)
        self.assertEqual((status, headers[b"location"]), (b"HTTP/1.1 302 Found", b"/elsewhere"))
        self.assertNotIn(b"content-type", headers)

    async def test_slow_headers_cut_off(self):
        """
        A client sending its headers a byte at a time is cut off by the header deadline,
        while other clients are served.
        """
        slow = await raw_connection(self, self.fp.port)
        request = b"GET / HTTP/1.1\r\nHost: v2.hello.func.local\r\nX-Pad: " + b"a" * 100
        for byte in request[:30]:
            slow.transport.write(bytes([byte]))
            await deferLater(reactor, 0.05, lambda: None)
            if byte % 5 == 0:
                self.assertEqual((await self.fp.get("v2.hello.func.local"))[0], 200)
        received = await slow.lost
        self.assertTrue(received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received)

    async def test_body_over_limit(self):
        """
        A declared body over the limit is refused before it is sent; a chunked one as soon
        as it passes the limit, and the function never gets the whole of it.
        """
        received = await self.send_raw(
            b"POST / HTTP/1.1\r\nHost: v2.hello.func.local\r\nContent-Length: 1001\r\n\r\n", b"\r\n\r\n"
        )
        self.assertTrue(received.startswith(b"HTTP/1.1 413 "), received)
        client = await raw_connection(self, self.fp.port)
        client.transport.write(b"POST / HTTP/1.1\r\nHost: v2.hello.func.local\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            client.transport.write(b"190\r\n" + b"x" * 400 + b"\r\n")
        received = await client.lost
        self.assertTrue(received.startswith(b"HTTP/1.1 413 "), received)


class ConnectionCapTests(TestCase):
    timeout = 30

    async def test_connection_cap(self):
        """
        One address may hold only so many connections: one more is answered 503 and
        closed, while those it holds keep working; once one closes, a new one is let in.
        """
        fp = await Funcplane(self, proxy_limits=ProxyLimits(connections_per_ip=3)).start()
        await fp.deploy("hello", echo("v1"), version="v1")
        request = b"GET / HTTP/1.1\r\nHost: v1.hello.func.local\r\n\r\n"
        held = [await raw_connection(self, fp.port) for _ in range(3)]
        # Each held connection has been counted once it has been answered.
        for client in held:
            client.transport.write(request)
            await client.wait_for(b'"version":"v1"')
        extra = await raw_connection(self, fp.port)
        received = await extra.lost
        self.assertTrue(received.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), received)
        self.assertIn(b"too many connections from your address", received)
        held[0].transport.write(request)
        await held[0].wait_for(b'"seen":4')
        held[1].transport.loseConnection()
        await held[1].lost
        again = await raw_connection(self, fp.port)
        again.transport.write(request)
        received = await again.wait_for(b'"version":"v1"')
        self.assertTrue(received.startswith(b"HTTP/1.1 200 OK\r\n"), received)


WS_ECHO = """export default { fetch(request) {
  if (request.headers.get("upgrade") !== "websocket") return new Response("WebSocket only", {status: 426});
  const [client, server] = Object.values(new WebSocketPair());
  server.accept();
  server.addEventListener("message", e => server.send("echo: " + e.data));
  return new Response(null, {status: 101, webSocket: client});
} }"""

WS_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def ws_frame(payload, mask=b"\x11\x22\x33\x44"):
    """
    A masked text frame from a client (RFC 6455 5.2), payload under 126 bytes.
    """
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def post_with_http_client(port, host, path, size):
    """
    POST C{size} bytes with Python's http.client, which sends the whole body before it
    reads; return the status and body it reads, or the error it met.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Host": host, "Authorization": f"Bearer {TOKEN}"}
    try:
        connection.request("POST", path, body=b"x" * size, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except OSError as e:
        return type(e).__name__, b""
    finally:
        connection.close()


class FramingAttackTests(TestCase):
    timeout = 30

    async def setUp(self):
        self.fp = await Funcplane(self).start()
        await self.fp.deploy("hello", echo("v1"), version="v1")

    async def attack(self, prefix, piece):
        """
        Send a chunked POST that begins with C{prefix}, then C{piece} after C{piece} until
        funcplane answers (at most 200 KB of pieces), serving other clients meanwhile;
        return the answer and how many bytes of pieces were sent.
        """
        client = await raw_connection(self, self.fp.port)
        client.transport.write(
            b"POST / HTTP/1.1\r\nHost: v1.hello.func.local\r\nTransfer-Encoding: chunked\r\n\r\n" + prefix
        )
        sent = 0
        while not client.received and sent < 200_000:
            client.transport.write(piece)
            sent += len(piece)
            await deferLater(reactor, 0.001, lambda: None)
            if sent % (100 * len(piece)) == 0:
                self.assertEqual((await self.fp.get("v1.hello.func.local"))[0], 200)
        self.assertTrue(client.received, f"no answer after {sent} bytes")
        return await client.lost, sent

    async def test_endless_trailer(self):
        """
        A trailer value that never ends is refused with 400 within a few KiB and the
        connection closes, while other clients are served.
        """
        answer, sent = await self.attack(b"3\r\nabc\r\n0\r\nX-Trailer: ", b"a" * 1000)
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer)
        self.assertIn(b"framing (chunk extensions, trailers) runs over 4096 bytes", answer)
        self.assertLess(sent, 20_000)

    async def test_chunk_extensions(self):
        """
        Chunk extensions beside a trickle of data are refused with 400 after a few KiB,
        not passed for as long as the body limit would allow.
        """
        answer, sent = await self.attack(b"", b"1;" + b"e" * 500 + b"\r\nx\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer)
        self.assertLess(sent, 20_000)


class RefusalTests(TestCase):
    """
    A refused request's answer reaches a client that sends its whole body before reading,
    on the function listener and the admin API alike; 100 Continue never follows a refusal.
    """

    timeout = 60

    async def setUp(self):
        self.fp = await Funcplane(
            self, proxy_limits=ProxyLimits(body_bytes=1000), limits=Limits(max_code_bytes=1000)
        ).start()
        await self.fp.deploy("hello", echo("v1"), version="v1")

    async def test_function_refusal_read(self):
        """
        http.client POSTing 32 MiB to a function whose limit is 1,000 bytes reads the 413
        and why.
        """
        status, body = await deferToThread(
            post_with_http_client, self.fp.port, "v1.hello.func.local", "/", 32 * 1024 * 1024
        )
        self.assertEqual((status, body), (413, b"the request body is over 1000 bytes\n"))

    async def test_admin_refusal_read(self):
        """
        http.client POSTing 32 MiB to the admin API reads its 413 and the JSON error.
        """
        status, body = await deferToThread(
            post_with_http_client, self.fp.port, "admin", "/api/deploy/hello", 32 * 1024 * 1024
        )
        self.assertEqual(status, 413)
        self.assertEqual(json.loads(body)["error"]["code"], "body_too_large")

    async def test_no_continue_after_refusal(self):
        """
        A client that asks to continue with a body over the limit gets the 413 alone,
        from either listener, and then the end of the connection.
        """
        for host, path in [(b"v1.hello.func.local", b"/"), (b"admin", b"/api/deploy/hello")]:
            client = await raw_connection(self, self.fp.port)
            client.transport.write(
                b"POST " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: Bearer "
                + TOKEN.encode() + b"\r\nExpect: 100-continue\r\nContent-Length: 50000000\r\n\r\n"
            )
            answer = await client.lost
            self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer)
            self.assertNotIn(b"100 Continue", answer)
            self.assertEqual(answer.count(b"HTTP/1.1 "), 1, answer)


class ClientClaimsTests(TestCase):
    timeout = 30

    async def test_claims_dropped(self):
        """
        A function never sees a client's CF-Connecting-IP, True-Client-IP, X-Real-IP,
        Forwarded or CF-* headers; CF-Connecting-IP is the client's address.
        """
        fp = await Funcplane(self).start()
        await fp.deploy("hello", echo("v1"), version="v1")
        client = await raw_connection(self, fp.port)
        client.transport.write(
            b"GET / HTTP/1.1\r\nHost: v1.hello.func.local\r\nConnection: close\r\n"
            b"CF-Connecting-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n"
            b"Forwarded: for=6.6.6.6\r\nCF-IPCountry: XX\r\nCF-Ray: 1-EVIL\r\n\r\n"
        )
        [(status, headers, body)] = responses(await client.lost)
        seen = json.loads(body)["headers"]
        self.assertEqual(seen["cf-connecting-ip"], "127.0.0.1")
        for name in ["true-client-ip", "x-real-ip", "forwarded", "cf-ipcountry", "cf-ray"]:
            self.assertNotIn(name, seen)


class WebSocketLimitTests(TestCase):
    timeout = 30

    async def test_caps_and_idle(self):
        """
        A second WebSocket to a version that may hold one is refused with 503 and why;
        the first, once silent for the idle limit, is closed by funcplane, which lets
        another in.
        """
        fp = await Funcplane(
            self, proxy_limits=ProxyLimits(tunnels_per_version=1, tunnel_idle_seconds=1.0)
        ).start()
        await fp.deploy("chat", WS_ECHO, version="v1")
        first = await raw_connection(self, fp.port)
        first.transport.write(WS_UPGRADE % b"v1.chat.func.local")
        await first.wait_for(b"\r\n\r\n")
        self.assertTrue(first.received.startswith(b"HTTP/1.1 101 "), first.received)
        first.transport.write(ws_frame(b"hi"))
        await first.wait_for(b"echo: hi")
        second = await raw_connection(self, fp.port)
        second.transport.write(WS_UPGRADE % b"v1.chat.func.local")
        refused = await second.lost
        self.assertTrue(refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), refused)
        self.assertIn(b"this version has 1 WebSockets open, as many as it may", refused)
        started = reactor.seconds()
        await first.lost
        self.assertLess(reactor.seconds() - started, 5)
        third = await raw_connection(self, fp.port)
        third.transport.write(WS_UPGRADE % b"v1.chat.func.local")
        received = await third.wait_for(b"\r\n\r\n")
        self.assertTrue(received.startswith(b"HTTP/1.1 101 "), received)
