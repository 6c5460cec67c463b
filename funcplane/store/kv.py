"""
Workers KV in the functions' database (tables C{kv_namespaces} and C{kv_keys},
L{funcplane.store.schema}): the namespaces and their keys, as functions of a cursor, and
L{SQLiteKV}, which runs each in one transaction of the store's pool.

The rules (limits, what expires when) are L{funcplane.kv}'s; here every read leaves out
the keys expired at the C{now} it is given, and deletes them as it goes.
"""

import attrs

from funcplane import errors


@attrs.frozen
class Namespace:
    """
    A KV namespace: its id (32 hex digits, funcplane's), its title, when it was made.
    """

    id: str
    title: str
    created_at: float


@attrs.frozen
class Entry:
    """
    A key's name, metadata (JSON text or L{None}), expiration (POSIX seconds or L{None})
    and, when it was read, its value (bytes; L{None} in a list).
    """

    name: str
    metadata: str | None
    expiration: int | None
    value: bytes | None = None


_LIVE = "(expiration IS NULL OR expiration > ?)"


def _namespace(txn, namespace_id):
    txn.execute("SELECT id, title, created_at FROM kv_namespaces WHERE id = ?", (namespace_id,))
    row = txn.fetchone()
    if row is None:
        raise errors.NoSuchNamespace(f"namespace {namespace_id[:64]!r} not found")
    return Namespace(*row)


def _title_free(txn, title, namespace_id=None):
    txn.execute("SELECT id FROM kv_namespaces WHERE title = ?", (title,))
    row = txn.fetchone()
    if row is not None and row[0] != namespace_id:
        raise errors.NamespaceTaken(f"a namespace with this account ID and title already exists: {title!r}")


def create_namespace(txn, namespace_id, title, now):
    _title_free(txn, title)
    txn.execute(
        "INSERT INTO kv_namespaces (id, title, created_at) VALUES (?, ?, ?)",
        (namespace_id, title, now),
    )
    return Namespace(namespace_id, title, now)


def namespace(txn, namespace_id):
    return _namespace(txn, namespace_id)


_ORDERS = {"id": "id", "title": "title"}


def namespaces(txn, offset, limit, order="id", descending=False):
    """
    C{(total, namespaces)}: how many there are, and C{limit} of them from C{offset}, by
    C{order} (C{"id"} or C{"title"}).
    """
    txn.execute("SELECT count(*) FROM kv_namespaces")
    (total,) = txn.fetchone()
    direction = "DESC" if descending else "ASC"
    txn.execute(
        f"SELECT id, title, created_at FROM kv_namespaces ORDER BY {_ORDERS[order]} {direction}"
        " LIMIT ? OFFSET ?",
        (limit, offset),
    )
    return total, [Namespace(*row) for row in txn.fetchall()]


def rename_namespace(txn, namespace_id, title):
    _namespace(txn, namespace_id)
    _title_free(txn, title, namespace_id)
    txn.execute("UPDATE kv_namespaces SET title = ? WHERE id = ?", (title, namespace_id))
    return _namespace(txn, namespace_id)


def delete_namespace(txn, namespace_id):
    _namespace(txn, namespace_id)
    txn.execute("DELETE FROM kv_namespaces WHERE id = ?", (namespace_id,))


def _purge(txn, namespace_id, now):
    txn.execute(
        "DELETE FROM kv_keys WHERE namespace_id = ? AND expiration IS NOT NULL AND expiration <= ?",
        (namespace_id, now),
    )


def get(txn, namespace_id, name, now):
    """
    The L{Entry} of key C{name}, with its value.

    @raise NoSuchKey: it does not exist, or has expired (and is deleted).
    """
    _namespace(txn, namespace_id)
    txn.execute(
        "SELECT metadata, expiration, value FROM kv_keys WHERE namespace_id = ? AND name = ?",
        (namespace_id, name),
    )
    row = txn.fetchone()
    if row is not None and row[1] is not None and row[1] <= now:
        txn.execute("DELETE FROM kv_keys WHERE namespace_id = ? AND name = ?", (namespace_id, name))
        row = None
    if row is None:
        raise errors.NoSuchKey("get: 'key not found'")
    return Entry(name, row[0], row[1], bytes(row[2]))


def get_many(txn, namespace_id, names, now):
    """
    A dict from each of C{names} to its L{Entry}, or L{None} when it has none.
    """
    found = {}
    for name in names:
        try:
            found[name] = get(txn, namespace_id, name, now)
        except errors.NoSuchKey:
            found[name] = None
    return found


