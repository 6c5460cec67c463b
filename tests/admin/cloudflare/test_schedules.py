"""
Tests for L{funcplane.admin.cloudflare.schedules} and the cron triggers of C{/api}: the
schedules wrangler puts and reads, in Cloudflare's shapes; the seed API's C{crons} field
and the schedules it shows; a run by hand.
"""

from treq.testing import StubTreq
from twisted.internet.defer import succeed

from funcplane.admin.api import AdminAPI
from funcplane.admin.cloudflare.api import CloudflareAPI
from funcplane.admin.parse import Limits
from funcplane.observe.logbook import CONSOLE
from funcplane.schedule.runs import ScheduledRunner
from funcplane.schedule.scheduler import SETTLE_SECONDS, Scheduler
from funcplane.store.schedules import SQLiteSchedules
from funcplane.timestamps import timestamp
from tests.admin.cloudflare.harness import SCRIPT, CloudflareCase, vid
from tests.fakes import AUTH

API = "http://127.0.0.1:8081/api"
NOW = timestamp(1_800_000_000)


class ScheduleCase(CloudflareCase):
    """
    The Cloudflare harness with a started scheduler, whose runs are delivered to
    C{self.deliver}.
    """

    def setUp(self):
        super().setUp()
        self.delivered = []
        self.answer = {"outcome": "ok"}
        runner = ScheduledRunner(self.clock, self.supervisor, self.deliver, self.logbook, self.tails)
        self.scheduler = Scheduler(self.clock, SQLiteSchedules(self.store), runner, self.logbook)
        self.successResultOf(self.scheduler.startService())
        self.addCleanup(self.scheduler.stopService)
        limits = Limits(max_code_bytes=10_000)
        cloudflare = CloudflareAPI(
            self.platform, self.checker, limits, self.clock, self.tails, schedules=self.scheduler
        )
        self.api = AdminAPI(
            self.platform, self.checker, limits, "func.local", 8081, clock=self.clock,
            logbook=self.logbook, cloudflare=cloudflare, schedules=self.scheduler,
        )
        self.client = StubTreq(self.api.resource())

    def deliver(self, socket_path, cron, scheduled_time):
        self.delivered.append((socket_path, cron, scheduled_time))
        return succeed(self.answer)


class CloudflareScheduleTests(ScheduleCase):
    def test_put_and_get(self):
        """
        C{PUT} with wrangler's body (a list of C{{"cron"}}) replaces the script's schedules
        and answers them as Cloudflare does; C{GET} lists the same; the timers are set.
        """
        self.deployed()
        result = self.ok("PUT", SCRIPT + "/schedules", [{"cron": "*/5 * * * *"}, {"cron": "0 18 * * friL"}])
        expected = {
            "schedules": [
                {"cron": "*/5 * * * *", "created_on": NOW, "modified_on": NOW},
                {"cron": "0 18 * * friL", "created_on": NOW, "modified_on": NOW},
            ]
        }
        self.assertEqual(result, expected)
        self.assertEqual(self.ok("GET", SCRIPT + "/schedules"), expected)
        self.assertEqual(sorted(c for _, c in self.scheduler.scheduled()), ["*/5 * * * *", "0 18 * * friL"])
        self.assertEqual(self.ok("PUT", SCRIPT + "/schedules", []), {"schedules": []})
        self.assertEqual(self.scheduler.scheduled(), {})

    def test_invalid_cron(self):
        """
        An invalid expression is Cloudflare's 10100 with the reason, and changes nothing.
        """
        self.deployed()
        self.ok("PUT", SCRIPT + "/schedules", [{"cron": "*/5 * * * *"}])
        result = self.call("PUT", SCRIPT + "/schedules", [{"cron": "0 22 * * 0"}])
        self.assertCfError(result, 400, 10100, "invalid cron string '0 22 * * 0': weekday 0 is out of range")
        self.assertCfError(self.call("PUT", SCRIPT + "/schedules", {"cron": "x"}), 400, 10100, "must be a list")
        self.assertCfError(self.call("PUT", SCRIPT + "/schedules", b"not json"), 400, 10021, "not valid JSON")
        self.assertEqual([s["cron"] for s in self.ok("GET", SCRIPT + "/schedules")["schedules"]], ["*/5 * * * *"])

    def test_no_such_script(self):
        """
        The schedules of a script that does not exist are 10007, put or read.
        """
        self.assertCfError(self.call("GET", SCRIPT + "/schedules"), 404, 10007)
        self.assertCfError(self.call("PUT", SCRIPT + "/schedules", [{"cron": "* * * * *"}]), 404, 10007)

    def test_deleting_deletes_schedules(self):
        """
        Deleting the script deletes its schedules: a new script of that name has none.
        """
        self.deployed()
        self.ok("PUT", SCRIPT + "/schedules", [{"cron": "* * * * *"}])
        self.ok("DELETE", SCRIPT)
        self.deployed()
        self.assertEqual(self.ok("GET", SCRIPT + "/schedules"), {"schedules": []})

    def test_token_required(self):
        """
        Without the token, neither route answers.
        """
        self.deployed()
        self.assertCfError(self.call("GET", SCRIPT + "/schedules", headers={}), 401, 10000)
        self.assertCfError(self.call("PUT", SCRIPT + "/schedules", [], headers={}), 401, 10000)


