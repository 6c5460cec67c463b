"""
Attacks on the admin API: no token, bad names, oversized bodies, racing deploys; bodies
sent before the token is known, guessed tokens, trickled headers, log followers that do
not read, JSON nested too deep, misspelt fields and scripts whose format is misread.
"""

import json
import os
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from funcplane.admin.auth import TokenTooShort
from funcplane.admin.follow import FOLLOW_BUFFER_BYTES
from funcplane.edge.listener import ProxyLimits
from funcplane.service import FuncplaneService
from tests.integration.harness import AUTH, TOKEN, Funcplane, eventually, processes_in, raw_connection

CODE = 'export default { fetch() { return new Response("ok") } }'


def spooled_files():
    """
    How many unnamed temporary files this process holds open: where twisted.web spools a
    request body it expects to be large.
    """
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(tempfile.gettempdir()) and target.endswith("(deleted)"):
            found += 1
    return found


class Events:
    """
    The log events funcplane emits while a test runs.
    """

    def __init__(self, test_case):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        test_case.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def matching(self, text):
        return [e for e in self.events if text in e.get("log_format", "")]


class AdminAttackTests(TestCase):
    timeout = 60

    async def setUp(self):
        # These tests send many requests without the token on purpose.
        self.fp = await Funcplane(self, admin_auth_failures=1000).start()

    async def raw(self, request):
        client = await raw_connection(self, self.fp.port)
        client.transport.write(request)
        return await client.lost

    async def test_no_token_no_effect(self):
        """
        Every route refuses a missing or wrong token with 401, and nothing changes.
        """
        await self.fp.deploy("hello", CODE, version="v1")
        calls = [
            ("POST", "/api/deploy/hello", {"runtime": "js", "code": CODE, "version": "v2"}),
            ("POST", "/api/rollback/hello", {"version": "v1"}),
            ("GET", "/api/functions", None),
            ("GET", "/api/functions/hello", None),
            ("GET", "/api/functions/hello/logs", None),
            ("PUT", "/api/functions/hello/aliases/x", {"version": "v1"}),
            ("DELETE", "/api/functions/hello/aliases/x", None),
            ("POST", "/api/functions/hello/versions/v1/stop", None),
            ("DELETE", "/api/functions/hello/versions/v1?force=true", None),
            ("DELETE", "/api/functions/hello", None),
        ]
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"X-Deploy-Token": TOKEN + "x"}]:
            for method, path, body in calls:
                code, answer = await self.fp.api(method, path, body, headers=headers)
                self.assertEqual((code, answer["error"]["code"]), (401, "unauthorized"), (method, path))
        code, body = await self.fp.api("GET", "/api/functions/hello")
        self.assertEqual([v["name"] for v in body["function"]["versions"]], ["v1"])
        self.assertEqual(body["function"]["aliases"], [])
        self.assertEqual(len(processes_in(self.fp.run_dir)), 1)

    async def test_bad_names(self):
        """
        Names that are not DNS labels are refused with 400 however they are spelled, and
        nothing is created.
        """
        body = json.dumps({"runtime": "js", "code": CODE}).encode()
        for name in [b"../x", b"a/b", b"a.b", b"%2e%2e", b"%2e%2e%2fx", b"a%00b", b"-a", b"a-",
                     b"a" * 64, b"caf%C3%A9", b"%20"]:
            answer = await self.raw(
                b"POST /api/deploy/" + name + b" HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer "
                + TOKEN.encode() + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
            )
            self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), (name, answer[:200]))
            self.assertIn(b'"invalid_name"', answer)
        code, listed = await self.fp.api("GET", "/api/functions")
        self.assertEqual(listed["functions"], [])
        self.assertEqual(processes_in(self.fp.run_dir), [])

    async def test_oversized_body_refused_unread(self):
        """
        A deploy body over the limit is refused with 413 from its declared length, before
        it is sent.
        """
        client = await raw_connection(self, self.fp.port)
        client.transport.write(
            b"POST /api/deploy/hello HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " + TOKEN.encode()
            + b"\r\nContent-Length: 100000000\r\n\r\n"
        )
        answer = await client.lost
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer)
        self.assertIn(b'"body_too_large"', answer)

    async def test_racing_deploys(self):
        """
        Concurrent deploys of one version name leave exactly one version and one process.
        """
        results = await gatherResults(
            [Deferred.fromCoroutine(self.fp.deploy("race", CODE.replace("ok", f"ok{i}"), version="v1"))
             for i in range(4)]
        )
        codes = sorted(code for code, _ in results)
        self.assertEqual(codes, [200, 409, 409, 409])
        code, body = await self.fp.api("GET", "/api/functions/race")
        self.assertEqual([v["name"] for v in body["function"]["versions"]], ["v1"])
        self.assertEqual(len(processes_in(self.fp.run_dir)), 1)


