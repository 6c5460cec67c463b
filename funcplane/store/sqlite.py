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
from funcplane.model import (
    SECRET_TEXT,
    Binding,
    DeploymentInfo,
    FunctionInfo,
    FunctionRoutes,
    Module,
    VersionInfo,
    VersionSpec,
)


def migrations():
    """
    The schema migrations shipped with funcplane, as C{(number, sql)} in order.
    """
    found = []
    for entry in files("funcplane.store.schema").iterdir():
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
    current = _current_deployment(txn, function_id)
    split = current.versions if current is not None and len(current.versions) > 1 else ()
    return FunctionRoutes(
        function=key, latest=latest, versions=versions, aliases=aliases, split=split
    )


def _deployment_rows(txn, function_id, limit=-1):
    txn.execute(
        "SELECT id, created_at, metadata FROM deployments WHERE function_id = ?"
        " ORDER BY created_at DESC, rowid DESC LIMIT ?",
        (function_id, limit),
    )
    found = []
    for deployment_id, created_at, metadata in txn.fetchall():
        txn.execute(
            "SELECT version_id, percentage FROM deployment_versions WHERE deployment_id = ?"
            " ORDER BY percentage DESC, version_id",
            (deployment_id,),
        )
        found.append(
            DeploymentInfo(
                id=deployment_id,
                created_at=created_at,
                versions=tuple(txn.fetchall()),
                metadata=json.loads(metadata),
            )
        )
    return found


def _current_deployment(txn, function_id):
    """
    The newest deployment that still has a version, or L{None}.
    """
    for deployment in _deployment_rows(txn, function_id):
        if deployment.versions:
            return deployment
    return None


def _record_deployment(txn, function_id, deployment_id, shares, created_at, metadata):
    """
    Make C{shares} (C{(version id, percentage)} pairs) the function's deployment, and its
    largest share the latest version.
    """
    txn.execute(
        "INSERT INTO deployments (id, function_id, created_at, metadata) VALUES (?, ?, ?, ?)",
        (deployment_id, function_id, created_at, json.dumps(metadata)),
    )
    txn.executemany(
        "INSERT INTO deployment_versions (deployment_id, version_id, percentage) VALUES (?, ?, ?)",
        [(deployment_id, version_id, percentage) for version_id, percentage in shares],
    )
    main = max(shares, key=lambda share: share[1])[0]
    txn.execute("UPDATE functions SET latest_version_id = ? WHERE id = ?", (main, function_id))


def _redeploy_without(txn, function_id, current, version_id, created_at, deployment_id):
    """
    C{version_id}, which served the function's own host, is gone: the rest of its
    deployment serves on, or, if nothing is left of it, the newest remaining version takes
    the whole deployment.
    """
    rest = [share for share in current.versions if share[0] != version_id] if current else []
    if rest:
        main = max(rest, key=lambda share: share[1])[0]
        txn.execute("UPDATE functions SET latest_version_id = ? WHERE id = ?", (main, function_id))
        return
    txn.execute(
        "SELECT id FROM versions WHERE function_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
        (function_id,),
    )
    row = txn.fetchone()
    if row is None:
        txn.execute("UPDATE functions SET latest_version_id = NULL WHERE id = ?", (function_id,))
        return
    metadata = {"source": "api", "triggered_by": "delete"}
    _record_deployment(txn, function_id, deployment_id, [(row[0], 100)], created_at, metadata)


def _bindings(text, reveal):
    return tuple(
        Binding(name, kind, value if reveal or kind != SECRET_TEXT else None)
        for name, kind, value in json.loads(text)
    )


def _bindings_json(bindings):
    return json.dumps([[b.name, b.type, b.value] for b in bindings])


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
        "SELECT id, name, created_at, format, bindings, metadata FROM versions"
        " WHERE function_id = ? ORDER BY created_at, rowid",
        (function_id,),
    )
    versions = tuple(
        VersionInfo(
            id=i,
            name=n,
            created_at=c,
            format=f,
            bindings=_bindings(b, reveal=False),
            metadata=json.loads(m),
        )
        for i, n, c, f, b, m in txn.fetchall()
    )
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


def _modules(txn, version_id):
    txn.execute(
        "SELECT name, kind, content FROM modules WHERE version_id = ? ORDER BY position",
        (version_id,),
    )
    return tuple(Module(name, kind, bytes(content)) for name, kind, content in txn.fetchall())


