"""
Tests for L{funcplane.admin.cloudflare.app}: what every v4 route shares, the envelope,
the token and account check, and the script name check.
"""

from tests.admin.cloudflare.harness import BASE, INDEX, SCRIPT, UPLOAD, CloudflareCase
from tests.admin.cloudflare.test_upload import CONTENT_TYPE, body, metadata


class EnvelopeTests(CloudflareCase):
    """
    Every answer, failures too, is Cloudflare's envelope with the code wrangler acts on.
    """

    def test_unknown_script_is_10007(self):
        """
        A script that does not exist is a 404 with code 10007: how wrangler tells a first
        deploy.
        """
        self.assertCfError(self.call("GET", BASE + "/workers/services/hello"), 404, 10007, "hello")
        self.assertCfError(self.call("GET", SCRIPT + "/deployments"), 404, 10007)

    def test_unknown_route(self):
        """
        A route funcplane does not implement answers in the envelope, naming it.
        """
        self.assertCfError(self.call("GET", BASE + "/workers/nothing-here"), 404, 7003,
                           f"funcplane does not implement GET {BASE.removeprefix('http://127.0.0.1:8081')}/workers/nothing-here")

    def test_token_required(self):
        """
        Without the admin token nothing is done: 401 with code 10000 in the envelope.
        """
        headers = {b"Content-Type": [CONTENT_TYPE.encode()]}
        result = self.call("PUT", SCRIPT, body(metadata(), INDEX), headers)
        self.assertCfError(result, 401, 10000)
        self.assertEqual(self.launcher.launched, [])
        self.assertCfError(self.call("GET", BASE + "/workers/subdomain", headers={}), 401, 10000)

    def test_validation_is_10021(self):
        """
        A malformed upload is a 400 with code 10021 and nothing starts.
        """
        self.assertCfError(self.call("PUT", SCRIPT, body(INDEX), UPLOAD), 400, 10021, "metadata")
        self.assertCfError(self.call("PUT", BASE + "/workers/scripts/Bad_Name", body(metadata(), INDEX), UPLOAD), 400, 10021)
        self.assertEqual(self.launcher.launched, [])

    def test_bad_account_id(self):
        """
        An account id that is not 1-64 letters, digits and dashes is a 400 with code 10021
        naming it, and nothing starts.
        """
        bad = "http://127.0.0.1:8081/client/v4/accounts/a.b/workers/scripts/hello"
        self.assertCfError(self.call("PUT", bad, body(metadata(), INDEX), UPLOAD), 400, 10021, "account id 'a.b'")
        self.assertEqual(self.launcher.launched, [])

    def test_deep_json_is_10021(self):
        """
        JSON nested deeper than the parser goes, in a JSON body or in an upload's
        metadata part, is a 400 with code 10021 in the envelope, not an HTML 500.
        """
        self.deployed()
        deep = b"[" * 100_000 + b"]" * 100_000
        self.assertCfError(self.call("POST", SCRIPT + "/tails", b'{"filters": ' + deep + b"}"), 400, 10021,
                           "nested too deeply")
        launched = len(self.launcher.launched)
        upload = body(metadata(), INDEX).replace(b'{"main_module"', b'{"x": ' + deep + b', "main_module"')
        self.assertCfError(self.call("PUT", SCRIPT, upload, UPLOAD), 400, 10021,
                           "the 'metadata' part is JSON nested too deeply")
        self.assertEqual(len(self.launcher.launched), launched)
