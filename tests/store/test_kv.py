"""
Tests for L{funcplane.store.kv}: Workers KV namespaces and keys in the functions' database,
and what a read leaves out (and deletes) once a key has expired.
"""

from twisted.trial.unittest import SynchronousTestCase

from funcplane import errors
from funcplane.store.kv import Entry, Namespace, SQLiteKV
from tests.fakes import memory_store

NS = "a" * 32


class NamespaceStoreTests(SynchronousTestCase):
    """
    Namespaces: ids given, titles unique, renamed, deleted with their keys.
    """

    def setUp(self):
        self.store = memory_store(self)
        self.kv = SQLiteKV(self.store)

    def test_create_and_read(self):
        """
        A namespace made is read back by id, and listed with its peers by id or title, in
        either direction, a page at a time, with the total.
        """
        made = self.successResultOf(self.kv.create_namespace(NS, "zeta", 10.0))
        self.assertEqual(made, Namespace(NS, "zeta", 10.0))
        self.successResultOf(self.kv.create_namespace("b" * 32, "alpha", 11.0))
        self.assertEqual(self.successResultOf(self.kv.namespace(NS)), made)
        total, page = self.successResultOf(self.kv.namespaces(0, 10, "title"))
        self.assertEqual((total, [n.title for n in page]), (2, ["alpha", "zeta"]))
        total, page = self.successResultOf(self.kv.namespaces(1, 10, "id", descending=True))
        self.assertEqual((total, [n.id for n in page]), (2, [NS]))

    def test_title_taken(self):
        """
        A second namespace may not take a title in use, nor be renamed to one; renaming a
        namespace to its own title is no conflict.
        """
        self.successResultOf(self.kv.create_namespace(NS, "cache", 10.0))
        self.successResultOf(self.kv.create_namespace("b" * 32, "other", 10.0))
        self.failureResultOf(self.kv.create_namespace("c" * 32, "cache", 10.0), errors.NamespaceTaken)
        self.failureResultOf(self.kv.rename_namespace("b" * 32, "cache"), errors.NamespaceTaken)
        self.assertEqual(self.successResultOf(self.kv.rename_namespace(NS, "cache")).title, "cache")
        self.assertEqual(self.successResultOf(self.kv.rename_namespace(NS, "new")).title, "new")

    def test_no_such_namespace(self):
        """
        Every operation on an id that names no namespace fails with L{errors.NoSuchNamespace}.
        """
        for d in [
            self.kv.namespace(NS),
            self.kv.rename_namespace(NS, "x"),
            self.kv.delete_namespace(NS),
            self.kv.get(NS, "k", 0),
            self.kv.keys(NS, "", None, 10, 0),
            self.kv.put(NS, [Entry("k", None, None, b"v")]),
            self.kv.delete(NS, ["k"]),
        ]:
            self.failureResultOf(d, errors.NoSuchNamespace)

    def test_delete_cascades(self):
        """
        Deleting a namespace deletes its keys; a namespace made again under the same id
        starts empty.
        """
        self.successResultOf(self.kv.create_namespace(NS, "cache", 10.0))
        self.successResultOf(self.kv.put(NS, [Entry("k", None, None, b"v")]))
        self.successResultOf(self.kv.delete_namespace(NS))
        self.successResultOf(self.kv.create_namespace(NS, "cache", 10.0))
        self.assertEqual(self.successResultOf(self.kv.keys(NS, "", None, 10, 0)), ([], False))