def _deployment_metadata(metadata):
    return {key: metadata[key] for key in ("source", "message", "triggered_by") if key in metadata}


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

    def publish(self, deployment, spec, created_at, deployment_id):
        def publish(txn):
            function_id = _check_publish(txn, deployment, spec.version)
            if function_id is None:
                txn.execute(
                    "INSERT INTO functions (name, key, created_at) VALUES (?, ?, ?)",
                    (deployment.function, deployment.function.lower(), created_at),
                )
                function_id = txn.lastrowid
            txn.execute(
                "INSERT INTO versions (id, function_id, name, key, format, bindings, metadata,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.id,
                    function_id,
                    spec.version,
                    spec.version.lower(),
                    spec.format,
                    _bindings_json(spec.bindings),
                    json.dumps(deployment.metadata),
                    created_at,
                ),
            )
            txn.executemany(
                "INSERT INTO modules (version_id, position, name, kind, content)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (spec.id, position, module.name, module.kind, module.content)
                    for position, module in enumerate(spec.modules)
                ],
            )
            if deployment.deploy:
                _record_deployment(
                    txn,
                    function_id,
                    deployment_id,
                    [(spec.id, 100)],
                    created_at,
                    _deployment_metadata(deployment.metadata),
                )
            if deployment.alias is not None:
                _upsert_alias(txn, function_id, deployment.alias, spec.id)
            return _routes(txn, function_id)

        return self._pool.runInteraction(publish)

    def deploy(self, function, shares, created_at, deployment_id, metadata):
        def deploy(txn):
            function_id = _function_row(txn, function)[0]
            txn.execute("SELECT id FROM versions WHERE function_id = ?", (function_id,))
            known = {version_id for (version_id,) in txn.fetchall()}
            for version_id, _ in shares:
                if version_id not in known:
                    raise NoSuchVersion(f"function {function} has no version {version_id}")
            _record_deployment(txn, function_id, deployment_id, shares, created_at, metadata)
            return _routes(txn, function_id)

        return self._pool.runInteraction(deploy)

    def deployments(self, function):
        def deployments(txn):
            return _deployment_rows(txn, _function_row(txn, function)[0])

        return self._pool.runInteraction(deployments)

    def set_latest(self, function, version, created_at, deployment_id, metadata):
        def set_latest(txn):
            function_id = _function_row(txn, function)[0]
            version_id = _version_id(txn, function_id, function, version)
            _record_deployment(
                txn, function_id, deployment_id, [(version_id, 100)], created_at, metadata
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

    def delete_version(self, function, version, force, created_at, deployment_id):
        def delete_version(txn):
            function_id, _, _, latest_id = _function_row(txn, function)
            version_id = _version_id(txn, function_id, function, version)
            txn.execute(
                "SELECT name FROM aliases WHERE version_id = ? ORDER BY key", (version_id,)
            )
            aliases = [name for (name,) in txn.fetchall()]
            current = _current_deployment(txn, function_id)
            serving = current is not None and version_id in dict(current.versions)
            if not force and (version_id == latest_id or serving or aliases):
                uses = [f"alias {a} points to it" for a in aliases]
                if serving or version_id == latest_id:
                    uses.insert(
                        0,
                        "it is the latest version"
                        if version_id == latest_id
                        else "it serves part of the function's traffic",
                    )
                raise Conflict(
                    f"version {version} of {function} is in use ({', '.join(uses)});"
                    " roll back or move the aliases first, or delete with ?force=true"
                )
            txn.execute("DELETE FROM versions WHERE id = ?", (version_id,))
            if serving or version_id == latest_id:
                _redeploy_without(txn, function_id, current, version_id, created_at, deployment_id)
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
                "SELECT f.name, v.name, v.format, v.bindings FROM versions v"
                " JOIN functions f ON f.id = v.function_id WHERE v.id = ?",
                (version_id,),
            )
            row = txn.fetchone()
            if row is None:
                raise NoSuchVersion(f"version {version_id} no longer exists")
            function, version, fmt, bindings = row
            return VersionSpec(
                id=version_id,
                function=function,
                version=version,
                format=fmt,
                modules=_modules(txn, version_id),
                bindings=_bindings(bindings, reveal=True),
            )

        return self._pool.runInteraction(version_spec)

    def routes(self):
        def routes(txn):
            txn.execute("SELECT id FROM functions")
            return [_routes(txn, function_id) for (function_id,) in txn.fetchall()]

        return self._pool.runInteraction(routes)
