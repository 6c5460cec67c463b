"""
Tests for L{funcplane.assets.content}: an asset's hash and Content-Type, as wrangler
decides them.
"""

import base64

from twisted.trial.unittest import SynchronousTestCase

from funcplane.assets.content import asset_hash, content_type, extension, is_hash


class HashTests(SynchronousTestCase):
    def test_wrangler_hash(self):
        """
        The hash is wrangler's hashFile: BLAKE3 of the base64 text and the extension, 32 hex
        digits (the value wrangler's own blake3-wasm gives for this file).
        """
        encoded = base64.b64encode(b"hello world\n")
        self.assertEqual(asset_hash(encoded, "/h.css"), "f37d8da2280574610c5d0e5f446e6e8f")

    def test_extension_counts(self):
        """
        The same bytes under another extension have another hash.
        """
        encoded = base64.b64encode(b"same")
        self.assertNotEqual(asset_hash(encoded, "/a.js"), asset_hash(encoded, "/a.txt"))
        self.assertEqual(asset_hash(encoded, "/a.js"), asset_hash(encoded, "/deep/b.js"))

    def test_extension_as_node(self):
        """
        The extension is Node's path.extname without its dot.
        """
        cases = {"/a/b.js": "js", "/x.tar.gz": "gz", "/Makefile": "", "/.env": "", "/a.": "", "/a/.b.c": "c"}
        self.assertEqual({path: extension(path) for path in cases}, cases)

    def test_is_hash(self):
        """
        Only 32 lower-case hex digits are a hash.
        """
        self.assertTrue(is_hash("0" * 32))
        for text in ["A" * 32, "0" * 31, "0" * 33, "../" + "0" * 29, "0" * 31 + "\n", None, 5]:
            self.assertFalse(is_hash(text), text)


class ContentTypeTests(SynchronousTestCase):
    def test_types(self):
        """
        Types are mime's, text ones with a UTF-8 charset, by a case-insensitive
        extension; a name without one has none.
        """
        cases = {
            "/index.html": "text/html; charset=utf-8",
            "/app.JS": "text/javascript; charset=utf-8",
            "/style.css": "text/css; charset=utf-8",
            "/data.json": "application/json",
            "/logo.svg": "image/svg+xml",
            "/photo.jpeg": "image/jpeg",
            "/mod.wasm": "application/wasm",
            "/movie.mp4": "video/mp4",
            "/Makefile": None,
            "/.htaccess": None,
            "/file.unknown-ext": None,
        }
        self.assertEqual({path: content_type(path) for path in cases}, cases)
