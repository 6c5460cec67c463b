"""
The store's SQL, as functions of a cursor inside one transaction.  A read of many
functions, versions or deployments costs a fixed number of queries, never one per row.
"""

import itertools
import json

from funcplane.errors import Conflict, NoSuchFunction, NoSuchVersion
from funcplane.model import (
    SECRET_TEXT,
    Assets,
    Binding,
    DeploymentInfo,
    FunctionInfo,
    FunctionRoutes,
    Module,
    VersionInfo,
    VersionSpec,
)

# The current deployment of each function (of one, with "WHERE f.id = ?"): the newest of
# its deployments that still has a version.
_CURRENT = (
    "SELECT d.function_id, d.id, d.created_at, d.metadata, dv.version_id, dv.percentage"
    " FROM deployments d JOIN deployment_versions dv ON dv.deployment_id = d.id"
    " WHERE d.id IN (SELECT (SELECT c.id FROM deployments c WHERE c.function_id = f.id"
    " AND EXISTS (SELECT 1 FROM deployment_versions x WHERE x.deployment_id = c.id)"
    " ORDER BY c.created_at DESC, c.rowid DESC LIMIT 1) FROM functions f {where})"
    " ORDER BY d.function_id, dv.percentage DESC, dv.version_id"
)


def _scope(column, function_id):
    """
    A C{WHERE} clause and its parameters limiting a query to one function, or to none.
    """
    if function_id is None:
        return "", ()
    return f"WHERE {column} = ?", (function_id,)


def _by_function(rows):
    """
    C{rows} whose first column is a function id, as lists of the other columns by id.
    """
    grouped = itertools.groupby(rows, lambda row: row[0])
    return {key: [row[1:] for row in group] for key, group in grouped}


def _deployments(rows):
    """
    L{DeploymentInfo}s from C{(id, created_at, metadata, version_id, percentage)} rows
    ordered by deployment; a deployment with no version left has one row of C{NULL}s.
    """
    return [
        DeploymentInfo(
            id=deployment_id,
            created_at=created_at,
            versions=tuple((v, p) for _, _, _, v, p in group if v is not None),
            metadata=json.loads(metadata),
        )
        for (deployment_id, created_at, metadata), group in itertools.groupby(
            rows, lambda row: row[:3]
        )
    ]


# Reads.


def function_row(txn, name):
    """
    C{(id, name, created_at, latest version id)} of function C{name}.
    """
    txn.execute(
        "SELECT id, name, created_at, latest_version_id FROM functions WHERE key = ?",
        (name.lower(),),
    )
    row = txn.fetchone()
    if row is None:
        raise NoSuchFunction(f"function {name} not found")
    return row


def version_id(txn, function_id, function, version):
    """
    The id of version C{version} (a name) of C{function}.
    """
    txn.execute(
        "SELECT id FROM versions WHERE function_id = ? AND key = ?",
        (function_id, version.lower()),
    )
    row = txn.fetchone()
    if row is None:
        raise NoSuchVersion(f"function {function} has no version {version}")
    return row[0]


def names(txn, table, function_id):
    """
    The keys (lower-case names) of C{function_id}'s versions or aliases.
    """
    txn.execute(f"SELECT key FROM {table} WHERE function_id = ?", (function_id,))
    return {key for (key,) in txn.fetchall()}


def newest_version(txn, function_id):
    """
    C{(id, name)} of the newest version of C{function_id} (the one a new version inherits
    from), or L{None} when it has none or C{function_id} is L{None} (a new function).
    """
    if function_id is None:
        return None
    txn.execute(
        "SELECT id, name FROM versions WHERE function_id = ?"
        " ORDER BY created_at DESC, rowid DESC LIMIT 1",
        (function_id,),
    )
    return txn.fetchone()


def current_deployments(txn, function_id=None):
    """
    The current L{DeploymentInfo} of every function (or of C{function_id}) by function id;
    a function with none is missing.  One query.
    """
    where, args = _scope("f.id", function_id)
    txn.execute(_CURRENT.format(where=where), args)
    return {
        key: _deployments(rows)[0] for key, rows in _by_function(txn.fetchall()).items()
    }


def current_deployment(txn, function_id):
    """
    The newest deployment of C{function_id} that still has a version, or L{None}.
    """
    return current_deployments(txn, function_id).get(function_id)


