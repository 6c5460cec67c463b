"""
Cron triggers with the unmodified wrangler CLI: C{wrangler deploy} with C{[triggers] crons}
and C{wrangler triggers deploy} succeed and the schedules are funcplane's; a run by hand is
a scheduled event in C{wrangler tail}, as Cloudflare's are.
"""

import json

from twisted.internet import reactor
from twisted.internet.task import deferLater

from tests.integration.harness import Funcplane
from tests.integration.test_wrangler import WRANGLER, Tail, WranglerCase

NAME = "cron-fp"
HOST = f"{NAME}.func.local"
INDEX = """let ran = [];
export default {
  async fetch() { return new Response(JSON.stringify(ran)); },
  async scheduled(controller, env, ctx) {
    console.log("cleaning up for " + controller.cron);
    ran.push(controller.cron);
  },
};
"""


def config(*crons):
    listed = ", ".join(json.dumps(c) for c in crons)
    return (
        f'name = "{NAME}"\nmain = "src/index.js"\ncompatibility_date = "2024-09-23"\n'
        f"[triggers]\ncrons = [{listed}]\n"
    )


class WranglerCronTests(WranglerCase):
    timeout = 120

    async def schedules(self):
        status, info = await self.fp.api("GET", f"/api/functions/{NAME}")
        self.assertEqual(status, 200, info)
        return [s["cron"] for s in info["function"]["schedules"]]

    async def test_triggers(self):
        """
        wrangler deploy with crons exits 0 and lists them; funcplane has them; wrangler
        triggers deploy replaces them; a run by hand reaches wrangler tail as a scheduled
        event with the line the handler printed, in JSON and pretty-printed.
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        self.write_project({"wrangler.toml": config("*/5 * * * *", "0 18 * * friL"), "src/index.js": INDEX})
        output = await self.wrangler("deploy")
        self.assertIn("schedule: */5 * * * *", output)
        self.assertIn("schedule: 0 18 * * friL", output)
        self.assertEqual(await self.schedules(), ["*/5 * * * *", "0 18 * * friL"])

        self.write_project({"wrangler.toml": config("0 * * * *")})
        output = await self.wrangler("triggers", "deploy")
        self.assertIn("schedule: 0 * * * *", output)
        self.assertEqual(await self.schedules(), ["0 * * * *"])

        self.write_project({"wrangler.toml": config("0 22 * * 0")})
        output = await self.wrangler("triggers", "deploy", ok=False)
        self.assertIn("weekday 0 is out of range", output)
        self.assertIn("10100", output)
        self.assertEqual(await self.schedules(), ["0 * * * *"])

        tails = {}
        for style in ("json", "pretty"):
            tail = tails[style] = Tail()
            reactor.spawnProcess(
                tail, WRANGLER, [WRANGLER, "tail", NAME, "--format", style], env=self.environment(), path=self.project
            )
            self.addCleanup(tail.kill)
        await self.until(lambda: self.fp.service.tails.count() == 2 and self.fp.service.tails.active, tails, "the tails")
        await deferLater(reactor, 0.5, lambda: None)
        status, result = await self.fp.api("POST", f"/api/functions/{NAME}/scheduled")
        self.assertEqual((status, result["outcome"]), (200, "ok"), result)
        await self.until(lambda: tails["json"].events() and '" @ ' in tails["pretty"].output, tails, "the event")
        [event] = tails["json"].events()
        self.assertEqual((event["outcome"], event["scriptName"], event["event"]["cron"]), ("ok", NAME, "0 * * * *"))
        self.assertIsInstance(event["event"]["scheduledTime"], int)
        self.assertIn(["cleaning up for 0 * * * *"], [log["message"] for log in event["logs"]])
        self.assertIn('"0 * * * *" @ ', tails["pretty"].output)
        self.assertIn(" - Ok", tails["pretty"].output)
        status, body = await self.fp.get(HOST)
        self.assertEqual(json.loads(body), ["0 * * * *"])

        # Deleting the function ends its tails (and deletes its schedules).
        await self.wrangler("delete", "--force")
        for tail in tails.values():
            self.assertEqual(await tail.ended, 0, tail.output)
        status, _ = await self.fp.api("GET", f"/api/functions/{NAME}")
        self.assertEqual(status, 404)

    async def until(self, condition, tails, what, seconds=30):
        for _ in range(int(seconds / 0.05)):
            if condition():
                return
            await deferLater(reactor, 0.05, lambda: None)
        printed = "\n".join(f"{name}:\n{tail.output}" for name, tail in tails.items())
        self.fail(f"waited {seconds} s for {what}; wrangler tail printed:\n{printed}")
