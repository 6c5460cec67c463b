"""
Tests for L{funcplane.admin.cloudflare.assets}: the upload routes wrangler calls, what a
script upload's assets become, and the admin Site's check of upload tokens.
"""

import base64
import json
import os
import tempfile

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.test.proto_helpers import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from funcplane.admin.api import AdminAPI
from funcplane.admin.auth import TokenChecker, token_hash
from funcplane.admin.cloudflare.api import CloudflareAPI
from funcplane.admin.cloudflare.assets import check_static_routing, parse_assets
from funcplane.admin.parse import Limits
from funcplane.admin.site import AdminLimits, admin_site
from funcplane.assets.content import asset_hash
from funcplane.assets.sessions import AssetLimits, UploadSessions
from funcplane.assets.store import AssetStore, blob_path
from funcplane.errors import InvalidBinding, InvalidRequest
from funcplane.routing import RouteTable
from funcplane.runtime.assets import ASSETS_ONLY_MODULE
from tests.admin.cloudflare.harness import BASE, INDEX, SCRIPT, UPLOAD, CloudflareCase
from tests.admin.cloudflare.test_upload import CONTENT_TYPE, body, metadata, part
from tests.fakes import AUTH, TOKEN

FILES = {"/index.html": b"<h1>hi</h1>", "/app.js": b"run()"}
MANIFEST = {
    path: {"hash": asset_hash(base64.b64encode(content), path), "size": len(content)}
    for path, content in FILES.items()
}
SESSION = SCRIPT + "/assets-upload-session"
BUCKET = BASE + "/workers/assets/upload?base64=true"


def bucket_body(hashes, files=FILES):
    by_hash = {entry["hash"]: path for path, entry in MANIFEST.items()}
    return body(*[part(h, base64.b64encode(files[by_hash[h]]), filename=h, content_type="application/null") for h in hashes])


class AssetRoutesCase(CloudflareCase):
    def setUp(self):
        super().setUp()
        self.root = os.path.join(tempfile.mkdtemp(), "assets")
        self.asset_store = AssetStore(self.root, None, in_thread=lambda f, *a: succeed(f(*a)))
        self.asset_store.startService()
        self.sessions = UploadSessions(self.clock, self.asset_store, AssetLimits())
        limits = Limits(max_code_bytes=10_000)
        cloudflare = CloudflareAPI(self.platform, self.checker, limits, self.clock, self.tails, self.sessions)
        self.api = AdminAPI(self.platform, self.checker, limits, "func.local", 8081, clock=self.clock, cloudflare=cloudflare)
        self.client = StubTreq(self.api.resource())

    def uploaded(self):
        """
        Run the session and its buckets for FILES; the completion token.
        """
        opened = self.ok("POST", SESSION, {"manifest": MANIFEST})
        token = opened["jwt"]
        for bucket in opened["buckets"]:
            headers = {b"Authorization": [f"Bearer {opened['jwt']}".encode()], b"Content-Type": [CONTENT_TYPE.encode()]}
            status, answer = self.call("POST", BUCKET, bucket_body(bucket), headers)
            self.assertIn(status, (201, 202), answer)
            token = answer["result"].get("jwt", token)
        return token

    def deploy(self, *parts, **fields):
        return self.upload(metadata(**fields), *parts)


class RouteTests(AssetRoutesCase):
    def test_protocol(self):
        """
        The session route needs the admin token and answers the token and buckets; the
        bucket route takes the session's token (not the admin token) and answers 201 with
        the completion token; the files are stored.
        """
        status, _ = self.call("POST", SESSION, {"manifest": MANIFEST}, headers={})
        self.assertEqual(status, 401)
        opened = self.ok("POST", SESSION, {"manifest": MANIFEST})
        self.assertEqual(sorted(h for b in opened["buckets"] for h in b), sorted(e["hash"] for e in MANIFEST.values()))
        [bucket] = opened["buckets"]
        headers = {b"Authorization": [f"Bearer {opened['jwt']}".encode()], b"Content-Type": [CONTENT_TYPE.encode()]}
        status, answer = self.call("POST", BUCKET, bucket_body(bucket), headers)
        self.assertEqual((status, answer["success"]), (201, True))
        self.assertEqual(self.sessions.redeem(answer["result"]["jwt"], "hello")[0][0], "/app.js")
        self.assertTrue(os.path.exists(blob_path(self.root, MANIFEST["/app.js"]["hash"])))

    def test_bucket_refusals(self):
        """
        A bucket with the admin token instead of a session's is 401; one without
        ?base64=true is refused with why.
        """
        opened = self.ok("POST", SESSION, {"manifest": MANIFEST})
        body_ = bucket_body(opened["buckets"][0])
        status, answer = self.call("POST", BUCKET, body_, {**AUTH, b"Content-Type": [CONTENT_TYPE.encode()]})
        self.assertEqual((status, answer["errors"][0]["code"]), (401, 10000))
        headers = {b"Authorization": [f"Bearer {opened['jwt']}".encode()], b"Content-Type": [CONTENT_TYPE.encode()]}
        self.assertCfError(self.call("POST", BUCKET.split("?")[0], body_, headers), 400, 10021, "base64=true")

    def test_deploy_with_assets(self):
        """
        A script upload naming the completion token gets the manifest with sizes and
        Content-Types, the config, and its ASSETS binding (not one of its env bindings).
        """
        token = self.uploaded()
        self.deploy(
            INDEX,
            bindings=[{"type": "assets", "name": "ASSETS"}, {"type": "plain_text", "name": "A", "text": "1"}],
            assets={"jwt": token, "config": {"not_found_handling": "single-page-application", "_redirects": "/a /b\n"}},
        )
        spec = self.latest_spec()
        self.assertEqual(spec.assets.binding, "ASSETS")
        self.assertEqual([b.name for b in spec.bindings], ["A"])
        self.assertEqual(spec.assets.manifest[1], ("/index.html", MANIFEST["/index.html"]["hash"], 11, "text/html; charset=utf-8"))
        config = json.loads(spec.assets.config)
        self.assertEqual(
            config,
            {"html_handling": "auto-trailing-slash", "not_found_handling": "single-page-application",
             "run_worker_first": False, "has_user_worker": True, "_redirects": "/a /b\n"},
        )

    def latest_spec(self):
        info = self.successResultOf(self.store.function("hello"))
        return self.successResultOf(self.store.version_spec(info.versions[-1].id))

    def test_assets_only_and_keep_assets(self):
        """
        An upload with assets and no module is an assets-only version (a never-reached
        main module); a later upload with keep_assets and no assets keeps them; one
        without keep_assets has none.
        """
        self.upload(part("metadata", json.dumps({"assets": {"jwt": self.uploaded(), "config": {}}})))
        only = self.latest_spec()
        self.assertEqual(only.modules[0].name, ASSETS_ONLY_MODULE)
        self.assertFalse(json.loads(only.assets.config)["has_user_worker"])
        self.deploy(INDEX, keep_assets=True)
        self.assertEqual(self.latest_spec().assets, only.assets)
        self.deploy(INDEX)
        self.assertIsNone(self.latest_spec().assets)

    def test_bad_token(self):
        """
        A script upload with an unknown completion token is refused, naming the fix.
        """
        self.assertCfError(
            self.call("PUT", SCRIPT, body(metadata(assets={"jwt": "a.b.c"}), INDEX), UPLOAD),
            400, 10021, "run wrangler deploy again",
        )


