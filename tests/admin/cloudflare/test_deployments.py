"""
Tests for L{funcplane.admin.cloudflare.deployments}: splitting traffic between versions,
rolling back, and the history.
"""

from tests.admin.cloudflare.harness import INDEX, SCRIPT, CloudflareCase, cf, vid
from tests.admin.cloudflare.test_upload import metadata


class DeploymentTests(CloudflareCase):
    """
    A deployment says which versions serve the script's own host, in which shares.
    """

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
