"""
Persistent state in SQLite, through C{twisted.enterprise.adbapi} over C{pysqlite3}: every
query runs on the pool's thread, never on the reactor's.
"""

import json
import os
from importlib.resources import files

from twisted.enterprise import adbapi
from zope.interface import implementer

from funcplane.errors import Conflict, NoSuchAlias, NoSuchFunction, NoSuchVersion
from funcplane.interfaces import IStore
from funcplane.model import FunctionInfo, FunctionRoutes, VersionInfo, VersionSpec


def migrations():
    """
    The schema migrations shipped with funcplane, as C{(number, sql)} in order.
    """
    found = []
    for entry in files("funcplane.schema").iterdir():
        stem, dot, suffix = entry.name.partition(".")
        if suffix == "sql" and stem[:4].isdigit():
            found.append((int(stem[:4]), entry.read_text()))
    return sorted(found)


def connected(connection):
    """
    Set up a new connection: foreign keys enforced, a busy timeout, write-ahead logging.
    """
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA busy_timeout = 5000")
    connection.execute("PRAGMA journal_mode = WAL")


def _thread_pool(path, reactor):
    """
    An adbapi pool with one connection to C{path}, which is created with mode 0600.
    """
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    pool = adbapi.ConnectionPool(
        "pysqlite3.dbapi2",
        path,
        check_same_thread=False,
        cp_min=1,
        cp_max=1,
        cp_openfun=connected,
        cp_reactor=reactor,
    )
    pool.start()
    return pool


def _migrate(txn):
    txn.execute("PRAGMA user_version")
    (current,) = txn.fetchone()
    for number, sql in migrations():
        if number > current:
            txn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    return current


def _function_row(txn, name):
    txn.execute(
        "SELECT id, name, created_at, latest_version_id FROM functions WHERE key = ?",
        (name.lower(),),
    )
    row = txn.fetchone()
    if row is None:
        raise NoSuchFunction(f"function {name} not found")
    return row


def _version_id(txn, function_id, function, version):
    txn.execute(
        "SELECT id FROM versions WHERE function_id = ? AND key = ?",
        (function_id, version.lower()),
    )
    row = txn.fetchone()
    if row is None:
        raise NoSuchVersion(f"function {function} has no version {version}")
    return row[0]


def _names(txn, table, function_id):
    txn.execute(f"SELECT key FROM {table} WHERE function_id = ?", (function_id,))
    return {key for (key,) in txn.fetchall()}


def _routes(txn, function_id):
    txn.execute("SELECT key, latest_version_id FROM functions WHERE id = ?", (function_id,))
    key, latest = txn.fetchone()
    txn.execute("SELECT key, id FROM versions WHERE function_id = ?", (function_id,))
    versions = dict(txn.fetchall())
    txn.execute("SELECT key, version_id FROM aliases WHERE function_id = ?", (function_id,))
    aliases = dict(txn.fetchall())
    return FunctionRoutes(function=key, latest=latest, versions=versions, aliases=aliases)


def _check_alias_name(txn, function_id, function, alias):
    if alias.lower() in _names(txn, "versions", function_id):
        raise Conflict(
            f"alias {alias} would have the same host as version {alias} of {function};"
            " choose another alias name"
        )


def _upsert_alias(txn, function_id, alias, version_id):
    txn.execute(
        "INSERT INTO aliases (function_id, name, key, version_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (function_id, key) DO UPDATE SET name = excluded.name,"
        " version_id = excluded.version_id",
        (function_id, alias, alias.lower(), version_id),
    )


