"""
Tests for C{POST .../versions} on a worker that does not exist yet
(L{funcplane.admin.cloudflare.scripts}): unlike Cloudflare, funcplane creates it with that
version and no deployment.
"""

from funcplane.routing import NotRouted
from tests.admin.cloudflare.harness import BASE, INDEX, SCRIPT, CloudflareCase, cf, vid
from tests.admin.cloudflare.test_upload import metadata

API = "http://127.0.0.1:8081/api/functions/hello"


class FirstUploadTests(CloudflareCase):
    """
    wrangler versions upload on a new worker, then what every other command sees of it.
    """

    def setUp(self):
        super().setUp()
        self.version = self.upload(
            metadata(annotations={"workers/message": "first"}), INDEX,
            url=SCRIPT + "/versions?bindings_inherit=strict", method="POST",
        )

    def test_created_without_deployment(self):
        """
        The function is created with the version, which is started and answers at its own
        hosts at once; the function's own host says it is not deployed.
        """
        self.assertEqual(
            (self.version["id"], self.version["number"], self.version["annotations"]),
            (cf(1), 1, {"workers/triggered_by": "upload", "workers/message": "first"}),
        )
        self.assertEqual(self.launcher.launched[0].spec.id, vid(1))
        self.assertEqual(self.routes.resolve(b"gen1.hello.func.local"), vid(1))
        self.assertEqual(self.routes.resolve(vid(1)[:8].encode() + b".hello.func.local"), vid(1))
        error = self.assertRaises(NotRouted, self.routes.resolve, b"hello.func.local")
        self.assertIn("function hello is not deployed", str(error))

    def test_seen_by_both_apis(self):
        """
        It has no deployment (wrangler deployments list prints none), its service exists
        (so a later wrangler deploy takes the path of an existing worker), and the admin
        API lists the version with no latest.
        """
        self.assertEqual(self.ok("GET", SCRIPT + "/deployments"), {"deployments": []})
        self.assertEqual([v["id"] for v in self.ok("GET", SCRIPT + "/versions")["items"]], [cf(1)])
        self.assertEqual(self.ok("GET", BASE + "/workers/services/hello")["id"], "hello")
        status, shown = self.call("GET", API)
        self.assertEqual(
            (status, shown["function"]["latest"], [v["name"] for v in shown["function"]["versions"]]),
            (200, None, ["gen1"]),
        )

    def test_then_deployed(self):
        """
        wrangler versions deploy gives it its first deployment: its own host serves the
        version.
        """
        self.ok("POST", SCRIPT + "/deployments", {"strategy": "percentage", "versions": [{"version_id": cf(1), "percentage": 100}]})
        self.assertEqual(self.routes.resolve(b"hello.func.local"), vid(1))
        [deployment] = self.ok("GET", SCRIPT + "/deployments")["deployments"]
        self.assertEqual(deployment["versions"], [{"version_id": cf(1), "percentage": 100}])

    def test_then_rolled_back_to(self):
        """
        The admin API's rollback to one of its versions gives it its first deployment too.
        """
        status, answer = self.call("POST", "http://127.0.0.1:8081/api/rollback/hello", {"version": "gen1"})
        self.assertEqual((status, answer["targetVersion"]), (200, "gen1"))
        self.assertEqual(self.routes.resolve(b"hello.func.local"), vid(1))
        self.assertEqual(len(self.ok("GET", SCRIPT + "/deployments")["deployments"]), 1)

    def test_secrets_need_a_deployment(self):
        """
        A secret change, which Cloudflare makes on the deployed version, is refused with
        10215 until there is one.
        """
        result = self.call("PUT", SCRIPT + "/secrets", {"name": "K", "text": "v", "type": "secret_text"})
        self.assertCfError(result, 409, 10215, "not deployed")