def keys(txn, namespace_id, prefix, after, limit, now):
    """
    Up to C{limit} L{Entry}s (without values) whose names start with C{prefix} and come
    after C{after} (L{None}: from the first), in order, and whether more follow.
    """
    _namespace(txn, namespace_id)
    _purge(txn, namespace_id, now)
    query = f"SELECT name, metadata, expiration FROM kv_keys WHERE namespace_id = ? AND {_LIVE}"
    arguments = [namespace_id, now]
    if prefix:
        query += " AND name >= ? AND substr(name, 1, length(?)) = ?"
        arguments += [prefix, prefix, prefix]
    if after is not None:
        query += " AND name > ?"
        arguments.append(after)
    txn.execute(query + " ORDER BY name LIMIT ?", (*arguments, limit + 1))
    rows = txn.fetchall()
    return [Entry(*row) for row in rows[:limit]], len(rows) > limit


def put(txn, namespace_id, entries):
    """
    Write C{entries} (L{Entry}s with values), replacing keys of the same names.
    """
    _namespace(txn, namespace_id)
    txn.executemany(
        "INSERT INTO kv_keys (namespace_id, name, value, metadata, expiration)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace_id, name) DO UPDATE SET"
        " value = excluded.value, metadata = excluded.metadata, expiration = excluded.expiration",
        [(namespace_id, e.name, e.value, e.metadata, e.expiration) for e in entries],
    )
    return len(entries)


def delete(txn, namespace_id, names):
    """
    Delete the keys C{names}; deleting a key that does not exist is no error.
    """
    _namespace(txn, namespace_id)
    txn.executemany(
        "DELETE FROM kv_keys WHERE namespace_id = ? AND name = ?",
        [(namespace_id, name) for name in names],
    )


def bound_by(txn, namespace_id):
    """
    C{"function:version BINDING"} for each binding of namespace C{namespace_id} by a
    deployed version: a function's latest, one of its newest deployment's, or an alias's.
    """
    txn.execute(
        "SELECT f.name, v.name, json_extract(b.value, '$[0]')"
        " FROM versions v JOIN functions f ON f.id = v.function_id, json_each(v.bindings) b"
        " WHERE json_extract(b.value, '$[1]') = 'kv_namespace'"
        " AND json_extract(b.value, '$[2]') = ?"
        " AND (v.id = f.latest_version_id"
        "  OR v.id IN (SELECT version_id FROM aliases WHERE function_id = f.id)"
        "  OR v.id IN (SELECT dv.version_id FROM deployment_versions dv"
        "   WHERE dv.deployment_id = (SELECT d.id FROM deployments d WHERE d.function_id = f.id"
        "    ORDER BY d.created_at DESC, d.rowid DESC LIMIT 1)))"
        " ORDER BY f.name, v.name",
        (namespace_id,),
    )
    return [f"{function}:{version} {binding}" for function, version, binding in txn.fetchall()]


def purge(txn, now):
    """
    Delete every key expired at C{now}; return how many.
    """
    txn.execute("DELETE FROM kv_keys WHERE expiration IS NOT NULL AND expiration <= ?", (now,))
    return txn.rowcount


class SQLiteKV:
    """
    The KV namespaces and keys, in the database of an L{funcplane.store.sqlite.SQLiteStore}
    (which opens, migrates and closes it).  Every method returns a Deferred.
    """

    def __init__(self, store):
        self._store = store

    def create_namespace(self, namespace_id, title, now):
        return self._store.interaction(create_namespace, namespace_id, title, now)

    def namespace(self, namespace_id):
        return self._store.interaction(namespace, namespace_id)

    def namespaces(self, offset, limit, order="id", descending=False):
        return self._store.interaction(namespaces, offset, limit, order, descending)

    def rename_namespace(self, namespace_id, title):
        return self._store.interaction(rename_namespace, namespace_id, title)

    def delete_namespace(self, namespace_id):
        return self._store.interaction(delete_namespace, namespace_id)

    def get(self, namespace_id, name, now):
        return self._store.interaction(get, namespace_id, name, now)

    def get_many(self, namespace_id, names, now):
        return self._store.interaction(get_many, namespace_id, tuple(names), now)

    def keys(self, namespace_id, prefix, after, limit, now):
        return self._store.interaction(keys, namespace_id, prefix, after, limit, now)

    def put(self, namespace_id, entries):
        return self._store.interaction(put, namespace_id, tuple(entries))

    def delete(self, namespace_id, names):
        return self._store.interaction(delete, namespace_id, tuple(names))

    def purge(self, now):
        return self._store.interaction(purge, now)

    def bound_by(self, namespace_id):
        return self._store.interaction(bound_by, namespace_id)
