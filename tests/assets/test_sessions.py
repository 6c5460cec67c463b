"""
Tests for L{funcplane.assets.sessions}: the upload protocol wrangler drives (session,
buckets, completion token), on a real store in a temporary directory and a L{Clock}.
"""

import base64
import json
import os
import tempfile

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from funcplane.assets.content import asset_hash
from funcplane.assets.sessions import AssetLimits, UploadSessions, buckets
from funcplane.assets.store import AssetStore, blob_path, write
from funcplane.errors import InvalidRequest, Unauthorized

FILES = {
    "/index.html": b"<h1>home</h1>",
    "/app.js": b"console.log('app')",
    "/copy.js": b"console.log('app')",
    "/img/logo.svg": b"<svg/>",
}


def manifest(files):
    return {
        path: {"hash": asset_hash(base64.b64encode(content), path), "size": len(content)}
        for path, content in files.items()
    }


def hash_of(path, files=FILES):
    return manifest(files)[path]["hash"]


def bearer(token):
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {token}".encode()])
    return request


def parts(*names, files=FILES, content=None):
    by_hash = {entry["hash"]: path for path, entry in manifest(files).items()}
    return lambda body: [
        (name, content if content is not None else base64.b64encode(files[by_hash[name]]))
        for name in names
    ]


class SessionCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.root = os.path.join(tempfile.mkdtemp(), "assets")
        self.store = AssetStore(self.root, None, in_thread=lambda f, *a: succeed(f(*a)))
        self.store.startService()
        self.sessions = UploadSessions(self.clock, self.store, AssetLimits(bucket_files=2))

    def open(self, files=FILES, script="site"):
        return self.successResultOf(
            Deferred.fromCoroutine(self.sessions.open(script, {"manifest": manifest(files)}))
        )

    def upload(self, token, parts_of):
        session = self.sessions.session_of(bearer(token))
        return self.successResultOf(Deferred.fromCoroutine(self.sessions.upload(session, parts_of, b"")))

    def refused(self, coroutine, error=InvalidRequest):
        return self.failureResultOf(Deferred.fromCoroutine(coroutine), error).value

    def upload_all(self, files=FILES, script="site"):
        opened = self.open(files, script)
        result = {}
        for bucket in opened["buckets"]:
            status, result = self.upload(opened["jwt"], parts(*bucket, files=files))
        return opened, status, result