def deployments(txn, function_id):
    """
    Every L{DeploymentInfo} of C{function_id}, newest first, each with its shares largest
    first.  One query.
    """
    txn.execute(
        "SELECT d.id, d.created_at, d.metadata, dv.version_id, dv.percentage"
        " FROM deployments d LEFT JOIN deployment_versions dv ON dv.deployment_id = d.id"
        " WHERE d.function_id = ?"
        " ORDER BY d.created_at DESC, d.rowid DESC, dv.percentage DESC, dv.version_id",
        (function_id,),
    )
    return _deployments(txn.fetchall())


def all_routes(txn, function_id=None):
    """
    The L{FunctionRoutes} of every function (or of C{function_id}), by name, in four
    queries.
    """
    where, args = _scope("id", function_id)
    txn.execute(f"SELECT id, key, latest_version_id FROM functions {where} ORDER BY key", args)
    functions = txn.fetchall()
    where, args = _scope("function_id", function_id)
    txn.execute(f"SELECT function_id, key, id FROM versions {where} ORDER BY function_id", args)
    versions = _by_function(txn.fetchall())
    txn.execute(
        f"SELECT function_id, key, version_id FROM aliases {where} ORDER BY function_id", args
    )
    aliases = _by_function(txn.fetchall())
    current = current_deployments(txn, function_id)
    found = []
    for key, (name, latest) in ((row[0], row[1:]) for row in functions):
        shares = current[key].versions if key in current else ()
        found.append(
            FunctionRoutes(
                function=name,
                latest=latest,
                versions=dict(versions.get(key, ())),
                aliases=dict(aliases.get(key, ())),
                split=shares if len(shares) > 1 else (),
            )
        )
    return found


def routes(txn, function_id):
    """
    The L{FunctionRoutes} of C{function_id}.
    """
    [found] = all_routes(txn, function_id)
    return found


def bindings(text, reveal):
    """
    The L{Binding}s stored as C{text}; secrets' values only if C{reveal}.
    """
    return tuple(
        Binding(name, kind, value if reveal or kind != SECRET_TEXT else None)
        for name, kind, value in json.loads(text)
    )


def function_infos(txn, rows, function_id=None):
    """
    The L{FunctionInfo} of each function row (as L{function_row} gives), in order: every
    function's rows, or only C{function_id}'s.  Three queries however many functions.
    """
    where, args = _scope("function_id", function_id)
    txn.execute(
        "SELECT function_id, id, name, created_at, format, bindings, metadata,"
        " compatibility_date, compatibility_flags, assets IS NOT NULL FROM versions"
        f" {where} ORDER BY function_id, created_at, rowid",
        args,
    )
    versions = _by_function(txn.fetchall())
    where, args = _scope("a.function_id", function_id)
    txn.execute(
        "SELECT a.function_id, a.name, v.name FROM aliases a JOIN versions v"
        f" ON v.id = a.version_id {where} ORDER BY a.function_id, a.key",
        args,
    )
    aliases = _by_function(txn.fetchall())
    found = []
    for key, name, created_at, latest_id in rows:
        infos = tuple(
            VersionInfo(
                id=i,
                name=n,
                created_at=c,
                format=f,
                bindings=bindings(b, reveal=False),
                metadata=json.loads(m),
                compatibility_date=d,
                compatibility_flags=tuple(json.loads(fl)),
                has_assets=bool(a),
            )
            for i, n, c, f, b, m, d, fl, a in versions.get(key, ())
        )
        found.append(
            FunctionInfo(
                name=name,
                created_at=created_at,
                latest={v.id: v.name for v in infos}.get(latest_id),
                versions=infos,
                aliases=tuple(aliases.get(key, ())),
            )
        )
    return found


def function_info(txn, name):
    """
    The L{FunctionInfo} of function C{name}.
    """
    row = function_row(txn, name)
    [found] = function_infos(txn, [row], row[0])
    return found


def version_spec(txn, version_id):
    """
    The L{VersionSpec} of C{version_id}, secrets and all.
    """
    txn.execute(
        "SELECT f.name, v.name, v.format, v.bindings, v.compatibility_date,"
        " v.compatibility_flags, v.assets FROM versions v"
        " JOIN functions f ON f.id = v.function_id WHERE v.id = ?",
        (version_id,),
    )
    row = txn.fetchone()
    if row is None:
        raise NoSuchVersion(f"version {version_id} no longer exists")
    function, version, fmt, stored, date, flags, assets = row
    txn.execute(
        "SELECT name, kind, content FROM modules WHERE version_id = ? ORDER BY position",
        (version_id,),
    )
    modules = tuple(Module(name, kind, bytes(content)) for name, kind, content in txn.fetchall())
    return VersionSpec(
        id=version_id,
        function=function,
        version=version,
        format=fmt,
        modules=modules,
        bindings=bindings(stored, reveal=True),
        compatibility_date=date,
        compatibility_flags=tuple(json.loads(flags)),
        assets=assets_from_json(assets),
    )


