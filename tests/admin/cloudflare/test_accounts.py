"""
Tests for L{funcplane.admin.cloudflare.accounts}: the one account and user that
C{wrangler whoami} sees, and the account-wide lists wrangler reads.
"""

from tests.admin.cloudflare.harness import BASE, CloudflareCase

V4 = "http://127.0.0.1:8081/client/v4"
ACCOUNT = {"id": "funcplane", "name": "funcplane"}


class AccountTests(CloudflareCase):
    """
    funcplane has one account and one user, both called C{funcplane}.
    """

    def test_whoami(self):
        """
        The user, its token check, its accounts and memberships all name funcplane's one
        account.
        """
        user = {"id": "funcplane", "status": "active", "email": "funcplane"}
        self.assertEqual(self.ok("GET", V4 + "/user"), user)
        self.assertEqual(self.ok("GET", V4 + "/user/tokens/verify"), user)
        self.assertEqual(self.ok("GET", V4 + "/accounts"), [ACCOUNT])
        self.assertEqual(
            self.ok("GET", V4 + "/memberships"),
            [{"id": "funcplane", "account": ACCOUNT, "status": "accepted", "roles": []}],
        )

    def test_token_required(self):
        """
        Without the admin token, none of them answers but 401 with code 10000.
        """
        for path in ["/user", "/user/tokens/verify", "/accounts", "/memberships"]:
            self.assertCfError(self.call("GET", V4 + path, headers={}), 401, 10000)

    def test_account_lists(self):
        """
        The workers subdomain is C{funcplane}, and there are no KV namespaces.
        """
        self.assertEqual(self.ok("GET", BASE + "/workers/subdomain"), {"subdomain": "funcplane"})
        self.assertEqual(self.ok("GET", BASE + "/storage/kv/namespaces"), [])
