"""
The registry of D1 databases: which exist (table C{d1_databases} of funcplane's own
database, L{funcplane.store.schema}), by id and by unique name, and each one's file under
C{<data-dir>/d1} (0700), with the thread pool their SQL runs in.

Deleting a function leaves its databases, as on Cloudflare; deleting a database that a
deployed version binds is refused, naming the functions (C{bound_by}).
"""

import os
import re

import attrs
from twisted.application.service import Service
from twisted.internet.defer import DeferredList, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from funcplane.d1.database import Database, database_path
from funcplane.d1.sql import Limits
from funcplane.errors import DatabaseExists, DatabaseInUse, InvalidName, NoSuchDatabase
from funcplane.ids import new_id, plain_id

DIRECTORY = "d1"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
_COLUMNS = "id, name, created_at, location_hint"


@attrs.frozen
class DatabaseRecord:
    """
    A database as the registry holds it.
    """

    id: str
    name: str
    created_at: float
    location_hint: str | None = None


def check_name(name):
    """
    C{name} if it is a database name funcplane takes: 1 to 64 letters, digits, C{-} and
    C{_}, beginning with a letter or digit.

    @raise InvalidName: otherwise.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidName(
            f"database name {str(name)[:80]!r} is not valid: use 1 to 64 letters, digits,"
            " '-' and '_', beginning with a letter or digit"
        )
    return name


def _find(txn, id_or_name):
    digits = plain_id(id_or_name)
    txn.execute(
        f"SELECT {_COLUMNS} FROM d1_databases WHERE id = ? OR name = ? ORDER BY id = ? DESC",
        (digits or "", id_or_name, digits or ""),
    )
    row = txn.fetchone()
    if row is None:
        raise NoSuchDatabase(f"The database {id_or_name[:80]} could not be found")
    return DatabaseRecord(*row)


def _create(txn, record):
    txn.execute("SELECT 1 FROM d1_databases WHERE name = ?", (record.name,))
    if txn.fetchone() is not None:
        raise DatabaseExists("A database with that name already exists")
    txn.execute(
        f"INSERT INTO d1_databases ({_COLUMNS}) VALUES (?, ?, ?, ?)", attrs.astuple(record)
    )
    return record


def _every(txn, name):
    txn.execute(
        f"SELECT {_COLUMNS} FROM d1_databases WHERE instr(name, ?) > 0 ORDER BY created_at, id",
        (name or "",),
    )
    return [DatabaseRecord(*row) for row in txn.fetchall()]


def _delete(txn, database_id):
    txn.execute("DELETE FROM d1_databases WHERE id = ?", (database_id,))


def no_bindings(database_id):
    """
    Which functions' deployed versions bind C{database_id}: none, while no version can
    bind a database.
    """
    return succeed(())


class Databases(Service):
    """
    The registry, as a part of the service tree: when it starts it creates its directory
    (0700) and its thread pool; when it stops it closes every database, then the pool.

    @param store: the L{funcplane.store.sqlite.SQLiteStore} (its C{interaction}).
    @param path: the databases' directory (C{<data-dir>/d1}).
    @param reactor: the reactor (time, threads).
    @param limits: the L{Limits} of every database.
    @param bound_by: C{bound_by(database_id)} is a Deferred of the names of the functions
        whose deployed versions bind it (L{no_bindings} until a version can).
    @param in_thread: runs C{f(*args)} off the reactor thread, a Deferred of its result;
        by default the registry's own pool (tests pass one that runs at once).
    """

    def __init__(self, store, path, reactor, limits=Limits(), bound_by=no_bindings, in_thread=None, threads=4):
        self._store = store
        self.path = path
        self._reactor = reactor
        self.limits = limits
        self._bound_by = bound_by
        self._in_thread = in_thread
        self._threads = threads
        self._pool = None
        self._open = {}

    def startService(self):
        super().startService()
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        os.chmod(self.path, 0o700)
        if self._in_thread is None:
            self._pool = ThreadPool(minthreads=0, maxthreads=self._threads, name="funcplane-d1")
            self._pool.start()

    def stopService(self):
        super().stopService()
        opened, self._open = self._open, {}
        closed = DeferredList([db.close() for db in opened.values()], consumeErrors=True)
        return closed.addBoth(self._stop_pool)

    def _stop_pool(self, _):
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    def _run(self, f, *args):
        if self._in_thread is not None:
            return self._in_thread(f, *args)
        if self._pool is None:
            raise RuntimeError("the D1 registry has not started")
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    def _database(self, database_id):
        database = self._open.get(database_id)
        if database is None:
            path = database_path(self.path, database_id)
            database = self._open[database_id] = Database(path, self.limits, self._run)
        return database

    async def create(self, name, location_hint=None):
        """
        Make database C{name}: its row, then its file.  A L{DatabaseRecord}.

        @raise DatabaseExists: a database has that name.
        """
        record = DatabaseRecord(new_id(), check_name(name), self._reactor.seconds(), location_hint)
        await self._store.interaction(_create, record)
        try:
            await self._database(record.id).create()
        except BaseException:
            await self._store.interaction(_delete, record.id)
            raise
        return record

    def every(self, name=None):
        """
        A Deferred of every database (those whose name contains C{name}, when given),
        oldest first.
        """
        return self._store.interaction(_every, name)

    def get(self, id_or_name):
        """
        A Deferred of the L{DatabaseRecord} of C{id_or_name}: an id (plain or as a UUID),
        else a name (wrangler asks by name where it has no id).

        @raise NoSuchDatabase: none is.
        """
        return self._store.interaction(_find, id_or_name)

    def info(self, record):
        """
        A Deferred of C{(size in bytes, number of tables)} of database C{record}.
        """
        return self._database(record.id).info()

    def run(self, record, queries, rows_as="objects"):
        """
        A Deferred of the D1 results of C{queries} on database C{record}, in one
        transaction (L{funcplane.d1.sql.Runner.run}).
        """
        return self._database(record.id).run(queries, rows_as)

    async def delete(self, id_or_name):
        """
        Delete the database: its row, then its files.

        @raise NoSuchDatabase: it does not exist.
        @raise DatabaseInUse: a deployed version binds it.
        """
        record = await self.get(id_or_name)
        users = await self._bound_by(record.id)
        if users:
            raise DatabaseInUse(
                f"database {record.name} is bound by {', '.join(sorted(users))}: deploy"
                " without its binding first"
            )
        await self._store.interaction(_delete, record.id)
        database = self._database(record.id)
        del self._open[record.id]
        await database.remove()
        return record