class SeedScheduleTests(ScheduleCase):
    def deploy(self, **fields):
        body = {"runtime": "js", "code": "export default { fetch() { return new Response('hi') } }", **fields}
        return self.call("POST", API + "/deploy/hello", body)

    def test_deploy_with_crons(self):
        """
        The seed deploy takes C{crons}: they become the function's schedules, shown in the
        answer and in C{GET /api/functions/NAME} and the list; a deploy without the field
        keeps them, one with an empty list clears them.
        """
        status, answer = self.deploy(crons=["*/5 * * * *", "*/5 * * * *", "0 0 L * *"])
        self.assertEqual(status, 200, answer)
        shown = [{"cron": "*/5 * * * *", "createdAt": NOW, "modifiedAt": NOW, "lastFiredFor": None},
                 {"cron": "0 0 L * *", "createdAt": NOW, "modifiedAt": NOW, "lastFiredFor": None}]
        self.assertEqual(answer["schedules"], shown)
        self.deploy()
        self.assertEqual(self.call("GET", API + "/functions/hello")[1]["function"]["schedules"], shown)
        self.assertEqual(self.call("GET", API + "/functions")[1]["functions"][0]["schedules"], shown)
        self.deploy(crons=[])
        self.assertEqual(self.call("GET", API + "/functions/hello")[1]["function"]["schedules"], [])

    def test_invalid_crons_deploy_nothing(self):
        """
        An invalid cron refuses the deploy before anything starts, with the reason.
        """
        status, answer = self.deploy(crons=["61 * * * *"])
        self.assertEqual((status, answer["error"]["code"]), (400, "invalid_cron"))
        self.assertIn("invalid cron string '61 * * * *'", answer["error"]["message"])
        status, answer = self.deploy(crons="* * * * *")
        self.assertEqual((status, answer["error"]["code"]), (400, "invalid_cron"))
        self.assertEqual(self.launcher.launched, [])

    def test_run_by_hand(self):
        """
        C{POST /api/functions/NAME/scheduled} runs the first schedule now on the serving
        version and answers with the outcome and the lines printed meanwhile; C{?cron=}
        runs any valid expression.
        """
        self.deploy(crons=["0 * * * *"])
        d = self.client.request("POST", API + "/functions/hello/scheduled", headers=AUTH)
        self.logbook.add(self.launcher.launched[-1].spec, "log", "tick", kind=CONSOLE)
        self.clock.advance(SETTLE_SECONDS)
        self.client.flush()
        answer = self.successResultOf(self.client.json_content(self.successResultOf(d)))
        self.assertEqual(self.delivered, [(f"/run/{vid(1)}.sock", "0 * * * *", 1_800_000_000.0)])
        self.assertEqual(
            {k: answer[k] for k in ("status", "funcName", "version", "cron", "outcome", "exceptions", "message")},
            {"status": "success", "funcName": "hello", "version": "gen1", "cron": "0 * * * *",
             "outcome": "ok", "exceptions": [], "message": None},
        )
        self.assertEqual(
            sorted((line["kind"], line["message"]) for line in answer["logs"]),
            [("console", "tick"), ("runtime", 'scheduled "0 * * * *" @ 2027-01-15T08:00:00.000Z - Ok (0 ms)')],
        )
        self.answer = {"outcome": "exception", "error": {"name": "Error", "message": "boom", "stack": "Error: boom"}}
        d = self.client.request("POST", API + "/functions/hello/scheduled?cron=*/7+*+*+*+*", headers=AUTH)
        self.clock.advance(SETTLE_SECONDS)
        self.client.flush()
        answer = self.successResultOf(self.client.json_content(self.successResultOf(d)))
        self.assertEqual((answer["cron"], answer["outcome"]), ("*/7 * * * *", "exception"))
        self.assertEqual(answer["exceptions"], [{"name": "Error", "message": "boom", "stack": "Error: boom"}])

    def test_run_by_hand_refusals(self):
        """
        A run by hand needs the token, a valid cron, and a function that exists.
        """
        self.deploy()
        status, answer = self.call("POST", API + "/functions/hello/scheduled", headers={})
        self.assertEqual(status, 401)
        status, answer = self.call("POST", API + "/functions/hello/scheduled")
        self.assertEqual((status, answer["error"]["code"]), (400, "invalid_request"))
        self.assertIn("has no cron triggers", answer["error"]["message"])
        status, answer = self.call("POST", API + "/functions/hello/scheduled?cron=0+0+*+*+0")
        self.assertEqual((status, answer["error"]["code"]), (400, "invalid_cron"))
        status, answer = self.call("POST", API + "/functions/nope/scheduled?cron=*+*+*+*+*")
        self.assertEqual((status, answer["error"]["code"]), (404, "function_not_found"))
        self.assertEqual(self.delivered, [])
