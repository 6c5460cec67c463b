"""
Tests for L{funcplane.kv}: Cloudflare's KV limits with its messages, the use cases on a
real store and a L{Clock}, and the periodic purge of expired keys.
"""

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from funcplane import errors, kv
from funcplane.store.kv import SQLiteKV
from tests.fakes import memory_store

NOW = 1_800_000_000


class LimitTests(SynchronousTestCase):
    """
    The checks the server makes (workerd makes none but the key's), in miniflare's words.
    """

    def refused(self, kind, message, f, *args):
        error = self.assertRaises(kind, f, *args)
        self.assertEqual(str(error), message)

    def test_key_names(self):
        """
        An empty key, C{.}, C{..} and a key over 512 UTF-8 bytes are refused; 512 bytes
        (256 two-byte characters) pass.
        """
        self.refused(errors.InvalidRequest, "Key names must not be empty", kv.check_key, "")
        self.refused(errors.InvalidRequest, 'Illegal key name "..". Please use a different name.', kv.check_key, "..")
        self.refused(errors.InvalidRequest, 'Illegal key name ".". Please use a different name.', kv.check_key, ".")
        self.refused(
            errors.KeyTooLong,
            "UTF-8 encoded length of 514 exceeds key length limit of 512.",
            kv.check_key,
            "é" * 257,
        )
        self.assertEqual(kv.check_key("é" * 256), "é" * 256)

    def test_value_and_metadata(self):
        """
        A value of 25 MiB passes and one byte more is refused; metadata must be JSON of at
        most 1,024 bytes.
        """
        self.assertEqual(len(kv.check_value(b"x" * kv.VALUE_BYTES)), 26_214_400)
        self.refused(
            errors.ValueTooLarge,
            "Value length of 26214401 exceeds limit of 26214400.",
            kv.check_value,
            b"x" * (kv.VALUE_BYTES + 1),
        )
        fits = '"' + "m" * 1022 + '"'
        self.assertEqual(kv.check_metadata(fits), fits)
        self.refused(errors.ValueTooLarge, "Metadata length of 1025 exceeds limit of 1024.", kv.check_metadata, fits + " ")
        self.refused(errors.InvalidRequest, "metadata is not valid JSON", kv.check_metadata, "{nope")

    def test_expiration(self):
        """
        C{expiration_ttl} (which wins over C{expiration}) must be at least 60; an
        expiration must be a time at least 60 s ahead; neither gives no expiration.
        """
        self.assertEqual(kv.expiration(NOW + 0.5), None)
        self.assertEqual(kv.expiration(NOW + 0.5, "1", "60"), NOW + 60)
        self.assertEqual(kv.expiration(NOW, NOW + 60), NOW + 60)
        self.refused(
            errors.InvalidRequest,
            "Invalid expiration_ttl of 10. Expiration TTL must be at least 60.",
            kv.expiration, NOW, None, "10",
        )
        self.refused(
            errors.InvalidRequest,
            "Invalid expiration_ttl of x. Please specify integer greater than 0.",
            kv.expiration, NOW, None, "x",
        )
        self.refused(
            errors.InvalidRequest,
            "Invalid expiration of 1000. Please specify integer greater than the current"
            " number of seconds since the UNIX epoch.",
            kv.expiration, NOW, "1000",
        )
        self.refused(
            errors.InvalidRequest,
            f"Invalid expiration of {NOW + 59}. Expiration times must be at least 60 seconds in the future.",
            kv.expiration, NOW, str(NOW + 59),
        )

    def test_list_limit(self):
        """
        A list's limit is 1 to 1000, 1000 by default; miniflare's "less than 1000" (sic)
        for 1001 is kept word for word.
        """
        self.assertEqual((kv.list_limit(None), kv.list_limit("1"), kv.list_limit("1000")), (1000, 1, 1000))
        self.refused(
            errors.InvalidRequest,
            "Invalid key_count_limit of 0. Please specify an integer greater than 0.",
            kv.list_limit, "0",
        )
        self.refused(
            errors.InvalidRequest,
            "Invalid key_count_limit of 1001. Please specify an integer less than 1000.",
            kv.list_limit, "1001",
        )

    def test_cursor(self):
        """
        A cursor is opaque and gives back the key it stopped at, any UTF-8 included; a
        cursor funcplane did not make is refused.
        """
        self.assertEqual(kv.after_cursor(kv.cursor_of("a/é?=")), "a/é?=")
        self.assertEqual((kv.after_cursor(""), kv.after_cursor(None)), (None, None))
        self.assertRaises(errors.InvalidRequest, kv.after_cursor, "%%%")


