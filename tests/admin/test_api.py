"""
Tests for L{funcplane.admin.api}: the seed's C{/api}, through its Klein resource, on a real
store and platform with fake children.
"""

import json

from treq.testing import StubTreq
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from funcplane.admin.api import AdminAPI
from funcplane.admin.auth import TokenChecker, token_hash
from funcplane.errors import StartFailed
from funcplane.observe.logbook import LogBook
from funcplane.admin.parse import Limits
from funcplane.admin.site import AdminLimits, admin_site
from funcplane.model import PLAIN_TEXT, SCRIPT, Binding, Module
from funcplane.platform import Platform
from funcplane.routing import NotRouted, RouteTable
from funcplane.runtime.supervisor import Supervisor
from tests.fakes import AUTH, TOKEN, FakeLauncher, memory_store

SW = 'addEventListener("fetch", e => e.respondWith(new Response("v1")))'
BASE = "http://127.0.0.1:8081"


class APICase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.store = memory_store(self)
        self.launcher = FakeLauncher(auto_ready=True)
        self.supervisor = Supervisor(Clock(), self.launcher, self.store.version_spec)
        self.routes = RouteTable("func.local")
        ids = iter(f"id{i}" for i in range(100))
        names = iter(["gen1", "gen2"])
        self.logbook = LogBook(self.clock)
        self.platform = Platform(self.clock, self.store, self.supervisor, self.routes,
                                 new_id=lambda: next(ids), new_version_name=lambda: next(names),
                                 logbook=self.logbook)
        self.api = AdminAPI(self.platform, TokenChecker(token_hash(TOKEN)), Limits(max_code_bytes=2000),
                            "func.local", 8081, logbook=self.logbook, clock=self.clock)
        self.client = StubTreq(self.api.resource())

    def call(self, method, path, body=None, headers=AUTH, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        d = self.client.request(method, BASE + path, data=data, headers=headers)
        self.client.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(self.client.content(response))
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/json"])
        return response.code, json.loads(content)

    def deploy(self, name="hello", **body):
        return self.call("POST", f"/api/deploy/{name}", dict({"runtime": "js", "code": SW}, **body))

    def assertError(self, result, status, code, text=""):
        self.assertEqual(result[0], status, result)
        self.assertEqual(result[1]["status"], "error")
        self.assertEqual(result[1]["error"]["code"], code)
        self.assertIn(text, result[1]["error"]["message"])


class AdminAPITests(APICase):
    """
    The seed's routes: deploy, rollback, functions, aliases, versions, and their errors.
    """

    def test_health(self):
        """
        GET /health needs no token and says nothing but that funcplane is up.
        """
        d = self.client.get(BASE + "/health")
        self.client.flush()
        response = self.successResultOf(d)
        self.assertEqual((response.code, json.loads(self.successResultOf(self.client.content(response)))), (200, {"status": "ok"}))

    def test_deploy(self):
        """
        A deploy answers the seed's fields, and the version serves at its host and the
        function's.
        """
        self.assertEqual(
            self.deploy(version="v1"),
            (200, {"status": "success", "funcName": "hello", "version": "v1", "alias": "",
                   "subdomain": "v1.hello.func.local", "accessUrl": "http://v1.hello.func.local:8081"}),
        )
        self.assertEqual(self.routes.resolve(b"v1.hello.func.local"), "id0")
        self.assertEqual(self.routes.resolve(b"hello.func.local"), "id0")
        self.assertEqual(self.launcher.launched[0].spec.modules, (Module("worker.js", SCRIPT, SW.encode()),))

    def test_deploy_alias_and_generated_version(self):
        """
        Without a version a name is generated and returned; the alias points at the new
        version, which becomes latest.
        """
        self.deploy(version="v1")
        code, body = self.deploy(alias="test", env_vars={"APP_ENV": "production"})
        self.assertEqual((code, body["version"], body["alias"], body["subdomain"]), (200, "gen1", "test", "gen1.hello.func.local"))
        self.assertEqual(self.routes.resolve(b"test.hello.func.local"), "id1")
        self.assertEqual(self.routes.resolve(b"hello.func.local"), "id1")
        self.assertEqual(
            self.launcher.launched[1].spec.bindings, (Binding("APP_ENV", PLAIN_TEXT, "production"),)
        )

    def test_rollback(self):
        """
        Rollback moves latest (and an optional alias) and answers the seed's fields; an
        unknown version is a 404 that changes nothing.
        """
        self.deploy(version="v1")
        self.deploy(version="v2")
        self.assertEqual(
            self.call("POST", "/api/rollback/hello", {"version": "v1"}),
            (200, {"status": "success", "funcName": "hello", "targetVersion": "v1", "alias": "",
                   "accessUrl": "http://v1.hello.func.local:8081"}),
        )
        self.assertEqual(self.routes.resolve(b"hello.func.local"), "id0")
        self.assertError(self.call("POST", "/api/rollback/hello", {"version": "v9"}), 404, "version_not_found", "no version v9")
        self.assertError(self.call("POST", "/api/rollback/nope", {"version": "v1"}), 404, "function_not_found")
        self.assertEqual(self.routes.resolve(b"hello.func.local"), "id0")
        self.assertEqual(self.call("POST", "/api/rollback/hello", {"version": "v2", "alias": "prod"})[1]["alias"], "prod")
        self.assertEqual(self.routes.resolve(b"prod.hello.func.local"), "id1")

    def test_start_failure(self):
        """
        Code that does not start answers 422 with the runtime's message; nothing is
        recorded, no process is left, the previous latest still serves.
        """
        self.deploy(version="v1")
        launch = self.launcher.launch

        def failing(spec):
            child = launch(spec)
            child._ready = type(child._ready)()
            child.fail_start(StartFailed("Uncaught SyntaxError: Unexpected end of input", "ScriptError"))
            return child

        self.launcher.launch = failing
        self.assertError(self.deploy(version="v2"), 422, "script_error", "Unexpected end of input")
        self.assertEqual(self.routes.resolve(b"hello.func.local"), "id0")
        self.assertEqual(self.launcher.launched[-1].pid, None)
        self.assertRaises(NotRouted, self.routes.resolve, b"v2.hello.func.local")
        self.assertEqual([v["name"] for v in self.call("GET", "/api/functions/hello")[1]["function"]["versions"]], ["v1"])

    def test_bad_input(self):
        """
        Malformed bodies, bad runtimes, names, env vars and oversized code get 4xx JSON
        errors that say what is wrong, and nothing is spawned.
        """
        self.assertError(self.call("POST", "/api/deploy/hello", raw=b"{nope"), 400, "invalid_request", "not valid JSON")
        self.assertError(self.deploy(runtime="go"), 400, "invalid_request", "runtime")
        self.assertError(self.call("POST", "/api/deploy/hello", {"runtime": "js"}), 400, "invalid_request", "'code' is required")
        self.assertError(self.deploy(name="a.b"), 400, "invalid_name", "not a DNS label")
        self.assertError(self.deploy(version="-v"), 400, "invalid_name")
        self.assertError(self.deploy(env_vars={"A-B": "x"}), 400, "invalid_name")
        self.assertError(self.deploy(env_vars={"A": "x" * 6000}), 400, "invalid_env")
        self.assertError(self.deploy(code="x" * 2001), 413, "code_too_large", "limit is 2000")
        self.assertEqual(self.launcher.launched, [])

    def test_oversized_body(self):
        """
        A body over the limits' C{max_body_bytes}, sent to the admin API through the Site
        that serves it, is refused with 413 and C{body_too_large} before it is read, and
        nothing is spawned.
        """
        limit = Limits(max_code_bytes=2000).max_body_bytes
        site = admin_site(self.routes, self.api.resource(), TokenChecker(token_hash(TOKEN)), Clock(), AdminLimits(body_bytes=limit))
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(
            b"POST /api/deploy/hello HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Length: %d\r\n\r\n" % (6_000_000,)
            + b" " * 1000
        )
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n"), head)
        self.assertEqual(
            json.loads(body),
            {"status": "error", "error": {"code": "body_too_large", "message": f"request body is over {limit} bytes"}},
        )
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.launcher.launched, [])

    def test_conflicts(self):
        """
        A taken version name, an alias named like a version, and a function differing only
        in case are 409s and spawn nothing.
        """
        self.deploy(name="envTest", version="v1")
        self.assertError(self.deploy(name="envTest", version="v1"), 409, "conflict", "already has a version v1")
        self.assertError(self.deploy(name="envTest", version="v2", alias="v1"), 409, "conflict")
        self.assertError(self.deploy(name="envtest", version="v2"), 409, "conflict", "deploy to envTest")
        self.assertEqual(len(self.launcher.launched), 1)

    def test_authentication(self):
        """
        Every route needs the token, as a bearer token or X-Deploy-Token; without it or with
        a wrong one the answer is 401 and nothing happens.
        """
        routes = [("POST", "/api/deploy/hello"), ("POST", "/api/rollback/hello"), ("GET", "/api/functions"),
                  ("GET", "/api/functions/hello"), ("DELETE", "/api/functions/hello"),
                  ("PUT", "/api/functions/hello/aliases/a"), ("DELETE", "/api/functions/hello/aliases/a"),
                  ("POST", "/api/functions/hello/versions/v1/stop"), ("DELETE", "/api/functions/hello/versions/v1")]
        for headers in [{}, {b"Authorization": [b"Bearer wrong"]}, {b"X-Deploy-Token": [b"wrong"]}, {b"Authorization": [TOKEN.encode()]}]:
            for method, path in routes:
                self.assertError(self.call(method, path, {"runtime": "js", "code": SW}, headers=headers), 401, "unauthorized")
        self.assertEqual(self.launcher.launched, [])
        code, _ = self.call("POST", "/api/deploy/hello", {"runtime": "js", "code": SW}, headers={b"X-Deploy-Token": [TOKEN.encode()]})
        self.assertEqual(code, 200)

    def test_slashed_names(self):
        """
        Names with a slash are bad names (400), not missing routes.
        """
        for name in ["../x", "a/b", "x/.."]:
            self.assertError(self.call("POST", f"/api/deploy/{name}", {"runtime": "js", "code": SW}), 400,
                             "invalid_name")
            self.assertError(self.call("POST", f"/api/rollback/{name}", {"version": "v1"}), 400, "invalid_name")
        self.assertError(self.call("POST", "/api/deploy/a/b", {}, headers={}), 401, "unauthorized")

    def test_show_and_list(self):
        """
        A function shows its versions with creation time, state and pid, its aliases and its
        latest; the list shows every function.
        """
        self.deploy(version="v1", alias="test")
        self.deploy(name="other", version="x")
        code, body = self.call("GET", "/api/functions/HELLO")
        pid = self.launcher.launched[0].pid
        self.assertEqual(body["function"], {
            "name": "hello", "createdAt": "2027-01-15T08:00:00.000Z", "latest": "v1",
            "url": "http://hello.func.local:8081",
            "versions": [{"name": "v1", "id": "id0", "createdAt": "2027-01-15T08:00:00.000Z", "state": "running",
                          "pid": pid, "lastRequestAt": None, "restarts": 0,
                          "compatibilityDate": None, "compatibilityFlags": [], "bindings": [],
                          "url": "http://v1.hello.func.local:8081"}],
            "aliases": [{"name": "test", "version": "v1", "url": "http://test.hello.func.local:8081"}],
        })
        self.assertEqual([f["name"] for f in self.call("GET", "/api/functions")[1]["functions"]], ["hello", "other"])
        self.assertError(self.call("GET", "/api/functions/nope"), 404, "function_not_found", "function nope not found")

    def test_aliases(self):
        """
        PUT points an alias at a version, DELETE removes it; both change routing.
        """
        self.deploy(version="v1")
        self.deploy(version="v2")
        self.assertEqual(self.call("PUT", "/api/functions/hello/aliases/beta", {"version": "v1"}),
                         (200, {"status": "success", "funcName": "hello", "alias": "beta", "version": "v1",
                                "accessUrl": "http://beta.hello.func.local:8081"}))
        self.assertEqual(self.routes.resolve(b"beta.hello.func.local"), "id0")
        self.assertError(self.call("PUT", "/api/functions/hello/aliases/beta", {"version": "v7"}), 404, "version_not_found")
        self.assertError(self.call("PUT", "/api/functions/hello/aliases/v2", {"version": "v1"}), 409, "conflict")
        self.assertEqual(self.call("DELETE", "/api/functions/hello/aliases/beta")[0], 200)
        self.assertRaises(NotRouted, self.routes.resolve, b"beta.hello.func.local")
        self.assertError(self.call("DELETE", "/api/functions/hello/aliases/beta"), 404, "alias_not_found")

    def test_stop_version(self):
        """
        Stopping a version ends its process; the version stays and reads as stopped.
        """
        self.deploy(version="v1")
        self.assertEqual(self.call("POST", "/api/functions/hello/versions/v1/stop")[1]["state"], "stopped")
        self.assertIsNone(self.launcher.launched[0].pid)
        self.assertEqual(self.call("GET", "/api/functions/hello")[1]["function"]["versions"][0]["state"], "stopped")

    def test_delete_version(self):
        """
        Deleting the latest version is a 409 unless forced; forced, it stops and its host
        stops answering.
        """
        self.deploy(version="v1")
        self.deploy(version="v2")
        self.assertError(self.call("DELETE", "/api/functions/hello/versions/v2"), 409, "conflict", "force=true")
        self.assertEqual(self.call("DELETE", "/api/functions/hello/versions/v1")[0], 200)
        self.assertIsNone(self.launcher.launched[0].pid)
        self.assertEqual(self.call("DELETE", "/api/functions/hello/versions/v2?force=true")[1]["deleted"], True)
        self.assertRaises(NotRouted, self.routes.resolve, b"v2.hello.func.local")
        self.assertRaises(NotRouted, self.routes.resolve, b"hello.func.local")

    def test_delete_function(self):
        """
        Deleting a function stops its processes and all its hosts answer 404.
        """
        self.deploy(version="v1", alias="a")
        self.deploy(version="v2")
        self.assertEqual(self.call("DELETE", "/api/functions/hello")[1], {"status": "success", "funcName": "hello", "deleted": True})
        self.assertEqual(self.launcher.running(), [])
        for host in [b"hello.func.local", b"v1.hello.func.local", b"a.hello.func.local"]:
            self.assertRaises(NotRouted, self.routes.resolve, host)
        self.assertError(self.call("DELETE", "/api/functions/hello"), 404, "function_not_found")

    def test_unknown_fields(self):
        """
        A deploy, rollback or alias body with a field those bodies do not have is a 400
        naming it and the fields there are, and nothing is spawned or changed.
        """
        self.assertError(self.deploy(envVars={"A": "1"}), 400, "invalid_request",
                         "unknown field 'envVars' in the deploy body (did you mean 'env_vars'?); the fields are"
                         " runtime, code, version, alias, format, env_vars")
        self.assertEqual(self.launcher.launched, [])
        self.deploy(version="v1")
        self.assertError(self.call("POST", "/api/rollback/hello", {"version": "v1", "force": True}), 400,
                         "invalid_request", "unknown field 'force' in the rollback body; the fields are version, alias")
        self.assertError(self.call("PUT", "/api/functions/hello/aliases/a", {"version": "v1", "alias": "a"}), 400,
                         "invalid_request", "unknown field 'alias' in the alias body")
        self.assertRaises(NotRouted, self.routes.resolve, b"a.hello.func.local")

    def test_deep_json(self):
        """
        A body nested deeper than the parser goes is a 400 in the API's JSON, not a
        RecursionError answered with an HTML 500.
        """
        deep = b'{"runtime": "js", "code": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        self.assertError(self.call("POST", "/api/deploy/hello", raw=deep), 400, "invalid_request",
                         "request body is JSON nested too deeply")
        self.assertEqual(self.launcher.launched, [])

    def test_format_hint(self):
        """
        When code whose format was detected does not start, the error says which format
        funcplane took it for and how to say the other; with the format given, the
        runtime's message stands alone.
        """
        launch = self.launcher.launch

        def failing(spec):
            child = launch(spec)
            child._ready = type(child._ready)()
            child.fail_start(StartFailed("Uncaught SyntaxError: Unexpected token 'export'", "ScriptError"))
            return child

        self.launcher.launch = failing
        code, body = self.deploy(version="v1")
        self.assertEqual(code, 422)
        self.assertEqual(
            body["error"]["message"],
            "Uncaught SyntaxError: Unexpected token 'export'\nfuncplane read this code as a service-worker"
            " script (it found no top-level import or export statement); if it is an ES module, send"
            ' "format":"module"',
        )
        self.assertIn('send "format":"service-worker"',
                      self.deploy(version="v2", code="export default {}")[1]["error"]["message"])
        code, body = self.deploy(version="v3", format="service-worker")
        self.assertEqual(body["error"]["message"], "Uncaught SyntaxError: Unexpected token 'export'")

    def test_format_detected_in_slices(self):
        """
        A long script's format is read a slice at a time on the API's clock: the deploy
        waits for it, and the script runs as what it is.
        """
        api = AdminAPI(self.platform, TokenChecker(token_hash(TOKEN)), Limits(), "func.local", clock=self.clock)
        client = StubTreq(api.resource())
        code = 'const s = `x`;\n' * 5000 + "export default { fetch() { return new Response('m') } }"
        d = client.request("POST", BASE + "/api/deploy/hello",
                           data=json.dumps({"runtime": "js", "code": code}).encode(), headers=AUTH)
        client.flush()
        self.assertNoResult(d)
        self.clock.advance(0)
        client.flush()
        self.assertEqual(self.successResultOf(d).code, 200)
        self.assertEqual(self.launcher.launched[0].spec.format, "module")

    def test_unknown_route(self):
        """
        Unknown paths and methods get JSON errors too.
        """
        self.assertError(self.call("GET", "/api/nothing"), 404, "not_found")
        self.assertError(self.call("GET", "/api/deploy/hello"), 405, "method_not_allowed")