def assets_to_json(assets):
    """
    The stored form of an L{Assets} (or L{None}).
    """
    if assets is None:
        return None
    return json.dumps(
        {"manifest": [list(pair) for pair in assets.manifest], "config": assets.config,
         "binding": assets.binding}
    )


def assets_from_json(text):
    """
    The L{Assets} stored as C{text} by L{assets_to_json} (or L{None}).
    """
    if text is None:
        return None
    stored = json.loads(text)
    return Assets(
        manifest=tuple(tuple(pair) for pair in stored["manifest"]),
        config=stored["config"],
        binding=stored["binding"],
    )


# Checks.


def check_alias_name(txn, function_id, function, alias):
    """
    Refuse an alias that would have the same host as a version.
    """
    if alias.lower() in names(txn, "versions", function_id):
        raise Conflict(
            f"alias {alias} would have the same host as version {alias} of {function};"
            " choose another alias name"
        )


def check_publish(txn, deployment, version_name):
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
    if key in names(txn, "versions", function_id):
        raise Conflict(
            f"function {name} already has a version {version_name};"
            " versions cannot be replaced, choose a new version name"
        )
    if key in names(txn, "aliases", function_id):
        raise Conflict(
            f"version {version_name} would have the same host as alias {version_name}"
            f" of {name}; choose another version name"
        )
    if deployment.alias is not None:
        check_alias_name(txn, function_id, name, deployment.alias)
    return function_id


# Writes.


def insert_function(txn, name, created_at):
    """
    Record a new function; return its id.
    """
    txn.execute(
        "INSERT INTO functions (name, key, created_at) VALUES (?, ?, ?)",
        (name, name.lower(), created_at),
    )
    return txn.lastrowid


def insert_version(txn, function_id, spec, metadata, created_at):
    """
    Record version C{spec} (a L{VersionSpec}) of C{function_id} with its modules.
    """
    txn.execute(
        "INSERT INTO versions (id, function_id, name, key, format, bindings, metadata,"
        " created_at, compatibility_date, compatibility_flags, assets)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            spec.id,
            function_id,
            spec.version,
            spec.version.lower(),
            spec.format,
            json.dumps([[b.name, b.type, b.value] for b in spec.bindings]),
            json.dumps(metadata),
            created_at,
            spec.compatibility_date,
            json.dumps(list(spec.compatibility_flags)),
            assets_to_json(spec.assets),
        ),
    )
    txn.executemany(
        "INSERT INTO modules (version_id, position, name, kind, content) VALUES (?, ?, ?, ?, ?)",
        [
            (spec.id, position, module.name, module.kind, module.content)
            for position, module in enumerate(spec.modules)
        ],
    )


def insert_deployment(txn, function_id, deployment):
    """
    Record C{deployment} (a L{DeploymentInfo}) as C{function_id}'s newest deployment.
    """
    txn.execute(
        "INSERT INTO deployments (id, function_id, created_at, metadata) VALUES (?, ?, ?, ?)",
        (deployment.id, function_id, deployment.created_at, json.dumps(deployment.metadata)),
    )
    txn.executemany(
        "INSERT INTO deployment_versions (deployment_id, version_id, percentage) VALUES (?, ?, ?)",
        [(deployment.id, version, percentage) for version, percentage in deployment.versions],
    )


def set_latest(txn, function_id, version):
    """
    Make version id C{version} (or L{None}) the latest of C{function_id}.
    """
    txn.execute("UPDATE functions SET latest_version_id = ? WHERE id = ?", (version, function_id))


def record_deployment(txn, function_id, deployment):
    """
    Make C{deployment} the function's deployment, and its largest share the latest version.
    """
    insert_deployment(txn, function_id, deployment)
    set_latest(txn, function_id, max(deployment.versions, key=lambda share: share[1])[0])


def upsert_alias(txn, function_id, alias, version):
    """
    Point C{alias} of C{function_id} at version id C{version}.
    """
    txn.execute(
        "INSERT INTO aliases (function_id, name, key, version_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (function_id, key) DO UPDATE SET name = excluded.name,"
        " version_id = excluded.version_id",
        (function_id, alias, alias.lower(), version),
    )
