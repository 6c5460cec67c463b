"""
Tests for L{funcplane.admin.cloudflare.secrets}: secrets put, listed and deleted, each
change a new deployed version, and no answer carrying a value.
"""

from funcplane.model import SECRET_TEXT, Binding
from tests.admin.cloudflare.harness import INDEX, SCRIPT, CloudflareCase, cf, vid
from tests.admin.cloudflare.test_upload import metadata


class SecretTests(CloudflareCase):
    """
    C{wrangler secret put}, C{list} and C{delete}.
    """

    def put_secret(self, name, text):
        return self.ok("PUT", SCRIPT + "/secrets", {"name": name, "text": text, "type": "secret_text"})

    def test_secrets(self):
        """
        A secret put makes a new deployed version with it; it survives a later deploy that
        does not mention it; it is listed by name only and no answer ever carries its
        value; deleting it makes another version without it.
        """
        self.deployed()
        self.put_secret("API_KEY", "s3cr3t-value")
        self.assertEqual(self.routes.resolve(b"hello.func.local"), vid(2))
        self.assertIn(Binding("API_KEY", SECRET_TEXT, "s3cr3t-value"), self.launcher.launched[-1].spec.bindings)
        self.deployed()
        self.assertIn(Binding("API_KEY", SECRET_TEXT, "s3cr3t-value"), self.launcher.launched[-1].spec.bindings)
        self.assertEqual(self.ok("GET", SCRIPT + "/secrets"), [{"name": "API_KEY", "type": "secret_text"}])
        for url in [SCRIPT + "/versions", SCRIPT + f"/versions/{cf(3)}", SCRIPT + "/settings", SCRIPT + "/deployments"]:
            self.ok("GET", url)
        self.call("GET", "http://127.0.0.1:8081/api/functions")
        self.assertFalse([answer for answer in self.seen if b"s3cr3t" in answer])
        self.ok("DELETE", SCRIPT + "/secrets/API_KEY?url_encoded=true")
        self.assertNotIn("API_KEY", [b.name for b in self.launcher.launched[-1].spec.bindings])
        self.assertEqual(self.ok("GET", SCRIPT + "/secrets"), [])
        self.assertCfError(self.call("DELETE", SCRIPT + "/secrets/API_KEY"), 404, 10007, "no secret API_KEY")
        self.assertCfError(self.call("DELETE", SCRIPT + "/secrets/GREETING"), 404, 10007, "no secret GREETING")

    def test_secret_needs_latest_deployed(self):
        """
        With a newer version only uploaded, a secret change is refused with 10215 and
        makes no version.
        """
        self.deployed()
        self.upload(metadata(), INDEX, url=SCRIPT + "/versions", method="POST")
        result = self.call("PUT", SCRIPT + "/secrets", {"name": "K", "text": "v", "type": "secret_text"})
        self.assertCfError(result, 409, 10215, "not deployed")
        self.assertEqual(len(self.ok("GET", SCRIPT + "/versions")["items"]), 2)