class LogsTests(APICase):
    """
    Reading what functions print, and following it.
    """

    def setUp(self):
        super().setUp()
        self.deploy(version="v1")
        self.deploy(version="v2")
        v1, v2 = (c.spec for c in self.launcher.launched)
        self.logbook.add(v1, "log", "one")
        self.clock.advance(1)
        self.logbook.add(v2, "error", "Error: two", kind="exception")
        self.logbook.add(v1, "log", "three")

    def test_function_logs(self):
        """
        A function's logs are the lines of all its versions, in the order printed, each
        with its version, kind (console output or an uncaught exception), level and time.
        """
        code, body = self.call("GET", "/api/functions/hello/logs")
        self.assertEqual(code, 200)
        self.assertEqual(
            [(line["version"], line["kind"], line["level"], line["message"]) for line in body["lines"]],
            [
                ("v1", "console", "log", "one"),
                ("v2", "exception", "error", "Error: two"),
                ("v1", "console", "log", "three"),
            ],
        )
        self.assertEqual(body["lines"][0]["time"], "2027-01-15T08:00:00.000Z")
        self.assertEqual(body["lines"][1]["time"], "2027-01-15T08:00:01.000Z")

    def test_version_logs_and_limit(self):
        """
        A version's logs are its lines only, the last C{limit} of them; a bad limit, an
        unknown version or function, and a missing token are refused.
        """
        code, body = self.call("GET", "/api/functions/hello/versions/v1/logs?limit=1")
        self.assertEqual([line["message"] for line in body["lines"]], ["three"])
        self.assertError(self.call("GET", "/api/functions/hello/logs?limit=0"), 400, "invalid_request")
        self.assertError(self.call("GET", "/api/functions/hello/versions/v9/logs"), 404, "version_not_found")
        self.assertError(self.call("GET", "/api/functions/nope/logs"), 404, "function_not_found")
        self.assertError(self.call("GET", "/api/functions/hello/logs", headers={}), 401, "unauthorized")

    def test_deleted_version_forgotten(self):
        """
        The lines of a deleted version are no longer in its function's logs.
        """
        self.call("DELETE", "/api/functions/hello/versions/v1")
        code, body = self.call("GET", "/api/functions/hello/logs")
        self.assertEqual([line["message"] for line in body["lines"]], ["Error: two"])

    def test_follow(self):
        """
        ?follow=true streams server-sent events: the kept lines, then new ones as they are
        printed, with a keep-alive comment every 15 s, until the client goes away.
        """
        channel = Site(self.api.resource()).buildProtocol(None)
        channel.callLater = Clock().callLater
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(
            b"GET /api/functions/hello/versions/v2/logs?follow=true HTTP/1.1\r\nHost: admin\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"
        )
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertIn(b"Content-Type: text/event-stream; charset=utf-8", head)
        self.assertIn(b"id: 2\r\nevent: log\r\n".replace(b"\r", b""), body)
        transport.clear()
        v1, v2 = (c.spec for c in self.launcher.launched)
        self.logbook.add(v1, "log", "not followed")
        self.logbook.add(v2, "log", "four")
        self.assertIn(b'"message": "four"', transport.value())
        self.assertNotIn(b"not followed", transport.value())
        transport.clear()
        self.clock.advance(15)
        self.assertIn(b": keep-alive", transport.value())
        self.assertEqual(self.logbook.followers(), 1)
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.logbook.followers(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
