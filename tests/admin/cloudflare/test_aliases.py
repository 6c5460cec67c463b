"""
Tests for L{funcplane.admin.cloudflare.aliases}: aliases pointed at versions by id, and
listed.
"""

from tests.admin.cloudflare.harness import SCRIPT, CloudflareCase, cf, vid


class AliasTests(CloudflareCase):
    """
    C{.../aliases}, which route C{alias.function.domain}.
    """

    def test_aliases(self):
        """
        PUT aliases/NAME points an alias at a version id; GET lists them.
        """
        self.deployed()
        self.assertEqual(self.ok("PUT", SCRIPT + "/aliases/staging", {"version_id": cf(1)}), {"name": "staging", "version_id": cf(1)})
        self.assertEqual(self.ok("GET", SCRIPT + "/aliases"), [{"name": "staging", "version_id": cf(1)}])
        self.assertEqual(self.routes.resolve(b"staging.hello.func.local"), vid(1))
