"""
Tests for L{funcplane.assets.store}: the content-addressed store of asset files.
"""

import os
import stat
import tempfile

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase

from funcplane.assets.store import AssetStore, blob_path, missing, write

DIGEST = "ab" + "0" * 30


class StoreTests(SynchronousTestCase):
    def setUp(self):
        self.root = os.path.join(tempfile.mkdtemp(), "assets")
        self.store = AssetStore(self.root, None, in_thread=lambda f, *a: succeed(f(*a)))
        self.store.startService()

    def test_layout_and_modes(self):
        """
        A file lives at <root>/<first two hex digits>/<hash>, 0644, its directories 0711,
        and no temporary file is left beside it.
        """
        self.assertTrue(write(self.root, DIGEST, b"content"))
        path = os.path.join(self.root, "ab", DIGEST)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"content")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644)
        for directory in (self.root, os.path.dirname(path)):
            self.assertEqual(stat.S_IMODE(os.stat(directory).st_mode), 0o711)
        self.assertEqual(os.listdir(os.path.dirname(path)), [DIGEST])

    def test_written_once(self):
        """
        A hash already stored is not written again: its file is left as it is.
        """
        write(self.root, DIGEST, b"first")
        self.assertFalse(write(self.root, DIGEST, b"second"))
        with open(blob_path(self.root, DIGEST), "rb") as f:
            self.assertEqual(f.read(), b"first")

    def test_missing(self):
        """
        The store says which hashes it has no file for.
        """
        other = "cd" + "1" * 30
        write(self.root, DIGEST, b"x")
        self.assertEqual(self.successResultOf(self.store.missing([DIGEST, other])), {other})
        self.assertEqual(missing(self.root, []), set())

    def test_only_hashes_become_paths(self):
        """
        Nothing but 32 lower-case hex digits is ever joined to the store's directory.
        """
        for bad in ["../../etc/passwd", "AB" + "0" * 30, "ab/" + "0" * 29, "0" * 31]:
            self.assertRaises(ValueError, blob_path, self.root, bad)
            self.assertRaises(ValueError, write, self.root, bad, b"x")
        self.assertEqual(os.listdir(self.root), [])

    def test_pool(self):
        """
        Without a given runner, work runs in the store's own pool, which exists only while
        the store runs.
        """
        store = AssetStore(self.root + "2", None)
        self.assertRaises(RuntimeError, store.run, len, "x")
        store.startService()
        self.assertTrue(store._pool.started)
        store.stopService()
        self.assertIsNone(store._pool)