class EarlyRefusalTests(TestCase):
    """
    What an anonymous client gets before it has sent a body, or while it sends a
    request slowly.
    """

    timeout = 60

    async def setUp(self):
        self.fp = await Funcplane(self, proxy_limits=ProxyLimits(head_seconds=1.0), admin_auth_failures=1000).start()

    async def test_unauthenticated_bodies_not_spooled(self):
        """
        Twenty connections that declare 20 MiB deploy bodies without a token each get 401
        with the API's JSON as soon as their headers are in; funcplane opens no temporary
        file for any of them, and the bytes they send after are discarded.
        """
        before = spooled_files()
        clients = []
        for i in range(20):
            client = await raw_connection(self, self.fp.port)
            client.transport.write(
                b"POST /api/deploy/f%d HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\n"
                b"Content-Length: 20971520\r\n\r\n" % i
            )
            clients.append(client)
        for client in clients:
            answer = await client.wait_for(b"}")
            self.assertTrue(answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n"), answer[:100])
            self.assertEqual(json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"], "unauthorized")
        self.assertEqual(spooled_files(), before)
        for client in clients:
            client.transport.write(b"x" * 65536)
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(spooled_files(), before)
        code, listed = await self.fp.api("GET", "/api/functions")
        self.assertEqual(listed["functions"], [])

    async def test_trickled_headers(self):
        """
        On a kept-alive admin connection, a request whose headers trickle in is answered
        408 once the header timeout (1 s here) has passed since its first byte, and the
        connection closes; before, any byte reset Twisted's idle timer.
        """
        client = await raw_connection(self, self.fp.port)
        client.transport.write(b"GET /health HTTP/1.1\r\nHost: admin\r\n\r\n")
        await client.wait_for(b'{"status": "ok"}')
        client.received = b""
        start = reactor.seconds()
        for byte in b"GET /api/functions HTTP/1.1\r\nHost: admin\r\nX-Slow: " + b"a" * 100:
            if client.lost.called:
                break
            client.transport.write(bytes([byte]))
            await deferLater(reactor, 0.1, lambda: None)
        self.assertTrue(await eventually(lambda: client.lost.called, 3), "the connection stayed open")
        answer = await client.lost
        self.assertLess(reactor.seconds() - start, 3)
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer)
        self.assertEqual(json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"], "request_timeout")

    async def test_short_token_refused_at_start(self):
        """
        A $FUNCPLANE_ADMIN_TOKEN shorter than 32 characters stops funcplane's start with
        an error saying so: nothing listens and no child runs.
        """
        other = Funcplane(self)
        service = FuncplaneService(reactor, other.settings, environ={"FUNCPLANE_ADMIN_TOKEN": "short"})
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        try:
            await service.ready
        except TokenTooShort as e:
            self.assertIn("has 5 characters; an admin token needs at least 32", str(e))
        else:
            self.fail("funcplane started with a 5-character token")
        self.assertIsNone(service.port)
        self.assertEqual(processes_in(other.run_dir), [])


class GuessedTokenTests(TestCase):
    """
    A client that guesses tokens, with the default limit of 10 failures a minute.
    """

    timeout = 60

    async def setUp(self):
        self.fp = await Funcplane(self).start()

    async def test_guesses_limited(self):
        """
        Ten wrong tokens are 401s, each logged with the client's address and the path but
        not the token; then even the right token gets 429 with Retry-After, while
        /health still answers.
        """
        events = Events(self)
        guesses = [f"guess-{i:02d}-0123456789abcdef0123456789" for i in range(10)]
        for guess in guesses:
            code, answer = await self.fp.api("GET", "/api/functions", headers={"Authorization": f"Bearer {guess}"})
            self.assertEqual((code, answer["error"]["code"]), (401, "unauthorized"))
        code, content = await self.fp.request("GET", "/api/functions", headers=AUTH)
        self.assertEqual(code, 429)
        self.assertEqual(json.loads(content)["error"]["code"], "too_many_failures")
        client = await raw_connection(self, self.fp.port)
        client.transport.write(
            b"GET /api/functions HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " + TOKEN.encode()
            + b"\r\nConnection: close\r\n\r\n"
        )
        answer = await client.lost
        self.assertIn(b"\r\nRetry-After: 6\r\n", answer)
        self.assertEqual((await self.fp.request("GET", "/health", headers={}))[0], 200)
        failures = events.matching("admin authentication failed")
        self.assertEqual([(e["client"], e["path"]) for e in failures], [("127.0.0.1", "/api/functions")] * 10)
        self.assertEqual(len(events.matching("too many failed admin authentications")), 1)
        logged = repr(events.events)
        for guess in guesses + [TOKEN]:
            self.assertNotIn(guess, logged)


class FollowerTests(TestCase):
    """
    A log follower that stops reading, against a function that prints a lot.
    """

    timeout = 60

    async def setUp(self):
        self.fp = await Funcplane(self).start()

    async def test_dropped(self):
        """
        A follower whose client does not read is dropped once a bounded amount waits for
        it (the drop is logged), though the function goes on printing; the client then
        finds its connection closed, having received far less than was printed.
        """
        loud = (
            "export default { fetch() { const line = 'x'.repeat(8000);"
            " for (let i = 0; i < 200; i++) console.log(i + line);"
            " return new Response('printed') } }"
        )
        self.assertEqual((await self.fp.deploy("loud", loud, version="v1"))[0], 200)
        events = Events(self)
        client = await raw_connection(self, self.fp.port)
        client.transport.write(
            b"GET /api/functions/loud/logs?follow=true HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer "
            + TOKEN.encode() + b"\r\n\r\n"
        )
        await client.wait_for(b"text/event-stream")
        client.transport.pauseProducing()
        printed = 0
        for _ in range(40):
            self.assertEqual(await self.fp.get("loud.func.local"), (200, "printed"))
            printed += 200 * 8000
            if events.matching("dropped a follower"):
                break
        self.assertTrue(await eventually(lambda: events.matching("dropped a follower")))
        [event] = events.matching("dropped a follower")
        self.assertEqual((event["function"], event["client"]), ("loud", "127.0.0.1"))
        self.assertGreater(event["held"], FOLLOW_BUFFER_BYTES)
        client.transport.resumeProducing()
        received = await client.lost
        self.assertLess(len(received), printed)


class BodyTests(TestCase):
    """
    Deploy bodies that used to be misread: nested too deep, with a misspelt field, or
    with code whose format the line-start guess got wrong.
    """

    timeout = 60

    async def setUp(self):
        self.fp = await Funcplane(self).start()

    async def test_deep_json(self):
        """
        JSON nested 100,000 deep is a 400 in each API's JSON shape, not an HTML 500.
        """
        self.assertEqual((await self.fp.deploy("hello", CODE))[0], 200)
        deep = b"[" * 100_000 + b"]" * 100_000
        code, content = await self.fp.request("POST", "/api/deploy/hello", b'{"code": ' + deep + b"}", headers=AUTH)
        self.assertEqual((code, json.loads(content)["error"]["code"]), (400, "invalid_request"))
        self.assertIn("nested too deeply", json.loads(content)["error"]["message"])
        code, content = await self.fp.request(
            "POST", "/client/v4/accounts/a/workers/scripts/hello/tails", b'{"filters": ' + deep + b"}", headers=AUTH
        )
        self.assertEqual((code, json.loads(content)["errors"][0]["code"]), (400, 10021))

    async def test_unknown_field(self):
        """
        A deploy with C{envVars} (for C{env_vars}) is refused, naming both, and nothing
        runs.
        """
        code, answer = await self.fp.deploy("hello", CODE, envVars={"A": "1"})
        self.assertEqual(code, 400)
        self.assertIn("unknown field 'envVars' in the deploy body (did you mean 'env_vars'?)", answer["error"]["message"])
        self.assertEqual(processes_in(self.fp.run_dir), [])

    async def test_one_line_modules(self):
        """
        ES modules on one line, after a comment or a statement, deploy as modules and
        serve.
        """
        for name, code in [
            ("comment", '/* hello */ export default { fetch() { return new Response("comment") } }'),
            ("statement", 'const body = "statement"; export default { fetch() { return new Response(body) } }'),
            ("strict", '"use strict";export default{fetch(){return new Response("strict")}}'),
        ]:
            self.assertEqual((await self.fp.deploy(name, code))[0], 200, name)
            self.assertEqual(await self.fp.get(f"{name}.func.local"), (200, name))

    async def test_misread_format_says_how(self):
        """
        A module the scanner takes for a service worker (a regular expression right after
        an if's parenthesis looks like a division) fails with workerd's error and the way
        out, "format":"module"; sent so, it deploys and serves.
        """
        code = 'if (true) /"/.test("a"); export default { fetch() { return new Response("m") } }'
        status, answer = await self.fp.deploy("misread", code)
        self.assertEqual(status, 422)
        message = answer["error"]["message"]
        self.assertIn("Unexpected token 'export'", message)
        self.assertIn('if it is an ES module, send "format":"module"', message)
        self.assertEqual((await self.fp.deploy("misread", code, format="module"))[0], 200)
        self.assertEqual(await self.fp.get("misread.func.local"), (200, "m"))