def _check_publish(txn, deployment, version_name):
    """
    The id of C{deployment.function} (L{None} if it is new), after checking that
    C{version_name} and C{deployment.alias} can be added to it.
    """
    if deployment.alias is not None and deployment.alias.lower() == version_name.lower():
        raise Conflict(
            f"alias {deployment.alias} cannot have the same name as the version it points to"
        )
    txn.execute("SELECT id, name FROM functions WHERE key = ?", (deployment.function.lower(),))
    row = txn.fetchone()
    if row is None:
        return None
    function_id, name = row
    if name != deployment.function:
        raise Conflict(
            f"function {name} already exists and names differ only in case;"
            f" deploy to {name} instead"
        )
    key = version_name.lower()
    if key in _names(txn, "versions", function_id):
        raise Conflict(
            f"function {name} already has a version {version_name};"
            " versions cannot be replaced, choose a new version name"
        )
    if key in _names(txn, "aliases", function_id):
        raise Conflict(
            f"version {version_name} would have the same host as alias {version_name}"
            f" of {name}; choose another version name"
        )
    if deployment.alias is not None:
        _check_alias_name(txn, function_id, name, deployment.alias)
    return function_id


def _function_info(txn, row):
    function_id, name, created_at, latest_id = row
    txn.execute(
        "SELECT id, name, created_at FROM versions WHERE function_id = ?"
        " ORDER BY created_at, rowid",
        (function_id,),
    )
    versions = tuple(VersionInfo(id=i, name=n, created_at=c) for i, n, c in txn.fetchall())
    names = {v.id: v.name for v in versions}
    txn.execute(
        "SELECT name, version_id FROM aliases WHERE function_id = ? ORDER BY key",
        (function_id,),
    )
    aliases = tuple((alias, names[version_id]) for alias, version_id in txn.fetchall())
    return FunctionInfo(
        name=name,
        created_at=created_at,
        latest=names.get(latest_id),
        versions=versions,
        aliases=aliases,
    )


