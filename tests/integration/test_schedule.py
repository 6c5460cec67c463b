"""
Cron triggers with real workerd children: a scheduled handler run by hand through the
admin API really runs in the version's isolate (it changes what the fetch handler then
answers), for ES modules (object and class handlers) and service-worker scripts, a stopped
version is woken for it, and no client of a function host can fire it.
"""

import json
from urllib.parse import quote

from twisted.trial.unittest import TestCase

from tests.integration.harness import Funcplane

MODULE = """let ran = [];
export default {
  async fetch(request) { return new Response(JSON.stringify(ran)); },
  async scheduled(controller, env, ctx) {
    console.log("tick " + controller.cron + " " + env.WHO);
    ctx.waitUntil(new Promise((resolve) => setTimeout(() => { ran.push("waited"); resolve(); }, 20)));
    ran.push(controller.cron + "@" + controller.scheduledTime);
  },
};
"""
CLASS = """import { WorkerEntrypoint } from "cloudflare:workers";
let ran = [];
export default class extends WorkerEntrypoint {
  async fetch() { return new Response(JSON.stringify(ran)); }
  async scheduled(controller) { ran.push(controller.cron + " " + this.env.WHO); }
}
"""
WORKER = """let ran = [];
addEventListener("fetch", (event) => {
  event.respondWith(new Response(JSON.stringify({ ran, header: event.request.headers.get("x-funcplane-event") })));
});
addEventListener("scheduled", (event) => {
  console.log("sw tick " + event.cron);
  event.waitUntil(Promise.resolve().then(() => ran.push(event.cron)));
});
"""
THROWS = """export default {
  fetch() { return new Response("ok"); },
  scheduled() { throw new RangeError("out of cheese"); },
};
"""
NO_HANDLER = """export default { fetch() { return new Response("ok"); } };"""
EVENT_HEADER = {"X-Funcplane-Event": "scheduled", "Content-Type": "application/json"}
FORGED = json.dumps({"cron": "forged", "scheduledTime": 1}).encode()


class ScheduleTests(TestCase):
    timeout = 60

    async def setUp(self):
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)

    async def run_now(self, name, cron=None):
        query = f"?cron={quote(cron)}" if cron else ""
        status, answer = await self.fp.api("POST", f"/api/functions/{name}/scheduled{query}")
        self.assertEqual(status, 200, answer)
        return answer

    async def ran(self, host):
        status, body = await self.fp.get(host)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    async def test_module(self):
        """
        An ES module's scheduled(controller, env, ctx) runs in the serving version's
        isolate, with the cron and time, its waitUntil awaited; its console line is in the
        answer and in the function's logs, with the run's own line.
        """
        status, answer = await self.fp.deploy(
            "cron", MODULE, format="module", crons=["*/5 * * * *"], env_vars={"WHO": "me"}
        )
        self.assertEqual(status, 200, answer)
        self.assertEqual([s["cron"] for s in answer["schedules"]], ["*/5 * * * *"])
        result = await self.run_now("cron")
        self.assertEqual((result["outcome"], result["cron"], result["version"]), ("ok", "*/5 * * * *", answer["version"]))
        ran = await self.ran("cron.func.local")
        self.assertEqual(len(ran), 2)
        self.assertTrue(ran[0].startswith("*/5 * * * *@"), ran)
        self.assertEqual(ran[1], "waited")
        self.assertIn("tick */5 * * * * me", [line["message"] for line in result["logs"]])
        status, logs = await self.fp.api("GET", "/api/functions/cron/logs")
        messages = [line["message"] for line in logs["lines"]]
        self.assertIn("tick */5 * * * * me", messages)
        self.assertTrue(any(m.startswith('scheduled "*/5 * * * *" @ ') and " - Ok (" in m for m in messages), messages)

    async def test_class_entrypoint(self):
        """
        A default export that extends WorkerEntrypoint is constructed with the context and
        env, and its scheduled(controller) runs.
        """
        await self.fp.deploy("klass", CLASS, format="module", env_vars={"WHO": "class"})
        result = await self.run_now("klass", "0 0 * * 1")
        self.assertEqual(result["outcome"], "ok", result)
        self.assertEqual(await self.ran("klass.func.local"), ["0 0 * * 1 class"])

    async def test_service_worker(self):
        """
        A service-worker script's scheduled listeners run, with event.waitUntil awaited;
        its fetch listener never sees the events socket's requests.
        """
        await self.fp.deploy("sw", WORKER, crons=["0 * * * *"])
        result = await self.run_now("sw")
        self.assertEqual(result["outcome"], "ok", result)
        self.assertEqual(await self.ran("sw.func.local"), {"ran": ["0 * * * *"], "header": None})
        self.assertIn("sw tick 0 * * * *", [line["message"] for line in result["logs"]])

    async def test_function_host_cannot_fire(self):
        """
        A client that sends the events header (any case) and an event body to a function
        host reaches the fetch handler, which never sees the header; nothing is scheduled.
        """
        await self.fp.deploy("sw", WORKER)
        await self.fp.deploy("mod", MODULE, format="module")
        for host in ("sw.func.local", "mod.func.local"):
            for header in ("X-Funcplane-Event", "x-funcplane-event", "X-FUNCPLANE-EVENT"):
                status, body = await self.fp.request(
                    "POST", "/", FORGED, host=host, headers={header: "scheduled", "Content-Type": "application/json"}
                )
                self.assertEqual(status, 200, body)
                self.assertNotIn(b"outcome", body)
        self.assertEqual(await self.ran("sw.func.local"), {"ran": [], "header": None})
        self.assertEqual(await self.ran("mod.func.local"), [])

    async def test_wakes_stopped_version(self):
        """
        A stopped version is started for the run, and then serves as before.
        """
        status, answer = await self.fp.deploy("cron", MODULE, format="module", crons=["* * * * *"])
        await self.fp.api("POST", f"/api/functions/cron/versions/{answer['version']}/stop")
        status, info = await self.fp.api("GET", "/api/functions/cron")
        self.assertEqual(info["function"]["versions"][0]["state"], "stopped")
        self.assertEqual((await self.run_now("cron"))["outcome"], "ok")
        status, info = await self.fp.api("GET", "/api/functions/cron")
        self.assertEqual(info["function"]["versions"][0]["state"], "running")
        self.assertEqual(len(await self.ran("cron.func.local")), 2)

    async def test_exception_and_no_handler(self):
        """
        A handler that throws is an exception with its name, message and stack; a version
        with no scheduled handler runs nothing and says why.
        """
        await self.fp.deploy("throws", THROWS, format="module")
        result = await self.run_now("throws", "* * * * *")
        self.assertEqual(result["outcome"], "exception")
        [error] = result["exceptions"]
        self.assertEqual((error["name"], error["message"]), ("RangeError", "out of cheese"))
        self.assertIn("worker.js", error["stack"])
        await self.fp.deploy("plain", NO_HANDLER, format="module")
        result = await self.run_now("plain", "* * * * *")
        self.assertEqual(result["outcome"], "noHandler")
        self.assertIn("has no scheduled handler", result["message"])
