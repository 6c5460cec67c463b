"""
One D1 database: its own SQLite file, C{<data-dir>/d1/<id>.sqlite3}, named by the id
funcplane made (32 hex digits, never a user's string), and the one connection to it,
opened on first use and used from one thread at a time: every call waits its turn on a
L{DeferredLock}, then runs in the given thread pool.  The reactor never waits on SQLite.
"""

import os
import re

import pysqlite3.dbapi2 as sqlite3
from twisted.internet.defer import DeferredLock

from funcplane.d1.sql import Runner
from funcplane.errors import NoSuchDatabase

_ID = re.compile(r"[0-9a-f]{32}\Z")
# The files of a database: the database itself and its write-ahead log.
_SUFFIXES = ("", "-wal", "-shm", "-journal")


def database_path(directory, database_id):
    """
    The file of database C{database_id} in C{directory}.

    @raise ValueError: C{database_id} is not 32 lower-case hex digits.
    """
    if not _ID.match(database_id):
        raise ValueError(f"not a database id: {database_id[:40]!r}")
    return os.path.join(directory, f"{database_id}.sqlite3")


def remove_files(path):
    """
    Remove the database file at C{path} and its journals (blocking).
    """
    for suffix in _SUFFIXES:
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass


class Database:
    """
    A database's file and connection.

    @param path: its file (L{database_path}).
    @param limits: the L{funcplane.d1.sql.Limits}.
    @param in_thread: C{in_thread(f, *args)} runs C{f} off the reactor thread and returns a
        Deferred of its result.
    """

    def __init__(self, path, limits, in_thread):
        self.path = path
        self._limits = limits
        self._in_thread = in_thread
        self._lock = DeferredLock()
        self._connection = None
        self._runner = None

    def _open(self, create=False):
        if self._runner is None:
            if create:
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            elif not os.path.exists(self.path):
                # Deleted meanwhile: never made again by a query that was already on its way.
                raise NoSuchDatabase("The database could not be found: it was deleted")
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = FULL")
                connection.execute("PRAGMA foreign_keys = ON")
                (page,) = connection.execute("PRAGMA page_size").fetchone()
                connection.execute(f"PRAGMA max_page_count = {max(1, self._limits.max_bytes // page)}")
            except BaseException:
                connection.close()
                raise
            self._connection, self._runner = connection, Runner(connection, self._limits)
        return self._runner

    def _call(self, f, *args):
        def opened():
            return f(self._open(), *args)

        return self._lock.run(self._in_thread, opened)

    def create(self):
        """
        Make the database's file (0600), empty; a Deferred.
        """

        def create():
            self._open(create=True)

        return self._lock.run(self._in_thread, create)

    def run(self, queries, rows_as="objects"):
        """
        A Deferred of the D1 results of C{queries} (L{funcplane.d1.sql.Statement}s), run in
        one transaction; it fails with L{funcplane.errors.SQLError}.
        """
        return self._call(Runner.run, queries, rows_as)

    def info(self):
        """
        A Deferred of C{(size in bytes, number of tables)}.
        """
        return self._call(lambda runner: (runner.size(), runner.tables()))

    def close(self):
        """
        Close the connection once the calls before have run; a Deferred.
        """

        def close():
            connection, self._connection, self._runner = self._connection, None, None
            if connection is not None:
                connection.close()

        return self._lock.run(self._in_thread, close)

    def remove(self):
        """
        Close the connection and remove the files; a Deferred.
        """

        def remove():
            connection, self._connection, self._runner = self._connection, None, None
            if connection is not None:
                connection.close()
            remove_files(self.path)

        return self._lock.run(self._in_thread, remove)