@implementer(IStore)
class SQLiteStore:
    """
    The store, in one SQLite file.  See L{IStore}.

    @param path: the database file; created with mode 0600 if missing.
    @param reactor: the reactor the pool reports back on.
    @param pool_factory: makes the connection pool from C{(path, reactor)}; tests pass one
        that runs queries inline.
    """

    def __init__(self, path, reactor, pool_factory=None):
        self._path = path
        self._reactor = reactor
        self._pool_factory = pool_factory or _thread_pool
        self._pool = None

    def open(self):
        self._pool = self._pool_factory(self._path, self._reactor)
        return self._pool.runInteraction(_migrate)

    def close(self):
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def get_setting(self, key):
        def get(txn):
            txn.execute("SELECT value FROM settings WHERE key = ?", (key,))
            row = txn.fetchone()
            return row[0] if row else None

        return self._pool.runInteraction(get)

    def put_setting(self, key, value):
        return self._pool.runOperation(
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def check_publish(self, deployment, version_name):
        """
        Raise what L{publish} would raise for these names, without writing anything, so that
        a deploy fails before it spawns a process.
        """
        return self._pool.runInteraction(_check_publish, deployment, version_name)

    def publish(self, deployment, version_id, version_name, created_at):
        def publish(txn):
            function_id = _check_publish(txn, deployment, version_name)
            if function_id is None:
                txn.execute(
                    "INSERT INTO functions (name, key, created_at) VALUES (?, ?, ?)",
                    (deployment.function, deployment.function.lower(), created_at),
                )
                function_id = txn.lastrowid
            key = version_name.lower()
            txn.execute(
                "INSERT INTO versions (id, function_id, name, key, format, code, env,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    version_id,
                    function_id,
                    version_name,
                    key,
                    deployment.format,
                    deployment.code,
                    json.dumps(dict(deployment.env)),
                    created_at,
                ),
            )
            txn.execute(
                "UPDATE functions SET latest_version_id = ? WHERE id = ?",
                (version_id, function_id),
            )
            if deployment.alias is not None:
                _upsert_alias(txn, function_id, deployment.alias, version_id)
            return _routes(txn, function_id)

        return self._pool.runInteraction(publish)

    def set_latest(self, function, version):
        def set_latest(txn):
            function_id = _function_row(txn, function)[0]
            version_id = _version_id(txn, function_id, function, version)
            txn.execute(
                "UPDATE functions SET latest_version_id = ? WHERE id = ?",
                (version_id, function_id),
            )
            return _routes(txn, function_id)

        return self._pool.runInteraction(set_latest)

    def set_alias(self, function, alias, version):
        def set_alias(txn):
            function_id = _function_row(txn, function)[0]
            version_id = _version_id(txn, function_id, function, version)
            _check_alias_name(txn, function_id, function, alias)
            _upsert_alias(txn, function_id, alias, version_id)
            return _routes(txn, function_id)

        return self._pool.runInteraction(set_alias)

    def delete_alias(self, function, alias):
        def delete_alias(txn):
            function_id = _function_row(txn, function)[0]
            txn.execute(
                "DELETE FROM aliases WHERE function_id = ? AND key = ?",
                (function_id, alias.lower()),
            )
            if txn.rowcount == 0:
                raise NoSuchAlias(f"function {function} has no alias {alias}")
            return _routes(txn, function_id)

        return self._pool.runInteraction(delete_alias)

    def delete_version(self, function, version, force):
        def delete_version(txn):
            function_id, _, _, latest_id = _function_row(txn, function)
            version_id = _version_id(txn, function_id, function, version)
            txn.execute(
                "SELECT name FROM aliases WHERE version_id = ? ORDER BY key", (version_id,)
            )
            aliases = [name for (name,) in txn.fetchall()]
            if not force and (version_id == latest_id or aliases):
                uses = (["it is the latest version"] if version_id == latest_id else []) + [
                    f"alias {a} points to it" for a in aliases
                ]
                raise Conflict(
                    f"version {version} of {function} is in use ({', '.join(uses)});"
                    " roll back or move the aliases first, or delete with ?force=true"
                )
            txn.execute("DELETE FROM versions WHERE id = ?", (version_id,))
            if version_id == latest_id:
                txn.execute(
                    "UPDATE functions SET latest_version_id = (SELECT id FROM versions"
                    " WHERE function_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1)"
                    " WHERE id = ?",
                    (function_id, function_id),
                )
            return version_id, _routes(txn, function_id)

        return self._pool.runInteraction(delete_version)

    def delete_function(self, function):
        def delete_function(txn):
            function_id = _function_row(txn, function)[0]
            txn.execute("SELECT id FROM versions WHERE function_id = ?", (function_id,))
            ids = [i for (i,) in txn.fetchall()]
            txn.execute("UPDATE functions SET latest_version_id = NULL WHERE id = ?", (function_id,))
            txn.execute("DELETE FROM functions WHERE id = ?", (function_id,))
            return ids

        return self._pool.runInteraction(delete_function)

    def function(self, name):
        return self._pool.runInteraction(lambda txn: _function_info(txn, _function_row(txn, name)))

    def functions(self):
        def functions(txn):
            txn.execute(
                "SELECT id, name, created_at, latest_version_id FROM functions ORDER BY key"
            )
            return [_function_info(txn, row) for row in txn.fetchall()]

        return self._pool.runInteraction(functions)

    def version_spec(self, version_id):
        def version_spec(txn):
            txn.execute(
                "SELECT f.name, v.name, v.code, v.format, v.env FROM versions v"
                " JOIN functions f ON f.id = v.function_id WHERE v.id = ?",
                (version_id,),
            )
            row = txn.fetchone()
            if row is None:
                raise NoSuchVersion(f"version {version_id} no longer exists")
            function, version, code, fmt, env = row
            return VersionSpec(
                id=version_id,
                function=function,
                version=version,
                code=code,
                format=fmt,
                env=tuple(sorted(json.loads(env).items())),
            )

        return self._pool.runInteraction(version_spec)

    def routes(self):
        def routes(txn):
            txn.execute("SELECT id FROM functions")
            return [_routes(txn, function_id) for (function_id,) in txn.fetchall()]

        return self._pool.runInteraction(routes)