class ParseTests(SynchronousTestCase):
    class Sessions:
        def redeem(self, token, script):
            return (("/a.css", "0" * 32, 1),)

    def parse(self, **metadata):
        return parse_assets(metadata, "site", self.Sessions())

    def test_refusals(self):
        """
        Configs Cloudflare refuses are refused with its messages: an unknown handling,
        run_worker_first or a binding without a worker, bad rules, two bindings, a
        binding with no assets.
        """
        assets = {"jwt": "t", "config": {}}
        cases = [
            ({"main_module": "i.js", "assets": {"jwt": "t", "config": {"html_handling": "bogus"}}}, "is not one of"),
            ({"assets": {"jwt": "t", "config": {"run_worker_first": True}}}, "without a Worker script"),
            ({"assets": assets, "bindings": [{"type": "assets", "name": "A"}]}, "assets-only Worker"),
            ({"main_module": "i.js", "assets": assets, "bindings": [{"type": "assets", "name": "A"}, {"type": "assets", "name": "B"}]}, "only one"),
            ({"main_module": "i.js", "bindings": [{"type": "assets", "name": "A"}]}, "has no assets"),
            ({"main_module": "i.js", "assets": {"jwt": "t", "config": {"_headers": "x" * (1024 * 1024 + 1)}}}, "over"),
        ]
        for given, text in cases:
            error = self.assertRaises((InvalidRequest, InvalidBinding), self.parse, **given)
            self.assertIn(text, str(error))

    def test_static_routing(self):
        """
        run_worker_first lists are checked as Cloudflare checks them.
        """
        check_static_routing(["/api/*", "!/api/public/*"])
        cases = [
            ([], "at least 1 rule"),
            (["!/x"], "Only negative"),
            (["api"], "must start with '/' or '!/'"),
            (["/a", "/a"], "duplicate"),
            (["/a/*", "/a/b"], "makes it redundant"),
            (["/" + "a" * 100], "less than 100"),
        ]
        for rules, text in cases:
            self.assertIn(text, str(self.assertRaises(InvalidRequest, check_static_routing, rules)))


class GuardTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.root = os.path.join(tempfile.mkdtemp(), "assets")
        store = AssetStore(self.root, None, in_thread=lambda f, *a: succeed(f(*a)))
        store.startService()
        self.sessions = UploadSessions(self.clock, store, AssetLimits(max_file_bytes=40_000))
        self.site = admin_site(
            RouteTable("func.local"), None, TokenChecker(token_hash(TOKEN)), self.clock,
            AdminLimits(body_bytes=10_000), uploads=self.sessions,
        )

    def send(self, head):
        channel = self.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(head)
        return transport.value()

    def test_upload_needs_session_token(self):
        """
        An asset upload without a session's token is refused (401) before its body is
        read, even with the admin token.
        """
        for auth in (b"", f"Authorization: Bearer {TOKEN}\r\n".encode()):
            answer = self.send(
                b"POST /client/v4/accounts/abc/workers/assets/upload?base64=true HTTP/1.1\r\n"
                b"Host: admin\r\n" + auth + b"Content-Length: 5\r\n\r\n"
            )
            self.assertTrue(answer.startswith(b"HTTP/1.1 401"), answer)

    def test_upload_body_limit(self):
        """
        An asset upload with a session's token may have a body larger than other admin
        requests (one bucket, base64-encoded), and no larger.
        """
        token = self.successResultOf(Deferred.fromCoroutine(self.sessions.open("s", {"manifest": {}})))["jwt"]
        limit = self.sessions.limits.upload_body_bytes
        head = (
            b"POST /client/v4/accounts/abc/workers/assets/upload?base64=true HTTP/1.1\r\nHost: admin\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: %d\r\n\r\n"
        )
        self.assertEqual(self.send(head % (limit + 1))[:12], b"HTTP/1.1 413")
        self.assertEqual(self.send(head % limit), b"")
        other = self.send(b"POST /client/v4/x HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 10001\r\n\r\n")
        self.assertEqual(other[:12], b"HTTP/1.1 413")
