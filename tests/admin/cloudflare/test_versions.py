"""
Tests for L{funcplane.admin.cloudflare.versions}: a script's versions, newest first, and
one version by its id in either form.
"""

from tests.admin.cloudflare.harness import INDEX, SCRIPT, CloudflareCase, cf, vid
from tests.admin.cloudflare.test_upload import metadata


class VersionTests(CloudflareCase):
    """
    C{wrangler versions list} and C{view}.
    """

    def test_list(self):
        """
        The versions are listed newest first, numbered from the oldest, deployed or only
        uploaded.
        """
        self.deployed()
        self.upload(metadata(), INDEX, url=SCRIPT + "/versions", method="POST")
        items = self.ok("GET", SCRIPT + "/versions")["items"]
        self.assertEqual([(v["id"], v["number"], v["name"]) for v in items], [(cf(2), 2, "gen2"), (cf(1), 1, "gen1")])

    def test_one(self):
        """
        A version is found by its UUID or by funcplane's plain id, the same either way; an
        id the script has no version of is a 404 with code 10007 naming it.
        """
        self.deployed()
        by_uuid = self.ok("GET", SCRIPT + f"/versions/{cf(1)}")
        self.assertEqual((by_uuid["id"], by_uuid["number"]), (cf(1), 1))
        self.assertEqual(self.ok("GET", SCRIPT + f"/versions/{vid(1)}"), by_uuid)
        self.assertCfError(self.call("GET", SCRIPT + f"/versions/{cf(7)}"), 404, 10007, f"hello has no version {cf(7)}")