class KVTests(SynchronousTestCase):
    """
    The use cases, on a real store, with time from a L{Clock}.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.bound = {}
        self.kv = kv.KV(
            self.clock, SQLiteKV(memory_store(self)), new_id=lambda: "f" * 32,
            bindings=lambda namespace_id: succeed(self.bound.get(namespace_id, ())),
        )
        self.ns = self.successResultOf(self.kv.create_namespace("cache")).id

    def test_expires_on_the_clock(self):
        """
        A key put with C{expires_ttl} 60 is read until 60 s have passed, and then never.
        """
        self.successResultOf(self.kv.put(self.ns, "k", b"v", expires_ttl="60"))
        self.clock.advance(59)
        self.assertEqual(self.successResultOf(self.kv.get(self.ns, "k")).expiration, NOW + 60)
        self.clock.advance(1)
        self.failureResultOf(self.kv.get(self.ns, "k"), errors.NoSuchKey)

    def test_pages_over_1000(self):
        """
        2,500 keys are listed in three pages of at most 1,000 by default, each page's
        cursor leading to the next, and the last with none.
        """
        entries = [kv.entry(NOW, f"key{i:05d}", b"") for i in range(2500)]
        self.successResultOf(self.kv.put_many(self.ns, entries))
        seen, cursor, pages = [], None, 0
        while True:
            found, cursor = self.successResultOf(self.kv.keys(self.ns, "", cursor))
            seen += [e.name for e in found]
            pages += 1
            if cursor is None:
                break
        self.assertEqual((pages, seen), (3, [e.name for e in entries]))

    def test_bound_namespace_kept(self):
        """
        A namespace that a deployed version binds is not deleted, and the refusal names the
        binding; one nobody binds is.
        """
        self.bound[self.ns] = ["counter:v3 COUNTER"]
        error = self.failureResultOf(self.kv.delete_namespace(self.ns), errors.Conflict).value
        self.assertIn("counter:v3 COUNTER", str(error))
        self.successResultOf(self.kv.namespace(self.ns))
        self.bound.clear()
        self.successResultOf(self.kv.delete_namespace(self.ns))
        self.failureResultOf(self.kv.namespace(self.ns), errors.NoSuchNamespace)

    def test_titles(self):
        """
        A title must be a non-empty string.
        """
        for title in ["", "  ", None, 3]:
            self.assertRaises(errors.InvalidRequest, self.kv.create_namespace, title)


class _CountingKV:
    def __init__(self):
        self.results = []

    def purge(self):
        return self.results.pop(0)


class PurgeTests(SynchronousTestCase):
    """
    L{kv.KVPurge} purges once a minute, on the clock, and survives a failed purge.
    """

    def test_runs_every_minute(self):
        """
        Nothing is purged at start; each minute one purge runs; a failure is logged and the
        next minute's purge still runs; stopping waits for the purge in flight.
        """
        clock, store = Clock(), _CountingKV()
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        purge = kv.KVPurge(clock, store)
        purge.startService()
        store.results = [succeed(3), fail(RuntimeError("disk")), Deferred()]
        clock.advance(59)
        self.assertEqual(len(store.results), 3)
        clock.advance(1)
        clock.advance(60)
        self.assertEqual(len(store.results), 1)
        self.assertEqual([e.get("count") for e in events if e.get("count")], [3])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        in_flight = store.results[0]
        clock.advance(60)
        stopped = purge.stopService()
        self.assertNoResult(stopped)
        in_flight.callback(0)
        self.successResultOf(stopped)
        self.assertEqual(clock.getDelayedCalls(), [])
