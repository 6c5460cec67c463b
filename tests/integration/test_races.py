"""
Changes to one function sent at the same time, at a real funcplane: every change that was
answered with success is in what the function serves at the end (a change may instead be
answered 409, and then it is not), never silently lost.
"""

import json

from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.trial.unittest import TestCase

from tests.integration.harness import AUTH, Funcplane

SCRIPT = "/client/v4/accounts/0123456789abcdef0123456789abcdef/workers/scripts/{name}/secrets"


def code(marker):
    """
    A module that answers with C{marker} and its env, so a response tells which code and
    which secrets serve.
    """
    return (
        "export default { fetch(request, env) {"
        f' return Response.json({{code: "{marker}", env}}) }} }}'
    )


class RaceTests(TestCase):
    """
    Concurrent secret changes and deploys of one function.
    """

    timeout = 60

    async def put_secret(self, fp, function, name, value):
        """
        C{PUT .../secrets} as wrangler sends it; return the status.
        """
        status, body = await fp.request(
            "PUT",
            SCRIPT.format(name=function),
            json.dumps({"name": name, "text": value, "type": "secret_text"}).encode(),
            headers=dict(AUTH, **{"Content-Type": "application/json"}),
        )
        if status == 200:
            self.assertEqual(json.loads(body)["result"], {"name": name, "type": "secret_text"})
        return status

    async def serving(self, fp, function):
        """
        The code marker and env the function's own host answers with.
        """
        status, text = await fp.get(f"{function}.func.local")
        self.assertEqual(status, 200, text)
        answer = json.loads(text)
        return answer["code"], answer["env"]

    async def together(self, *coroutines):
        """
        Run C{coroutines} at once; their results, in order (a failure fails the test).
        """
        results = await DeferredList([ensureDeferred(c) for c in coroutines], consumeErrors=True)
        for succeeded, result in results:
            if not succeeded:
                result.raiseException()
        return [result for _, result in results]

    async def test_concurrent_secret_puts(self):
        """
        Eight secrets put at once are each answered 200 or 409, and every one answered 200
        is served at the end with its value and listed by name; on one node, every one is
        answered 200.
        """
        fp = await Funcplane(self).start()
        status, body = await fp.deploy("secrets", code("seed"))
        self.assertEqual(status, 200, body)
        names = [f"S{i}" for i in range(8)]
        statuses = await self.together(
            *(self.put_secret(fp, "secrets", name, f"value-{name}") for name in names)
        )
        self.assertEqual(set(statuses) - {200, 409}, set(), statuses)
        kept = {name for name, status in zip(names, statuses) if status == 200}
        self.assertTrue(kept)
        marker, env = await self.serving(fp, "secrets")
        self.assertEqual(marker, "seed")
        self.assertEqual({name: env.get(name) for name in kept}, {n: f"value-{n}" for n in kept})
        status, listed = await fp.api("GET", SCRIPT.format(name="secrets"))
        self.assertEqual(
            kept - {entry["name"] for entry in listed["result"]}, set(), (statuses, listed)
        )
        # On one node the changes wait for each other, so none even had to be refused.
        self.assertEqual(statuses, [200] * len(names))

    async def test_seed_deploy_racing_secret_change(self):
        """
        A seed deploy of new code and a secret change sent at the same time, eight times
        over: the function serves the new code if the deploy answered success, and the
        secret if its change did (one answered 409 is simply absent); on one node, both
        are answered success.
        """
        fp = await Funcplane(self).start()
        for trial in range(8):
            function = f"race{trial}"
            status, body = await fp.deploy(function, code("old"))
            self.assertEqual(status, 200, body)
            (deployed, deploy_body), secret = await self.together(
                fp.deploy(function, code("new")),
                self.put_secret(fp, function, "KEY", f"secret-{trial}"),
            )
            self.assertIn(deployed, (200, 409), deploy_body)
            self.assertIn(secret, (200, 409))
            marker, env = await self.serving(fp, function)
            if deployed == 200:
                self.assertEqual(marker, "new", f"trial {trial}: the deploy was undone")
            if secret == 200:
                self.assertEqual(env.get("KEY"), f"secret-{trial}", f"trial {trial}")
            # On one node they wait for each other, so neither had to be refused.
            self.assertEqual((deployed, secret), (200, 200), f"trial {trial}")