class KeyStoreTests(SynchronousTestCase):
    """
    Keys: written, replaced, read, listed in byte order a page at a time, deleted, expired.
    """

    def setUp(self):
        self.store = memory_store(self)
        self.kv = SQLiteKV(self.store)
        self.successResultOf(self.kv.create_namespace(NS, "cache", 10.0))
        self.successResultOf(self.kv.create_namespace("b" * 32, "other", 10.0))

    def put(self, *entries, namespace=NS):
        self.successResultOf(self.kv.put(namespace, entries))

    def test_put_get_replace(self):
        """
        A key's value (bytes, any), metadata and expiration are read back; a second put of
        the same name replaces all three; the other namespace's key of that name is apart.
        """
        self.put(Entry("k", '{"a":1}', 1000, b"\x00\xff"))
        self.put(Entry("k", None, None, b"other"), namespace="b" * 32)
        self.assertEqual(self.successResultOf(self.kv.get(NS, "k", 0)), Entry("k", '{"a":1}', 1000, b"\x00\xff"))
        self.put(Entry("k", None, None, b"new"))
        self.assertEqual(self.successResultOf(self.kv.get(NS, "k", 0)), Entry("k", None, None, b"new"))
        self.assertEqual(self.successResultOf(self.kv.get("b" * 32, "k", 0)).value, b"other")

    def test_delete(self):
        """
        Deleted keys are gone; deleting one that does not exist is no error.
        """
        self.put(Entry("a", None, None, b"1"), Entry("b", None, None, b"2"))
        self.successResultOf(self.kv.delete(NS, ["a", "nope"]))
        self.failureResultOf(self.kv.get(NS, "a", 0), errors.NoSuchKey)
        self.assertEqual(self.successResultOf(self.kv.get(NS, "b", 0)).value, b"2")

    def test_list_order_and_pages(self):
        """
        Keys are listed in UTF-8 byte order (so C{Z} before C{a} before C{é}), a page of
        C{limit} after the key given, with whether more follow; a prefix narrows the list.
        """
        names = ["é", "a/2", "Z", "a/1", "b"]
        self.put(*[Entry(n, None, None, b"") for n in names])
        page, more = self.successResultOf(self.kv.keys(NS, "", None, 2, 0))
        self.assertEqual(([e.name for e in page], more), (["Z", "a/1"], True))
        page, more = self.successResultOf(self.kv.keys(NS, "", "a/1", 2, 0))
        self.assertEqual(([e.name for e in page], more), (["a/2", "b"], True))
        page, more = self.successResultOf(self.kv.keys(NS, "", "b", 2, 0))
        self.assertEqual(([e.name for e in page], more), (["é"], False))
        page, more = self.successResultOf(self.kv.keys(NS, "a/", None, 10, 0))
        self.assertEqual(([e.name for e in page], more), (["a/1", "a/2"], False))

    def test_list_has_no_values(self):
        """
        A list gives each key's metadata and expiration, never its value.
        """
        self.put(Entry("k", '{"m":true}', 500, b"big value"))
        page, _ = self.successResultOf(self.kv.keys(NS, "", None, 10, 0))
        self.assertEqual(page, [Entry("k", '{"m":true}', 500)])

    def test_expired_never_returned(self):
        """
        At its expiration a key is no longer read nor listed, and is deleted by the read:
        the row is gone from the table.
        """
        self.put(Entry("old", None, 100, b"1"), Entry("new", None, 200, b"2"))
        self.assertEqual(self.successResultOf(self.kv.get(NS, "old", 99)).value, b"1")
        self.failureResultOf(self.kv.get(NS, "old", 100), errors.NoSuchKey)
        page, _ = self.successResultOf(self.kv.keys(NS, "", None, 10, 150))
        self.assertEqual([e.name for e in page], ["new"])
        self.assertEqual(self.rows(), ["new"])
        self.assertEqual(self.successResultOf(self.kv.get_many(NS, ["new", "old"], 200)), {"new": None, "old": None})
        self.assertEqual(self.rows(), [])

    def test_purge(self):
        """
        A purge deletes every namespace's expired keys, and says how many.
        """
        self.put(Entry("a", None, 100, b""), Entry("b", None, None, b""))
        self.put(Entry("c", None, 50, b""), namespace="b" * 32)
        self.assertEqual(self.successResultOf(self.kv.purge(100)), 2)
        self.assertEqual(self.rows(), ["b"])

    def rows(self):
        def names(txn):
            txn.execute("SELECT name FROM kv_keys ORDER BY name")
            return [row[0] for row in txn.fetchall()]

        return self.successResultOf(self.store.interaction(names))
