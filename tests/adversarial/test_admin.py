"""
Attacks on the admin API: no token, bad names, oversized bodies, racing deploys.
"""

import json

from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.integration.harness import TOKEN, Funcplane, processes_in, raw_connection

CODE = 'export default { fetch() { return new Response("ok") } }'


class AdminAttackTests(TestCase):
    timeout = 60

    async def setUp(self):
        self.fp = await Funcplane(self).start()

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
