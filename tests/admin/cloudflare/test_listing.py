"""
Tests for List Workers (C{GET .../workers/scripts}, in
L{funcplane.admin.cloudflare.scripts}): every function as the script Cloudflare would
list, with its real settings.
"""

from funcplane.model import MODULE, Assets, Deployment, script_modules
from funcplane.timestamps import timestamp
from tests.admin.cloudflare.harness import BASE, INDEX, CloudflareCase, vid
from tests.admin.cloudflare.test_upload import metadata, module

SERVICE_WORKER = 'addEventListener("fetch", e => e.respondWith(new Response("sw")))'


class ListTests(CloudflareCase):
    """
    The list, as wrangler reads it before a Durable Object migration (C{id},
    C{migration_tag}) and as the API documents it.
    """

    def test_list(self):
        """
        Each function is listed by name, sorted, with its current version's id as tag and
        etag, its format, compatibility date and flags, and no Durable Object migration;
        a function with only an uploaded version is listed with that version.
        """
        created = timestamp(self.clock.seconds())
        self.upload(metadata(compatibility_date="2024-09-23", compatibility_flags=["nodejs_compat"]), INDEX)
        self.upload(
            metadata(main_module=None, body_part="worker.js"),
            module("worker.js", SERVICE_WORKER, "application/javascript"),
            url=BASE + "/workers/scripts/legacy",
        )
        self.upload(metadata(), INDEX, url=BASE + "/workers/scripts/draft/versions", method="POST")
        common = {
            "handlers": ["fetch"],
            "created_on": created,
            "modified_on": created,
            "last_deployed_from": "wrangler",
            "usage_model": "standard",
            "has_assets": False,
            "logpush": False,
            "tags": [],
            "tail_consumers": [],
            "named_handlers": [],
            "observability": {"enabled": False},
        }
        listed = self.ok("GET", BASE + "/workers/scripts")
        self.assertEqual(
            listed,
            [
                dict(common, id="draft", tag="", etag=vid(3), has_modules=True,
                     compatibility_date="", compatibility_flags=[]),
                dict(common, id="hello", tag=vid(1), etag=vid(1), has_modules=True,
                     compatibility_date="2024-09-23", compatibility_flags=["nodejs_compat"]),
                dict(common, id="legacy", tag=vid(2), etag=vid(2), has_modules=False,
                     compatibility_date="", compatibility_flags=[]),
            ],
        )
        self.assertNotIn("migration_tag", listed[0])

    def test_assets(self):
        """
        A function whose current version has static assets is listed with has_assets.
        """
        code = "export default { fetch() { return new Response('x') } }"
        assets = Assets(manifest=(("/index.html", "0" * 32),))
        self.successResultOf(
            self.platform.deploy(Deployment("site", MODULE, script_modules(code, MODULE), assets=assets))
        )
        [site] = self.ok("GET", BASE + "/workers/scripts")
        self.assertEqual((site["id"], site["has_assets"]), ("site", True))

    def test_empty(self):
        """
        With no function, the list is empty.
        """
        self.assertEqual(self.ok("GET", BASE + "/workers/scripts"), [])