class OpenTests(SessionCase):
    def test_buckets_of_missing_hashes(self):
        """
        The session asks for each hash the store lacks once (two paths with one content
        make one hash), in buckets of at most bucket_files, and its token is a JWT whose
        expiry wrangler can read.
        """
        write(self.root, hash_of("/index.html"), FILES["/index.html"])
        opened = self.open()
        wanted = [hash_of("/app.js"), hash_of("/img/logo.svg")]
        self.assertEqual(sorted(h for bucket in opened["buckets"] for h in bucket), sorted(wanted))
        self.assertTrue(all(len(bucket) <= 2 for bucket in opened["buckets"]))
        payload = json.loads(base64.urlsafe_b64decode(opened["jwt"].split(".")[1] + "=="))
        self.assertEqual(payload["exp"], 1_800_000_000 + 3600)
        self.assertEqual(payload["sub"], "site")

    def test_nothing_missing(self):
        """
        When the store has every file, there are no buckets and the session's own token is
        the completion token.
        """
        self.upload_all()
        opened = self.open()
        self.assertEqual(opened["buckets"], [])
        entries = self.sessions.redeem(opened["jwt"], "site")
        self.assertEqual([path for path, _, _ in entries], sorted(FILES))

    def test_bucket_bytes(self):
        """
        A bucket holds at most bucket_bytes of files; a larger file goes alone.
        """
        limits = AssetLimits(bucket_bytes=10, bucket_files=100)
        entries = [("/a", "a" * 32, 4), ("/b", "b" * 32, 4), ("/c", "c" * 32, 30), ("/d", "d" * 32, 3)]
        wanted = {digest: None for _, digest, _ in entries}
        self.assertEqual(buckets(entries, wanted, limits), [["a" * 32, "b" * 32], ["c" * 32], ["d" * 32]])

    def test_malformed_manifests(self):
        """
        A manifest that is not wrangler's shape is refused, saying what is wrong.
        """
        good = {"hash": "0" * 32, "size": 1}
        cases = [
            ({}, "manifest"),
            ({"manifest": []}, "manifest"),
            ({"manifest": {"no-slash": good}}, "must begin with /"),
            ({"manifest": {"/x": {"hash": "../../../etc", "size": 1}}}, "32 lower-case hex"),
            ({"manifest": {"/x": {"hash": "0" * 32, "size": -1}}}, "'size'"),
            ({"manifest": {"/x": {"hash": "0" * 32, "size": True}}}, "'size'"),
            ({"manifest": {"/x\0": good}}, "NUL"),
        ]
        for document, text in cases:
            error = self.refused(self.sessions.open("site", document))
            self.assertIn(text, str(error))

    def test_limits(self):
        """
        A file over the size limit, or more files than a version may have, is refused with
        the limit and the option that sets it.
        """
        sessions = UploadSessions(self.clock, self.store, AssetLimits(max_file_bytes=10, max_files=2))
        error = self.refused(sessions.open("site", {"manifest": {"/big": {"hash": "0" * 32, "size": 11}}}))
        self.assertIn("at most 10 bytes (--max-asset-file-bytes)", str(error))
        three = {f"/{i}": {"hash": "0" * 32, "size": 1} for i in range(3)}
        error = self.refused(sessions.open("site", {"manifest": three}))
        self.assertIn("at most 2 a version (--max-asset-files)", str(error))

    def test_upload_body_limit(self):
        """
        An upload may be as large as the largest file base64-encoded, with its headers.
        """
        limits = AssetLimits()
        self.assertGreater(limits.upload_body_bytes, limits.max_file_bytes * 4 // 3)
        self.assertLess(limits.upload_body_bytes, limits.max_file_bytes * 4 // 3 + 2 * 1024 * 1024)


class UploadTests(SessionCase):
    def test_completion(self):
        """
        Each bucket but the last is answered 202 with nothing; the one that completes the
        session 201 with a completion token, which stands for the whole manifest; the
        files are in the store, each once.
        """
        opened = self.open()
        self.assertEqual(len(opened["buckets"]), 2)
        first, last = opened["buckets"]
        self.assertEqual(self.upload(opened["jwt"], parts(*first)), (202, {}))
        status, result = self.upload(opened["jwt"], parts(*last))
        self.assertEqual(status, 201)
        entries = self.sessions.redeem(result["jwt"], "site")
        self.assertEqual(entries[0], ("/app.js", hash_of("/app.js"), len(FILES["/app.js"])))
        self.assertEqual(len(entries), 4)
        for path, content in FILES.items():
            with open(blob_path(self.root, hash_of(path)), "rb") as f:
                self.assertEqual(f.read(), content)
        self.assertEqual(self.sessions.received, 3)

    def test_retry_is_idempotent(self):
        """
        A bucket sent again (wrangler retries on errors) is taken again; after completion
        it is answered with the completion token again.
        """
        opened, _status, result = self.upload_all()
        again = self.upload(opened["jwt"], parts(*opened["buckets"][-1]))
        self.assertEqual(again[0], 201)
        self.assertEqual(self.sessions.redeem(again[1]["jwt"], "site"), self.sessions.redeem(result["jwt"], "site"))

    def test_poisoning(self):
        """
        A part whose content is not its hash's (other bytes of the same size) is refused,
        and nothing of its request is stored: no one can make a hash that other versions
        share name other bytes.
        """
        opened = self.open()
        target = hash_of("/index.html")
        forged = base64.b64encode(b"<h1>evil</h1>")
        error = self.refused(self.sessions.upload(
            self.sessions.session_of(bearer(opened["jwt"])),
            lambda body: [(hash_of("/app.js"), base64.b64encode(FILES["/app.js"])), (target, forged)],
            b"",
        ))
        self.assertIn("not the content of that hash", str(error))
        self.assertFalse(os.path.exists(blob_path(self.root, target)))
        self.assertFalse(os.path.exists(blob_path(self.root, hash_of("/app.js"))))

    def test_wrong_size_and_encoding(self):
        """
        A part that is not base64, or whose size is not the manifest's, is refused.
        """
        opened = self.open()
        session = self.sessions.session_of(bearer(opened["jwt"]))
        digest = hash_of("/index.html")
        error = self.refused(self.sessions.upload(session, lambda b: [(digest, b"not base64!")], b""))
        self.assertIn("not base64", str(error))
        error = self.refused(self.sessions.upload(session, lambda b: [(digest, base64.b64encode(b"x"))], b""))
        self.assertIn("the manifest says", str(error))

    def test_hashes_not_asked_for(self):
        """
        A session takes only the hashes it asked for: not another file's, not a hash the
        store already had, not the same part twice.
        """
        write(self.root, hash_of("/index.html"), FILES["/index.html"])
        opened = self.open()
        session = self.sessions.session_of(bearer(opened["jwt"]))
        for digest in ["f" * 32, hash_of("/index.html")]:
            error = self.refused(self.sessions.upload(session, lambda b, d=digest: [(d, b"")], b""))
            self.assertIn("not a hash this upload session asked for", str(error))
        twice = hash_of("/app.js")
        error = self.refused(self.sessions.upload(session, parts(twice, twice), b""))
        self.assertIn("twice", str(error))


class TokenTests(SessionCase):
    def test_wrong_tokens(self):
        """
        Uploads need a session's token: none, a forged signature, another funcplane's
        token, or a completion token is refused.
        """
        opened, _, result = self.upload_all()
        header, payload, signature = opened["jwt"].split(".")
        other = UploadSessions(self.clock, self.store)
        foreign = self.successResultOf(Deferred.fromCoroutine(other.open("site", {"manifest": {}})))["jwt"]
        for token in ["", "x.y.z", f"{header}.{payload}.{signature[:-2]}AA", foreign, result["jwt"]]:
            self.assertRaises(Unauthorized, self.sessions.check, bearer(token))
        request = DummyRequest([b""])
        self.assertRaises(Unauthorized, self.sessions.check, request)
        self.sessions.check(bearer(opened["jwt"]))

    def test_expiry(self):
        """
        A session's token is good for an hour; its completion token for an hour from
        completion; then both are refused.
        """
        opened = self.open()
        self.clock.advance(3599)
        self.sessions.check(bearer(opened["jwt"]))
        _status, result = 0, {}
        for bucket in opened["buckets"]:
            _status, result = self.upload(opened["jwt"], parts(*bucket))
        self.clock.advance(1)
        self.assertRaises(Unauthorized, self.sessions.check, bearer(opened["jwt"]))
        self.sessions.redeem(result["jwt"], "site")
        self.clock.advance(3600)
        error = self.assertRaises(InvalidRequest, self.sessions.redeem, result["jwt"], "site")
        self.assertIn("invalid or expired", str(error))

    def test_bound_to_script(self):
        """
        A completion token stands only for its own script's assets.
        """
        _, _, result = self.upload_all(script="site")
        error = self.assertRaises(InvalidRequest, self.sessions.redeem, result["jwt"], "other")
        self.assertIn("uploaded for site, not other", str(error))

    def test_unfinished_session(self):
        """
        The token of a session still missing files is no completion token.
        """
        opened = self.open()
        self.assertRaises(InvalidRequest, self.sessions.redeem, opened["jwt"], "site")

    def test_sessions_are_bounded(self):
        """
        At most max_sessions are kept: the oldest is forgotten, and its token with it.
        """
        sessions = UploadSessions(self.clock, self.store, AssetLimits(max_sessions=2))
        tokens = []
        for _ in range(3):
            tokens.append(self.successResultOf(Deferred.fromCoroutine(sessions.open("s", {"manifest": {}})))["jwt"])
            self.clock.advance(1)
        self.assertRaises(InvalidRequest, sessions.redeem, tokens[0], "s")
        sessions.redeem(tokens[2], "s")
