"""
Persistent state in SQLite, through C{twisted.enterprise.adbapi} over C{pysqlite3}: every
query runs on the pool's thread, never on the reactor's.  Each method is one transaction
made of the queries in L{funcplane.store.queries}; the pool and the schema's migrations
are in L{funcplane.store.database}.

The store keeps storage, not policy: what a deletion leaves serving is the platform's
decision (L{funcplane.platform.Platform.delete_version}); the store writes it, and only if
what the decision was made on still holds.
"""

from zope.interface import implementer

from funcplane.errors import Conflict, NoSuchAlias, NoSuchVersion
from funcplane.interfaces import IStore
from funcplane.model import DeploymentInfo
from funcplane.store import queries
from funcplane.store.database import migrate, thread_pool


def _deployment_metadata(metadata):
    return {key: metadata[key] for key in ("source", "message", "triggered_by") if key in metadata}


def _unchanged(txn, seen, current, what):
    """
    The id of function C{seen.name}, after checking that it still is C{seen} (a
    L{funcplane.model.FunctionInfo}) with the current deployment C{current}; else a
    L{Conflict} saying it changed while C{what}.
    """
    row = queries.function_row(txn, seen.name)
    function_id = row[0]
    now = queries.function_infos(txn, [row], function_id)[0]
    if now != seen or queries.current_deployment(txn, function_id) != current:
        raise Conflict(
            f"function {seen.name} changed while {what}; nothing was deleted, try again"
        )
    return function_id


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
        self._pool_factory = pool_factory or thread_pool
        self._pool = None

    def open(self):
        self._pool = self._pool_factory(self._path, self._reactor)
        return self._pool.runInteraction(migrate)

    def close(self):
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def interaction(self, interaction, *args):
        """
        Run C{interaction(txn, *args)} in one transaction of this database, for the stores
        of other things kept in it (L{funcplane.store.schedules}); a Deferred of its result.
        """
        return self._pool.runInteraction(interaction, *args)

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
        return self._pool.runInteraction(queries.check_publish, deployment, version_name)

    def publish(self, deployment, spec, created_at, deployment_id, built_on):
        def publish(txn):
            function_id = queries.check_publish(txn, deployment, spec.version)
            newest = queries.newest_version(txn, function_id)
            if (newest[0] if newest else None) != built_on:
                raise Conflict(
                    f"function {deployment.function} changed while version {spec.version}"
                    f" was being deployed (its newest version is now"
                    f" {newest[1] if newest else 'none'}, not the one this deploy built on);"
                    " nothing was deployed: send the change again"
                )
            if function_id is None:
                function_id = queries.insert_function(txn, deployment.function, created_at)
            queries.insert_version(txn, function_id, spec, deployment.metadata, created_at)
            if deployment.deploy:
                queries.record_deployment(
                    txn,
                    function_id,
                    DeploymentInfo(
                        id=deployment_id,
                        created_at=created_at,
                        versions=((spec.id, 100),),
                        metadata=_deployment_metadata(deployment.metadata),
                    ),
                )
            if deployment.alias is not None:
                queries.upsert_alias(txn, function_id, deployment.alias, spec.id)
            return queries.routes(txn, function_id)

        return self._pool.runInteraction(publish)

    def deploy(self, function, shares, created_at, deployment_id, metadata):
        def deploy(txn):
            function_id = queries.function_row(txn, function)[0]
            txn.execute("SELECT id FROM versions WHERE function_id = ?", (function_id,))
            known = {version_id for (version_id,) in txn.fetchall()}
            for version_id, _ in shares:
                if version_id not in known:
                    raise NoSuchVersion(f"function {function} has no version {version_id}")
            queries.record_deployment(
                txn,
                function_id,
                DeploymentInfo(
                    id=deployment_id,
                    created_at=created_at,
                    versions=tuple(shares),
                    metadata=metadata,
                ),
            )
            return queries.routes(txn, function_id)

        return self._pool.runInteraction(deploy)

    def deployments(self, function):
        def deployments(txn):
            return queries.deployments(txn, queries.function_row(txn, function)[0])

        return self._pool.runInteraction(deployments)

    def current_deployment(self, function):
        def current_deployment(txn):
            return queries.current_deployment(txn, queries.function_row(txn, function)[0])

        return self._pool.runInteraction(current_deployment)

    def set_latest(self, function, version, created_at, deployment_id, metadata):
        def set_latest(txn):
            function_id = queries.function_row(txn, function)[0]
            version_id = queries.version_id(txn, function_id, function, version)
            queries.record_deployment(
                txn,
                function_id,
                DeploymentInfo(
                    id=deployment_id,
                    created_at=created_at,
                    versions=((version_id, 100),),
                    metadata=metadata,
                ),
            )
            return queries.routes(txn, function_id)

        return self._pool.runInteraction(set_latest)

    def set_alias(self, function, alias, version):
        def set_alias(txn):
            function_id = queries.function_row(txn, function)[0]
            version_id = queries.version_id(txn, function_id, function, version)
            queries.check_alias_name(txn, function_id, function, alias)
            queries.upsert_alias(txn, function_id, alias, version_id)
            return queries.routes(txn, function_id)

        return self._pool.runInteraction(set_alias)

    def delete_alias(self, function, alias):
        def delete_alias(txn):
            function_id = queries.function_row(txn, function)[0]
            txn.execute(
                "DELETE FROM aliases WHERE function_id = ? AND key = ?",
                (function_id, alias.lower()),
            )
            if txn.rowcount == 0:
                raise NoSuchAlias(f"function {function} has no alias {alias}")
            return queries.routes(txn, function_id)

        return self._pool.runInteraction(delete_alias)

    def delete_version(self, seen, current, version_id, latest, replacement=None):
        def delete_version(txn):
            name = next((v.name for v in seen.versions if v.id == version_id), version_id)
            function_id = _unchanged(txn, seen, current, f"version {name} was being deleted")
            txn.execute(
                "DELETE FROM versions WHERE id = ? AND function_id = ?", (version_id, function_id)
            )
            if txn.rowcount == 0:
                raise NoSuchVersion(f"function {seen.name} has no version {version_id}")
            if replacement is not None:
                queries.insert_deployment(txn, function_id, replacement)
            queries.set_latest(txn, function_id, latest)
            return queries.routes(txn, function_id)

        return self._pool.runInteraction(delete_version)

    def delete_versions(self, seen, current, version_ids):
        def delete_versions(txn):
            function_id = _unchanged(txn, seen, current, "its old versions were being pruned")
            txn.executemany(
                "DELETE FROM versions WHERE id = ? AND function_id = ?",
                [(version_id, function_id) for version_id in version_ids],
            )
            return queries.routes(txn, function_id)

        return self._pool.runInteraction(delete_versions)

    def delete_function(self, function):
        def delete_function(txn):
            function_id = queries.function_row(txn, function)[0]
            txn.execute("SELECT id FROM versions WHERE function_id = ?", (function_id,))
            ids = [i for (i,) in txn.fetchall()]
            queries.set_latest(txn, function_id, None)
            txn.execute("DELETE FROM functions WHERE id = ?", (function_id,))
            return ids

        return self._pool.runInteraction(delete_function)

    def function(self, name):
        return self._pool.runInteraction(queries.function_info, name)

    def functions(self):
        def functions(txn):
            txn.execute(
                "SELECT id, name, created_at, latest_version_id FROM functions ORDER BY key"
            )
            return queries.function_infos(txn, txn.fetchall())

        return self._pool.runInteraction(functions)

    def version_spec(self, version_id):
        return self._pool.runInteraction(queries.version_spec, version_id)

    def routes(self):
        return self._pool.runInteraction(queries.all_routes)
