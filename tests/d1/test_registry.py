"""
The registry of D1 databases (L{funcplane.d1.registry.Databases}) and each database's file
(L{funcplane.d1.database}): names unique, files named by funcplane's ids in a 0700
directory, the size limit, and deletes that remove the files (or are refused while bound).
"""

import os
import stat

from twisted.internet.defer import maybeDeferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane.d1.database import database_path
from funcplane.d1.registry import Databases
from funcplane.d1.sql import Limits, statements
from funcplane.errors import (
    DatabaseExists,
    DatabaseInUse,
    InvalidName,
    NoSuchDatabase,
    SQLError,
)
from funcplane.ids import cf_id
from tests.fakes import memory_store


def at_once(f, *args):
    return maybeDeferred(f, *args)


class RegistryTests(SynchronousTestCase):
    """
    Databases made, found, listed, queried and deleted.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.bound = {}
        self.path = os.path.join(self.mktemp(), "d1")
        self.databases = self.registry()

    def registry(self, limits=Limits()):
        databases = Databases(
            memory_store(self), self.path, self.clock, limits,
            bound_by=lambda i: succeed(self.bound.get(i, ())), in_thread=at_once,
        )
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        databases.startService()
        self.addCleanup(databases.stopService)
        return databases

    def create(self, name):
        return self.successResultOf(self.databases.create(name))

    def test_create(self):
        """
        A new database has a fresh id, the name given and the time; its file is
        <data-dir>/d1/<id>.sqlite3 (0600) in a 0700 directory, named by the id alone.
        """
        record = self.create("my-db")
        self.assertEqual((len(record.id), record.name, record.created_at), (32, "my-db", 1_800_000_000))
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o700)
        path = database_path(self.path, record.id)
        self.assertEqual(os.listdir(self.path)[0:1] and os.path.exists(path), True)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(self.successResultOf(self.databases.info(record)), (4096, 0))

    def test_names(self):
        """
        Names are unique, as on Cloudflare, and must be letters, digits, - and _.
        """
        self.create("db")
        failure = self.failureResultOf(self.databases.create("db"), DatabaseExists)
        self.assertEqual(str(failure.value), "A database with that name already exists")
        for bad in ["", "../x", "a b", "x" * 65, None]:
            self.failureResultOf(self.databases.create(bad), InvalidName)

    def test_found_by_id_uuid_or_name(self):
        """
        A database is found by its id, its id as a UUID, or its name; else NoSuchDatabase.
        """
        record = self.create("prod")
        for key in [record.id, cf_id(record.id), "prod"]:
            self.assertEqual(self.successResultOf(self.databases.get(key)), record)
        failure = self.failureResultOf(self.databases.get("nope"), NoSuchDatabase)
        self.assertEqual(str(failure.value), "The database nope could not be found")

    def test_every(self):
        """
        Listing gives every database, oldest first, or those whose name contains a string.
        """
        first = self.create("alpha")
        self.clock.advance(1)
        second = self.create("beta")
        self.assertEqual(self.successResultOf(self.databases.every()), [first, second])
        self.assertEqual(self.successResultOf(self.databases.every("et")), [second])

    def test_query_and_persist(self):
        """
        What a query writes is in the database's file: a new registry on the same
        directory reads it back.
        """
        record = self.create("db")
        self.successResultOf(self.databases.run(record, statements("CREATE TABLE t (a); INSERT INTO t VALUES (7)")))
        self.successResultOf(self.databases.stopService())
        again = Databases(self.databases._store, self.path, self.clock, in_thread=at_once)
        again.startService()
        [answer] = self.successResultOf(again.run(record, statements("SELECT a FROM t")))
        self.assertEqual(answer["results"], [{"a": 7}])
        self.assertEqual(self.successResultOf(again.info(record))[1], 1)
        self.successResultOf(again.stopService())

    def test_size_limit(self):
        """
        A write past --d1-max-database-mb fails with SQLITE_FULL, saying which limit, and
        leaves the database as it was.
        """
        self.databases = self.registry(Limits(max_bytes=64 * 1024))
        record = self.create("small")
        self.successResultOf(self.databases.run(record, statements("CREATE TABLE t (b BLOB)")))
        failure = self.failureResultOf(
            self.databases.run(record, statements("INSERT INTO t VALUES (zeroblob(100000))")), SQLError
        )
        self.assertEqual(
            str(failure.value),
            "the database is at its size limit, 0.0625 MiB (--d1-max-database-mb): database or disk"
            " is full: SQLITE_FULL",
        )
        [answer] = self.successResultOf(self.databases.run(record, statements("SELECT count(*) AS n FROM t")))
        self.assertEqual(answer["results"], [{"n": 0}])

    def test_delete(self):
        """
        Deleting a database removes its row and its files; it is no longer found, and a
        query that had found it before fails without making its file again.
        """
        record = self.create("gone")
        self.successResultOf(self.databases.run(record, statements("CREATE TABLE t (a)")))
        self.successResultOf(self.databases.delete("gone"))
        self.assertEqual(os.listdir(self.path), [])
        self.failureResultOf(self.databases.run(record, statements("SELECT 1")), NoSuchDatabase)
        self.assertEqual(os.listdir(self.path), [])
        self.failureResultOf(self.databases.get(record.id), NoSuchDatabase)
        self.failureResultOf(self.databases.delete(record.id), NoSuchDatabase)

    def test_delete_bound(self):
        """
        A database a deployed version binds is not deleted; the error names the functions.
        """
        record = self.create("used")
        self.bound[record.id] = ("shop", "api")
        failure = self.failureResultOf(self.databases.delete("used"), DatabaseInUse)
        self.assertEqual(
            str(failure.value), "database used is bound by api, shop: deploy without its binding first"
        )
        self.assertEqual(self.successResultOf(self.databases.get("used")), record)
