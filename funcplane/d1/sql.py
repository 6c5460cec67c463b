"""
What D1 does with one request's SQL on one database's connection, blocking (the caller
runs it in a thread, L{funcplane.d1.database}): the text split into statements (Python's
C{sqlite3} runs one at a time; wrangler sends whole files), every statement of a request in
one transaction, each under a deadline, and the answer shaped as D1's: one
C{{results, success, meta}} per statement.

A statement may not leave the database: C{ATTACH}, transactions of its own and the pragmas
that change limits or files are refused by an authorizer (D1 refuses them too), so the size
limit (C{max_page_count}) and the file named by funcplane are the only ones a database has.
"""

import time

import attrs
import pysqlite3.dbapi2 as sqlite3

from funcplane.errors import InvalidRequest, SQLError

# The pragmas a statement may use: reading the schema, and the switches D1 allows.
PRAGMAS = frozenset(
    {
        "table_list", "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
        "foreign_key_list", "foreign_key_check", "foreign_keys", "defer_foreign_keys",
        "case_sensitive_like", "ignore_check_constraints", "legacy_alter_table",
        "recursive_triggers", "reverse_unordered_selects", "quick_check", "integrity_check",
        "optimize", "collation_list", "function_list", "pragma_list", "module_list",
        "data_version", "freelist_count", "page_count", "page_size", "schema_version",
        "user_version", "application_id",
    }
)
# Pragmas above that only read when given a value would change the file or its limits.
READ_ONLY_PRAGMAS = frozenset({"page_size", "schema_version", "data_version", "page_count"})
_REFUSED = {
    sqlite3.SQLITE_ATTACH: "ATTACH is not allowed: a D1 database is one database",
    sqlite3.SQLITE_DETACH: "DETACH is not allowed: a D1 database is one database",
    sqlite3.SQLITE_TRANSACTION: (
        "BEGIN, COMMIT and ROLLBACK are not allowed: D1 runs each request in a transaction"
        " of its own"
    ),
    sqlite3.SQLITE_SAVEPOINT: (
        "SAVEPOINT and RELEASE are not allowed: D1 runs each request in a transaction of its own"
    ),
}
_PROGRESS_STEPS = 1000


@attrs.frozen
class Statement:
    """
    One statement of a request, and the values bound to it.
    """

    sql: str
    params: tuple = ()


def _is_blank(text):
    """
    Whether C{text} holds nothing but white space and comments.
    """
    at, end = 0, len(text)
    while at < end:
        if text[at].isspace() or text[at] == ";":
            at += 1
        elif text.startswith("--", at):
            newline = text.find("\n", at)
            at = end if newline < 0 else newline + 1
        elif text.startswith("/*", at):
            close = text.find("*/", at + 2)
            at = end if close < 0 else close + 2
        else:
            return False
    return True


def split(text):
    """
    The statements of C{text}, in order, each with its semicolon; comments and blank
    statements are left out.  A semicolon ends a statement only where SQLite says the
    statement is complete (not inside a string or a trigger's body).
    """
    statements, pending = [], ""
    for piece in text.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if not _is_blank(pending):
                statements.append(pending.strip())
            pending = ""
    if not _is_blank(pending[:-1]):
        statements.append(pending[:-1].strip())
    return statements


def value(given):
    """
    A bound value as SQLite takes it: D1's binding sends booleans as themselves and blobs
    as arrays of byte numbers.

    @raise InvalidRequest: for any other kind of value.
    """
    if given is None or isinstance(given, (str, float)):
        return given
    if isinstance(given, bool):
        return int(given)
    if isinstance(given, int):
        if not -(2**63) <= given < 2**63:
            raise InvalidRequest(f"the value {given} is too large for SQLite's 64-bit integers")
        return given
    if isinstance(given, list) and all(isinstance(b, int) and 0 <= b <= 255 for b in given):
        return bytes(given)
    raise InvalidRequest(f"Type '{type(given).__name__}' not supported for value {given!r:.80}")


def statements(sql, params=()):
    """
    The L{Statement}s of one C{{sql, params}} query; C{params} bind to its one statement.

    @raise InvalidRequest: params given to several statements, or no statement at all.
    """
    found = split(sql)
    if not found:
        raise InvalidRequest("No SQL statements detected.")
    if params:
        if len(found) > 1:
            raise InvalidRequest("params can be bound only to a query of one statement")
        return [Statement(found[0], tuple(value(p) for p in params))]
    return [Statement(s) for s in found]


def _cell(item):
    return list(item) if isinstance(item, bytes) else item


@attrs.frozen
class Limits:
    """
    What one statement may take: C{statement_seconds} of time, and the database at most
    C{max_bytes}.
    """

    statement_seconds: float = 30.0
    max_bytes: int = 500 * 1024 * 1024


class Runner:
    """
    Runs requests on one open connection (from one thread at a time).

    @param connection: a C{pysqlite3} connection with C{isolation_level=None}.
    @param limits: the L{Limits}.
    @param now: monotonic seconds, read in the running thread (the reactor's clock is not
        for other threads).
    """

    def __init__(self, connection, limits, now=time.monotonic):
        self._connection = connection
        self._limits = limits
        self._now = now
        self._guarding = False
        self._refused = None
        self._deadline = None
        connection.set_authorizer(self._authorize)
        connection.set_progress_handler(self._late, _PROGRESS_STEPS)

    def _authorize(self, action, first, second, database, trigger):
        if not self._guarding:
            return sqlite3.SQLITE_OK
        reason = _REFUSED.get(action)
        if action == sqlite3.SQLITE_PRAGMA:
            name = (first or "").lower()
            if name not in PRAGMAS or (second is not None and name in READ_ONLY_PRAGMAS):
                reason = f"PRAGMA {name} is not allowed in D1"
        if reason is None:
            return sqlite3.SQLITE_OK
        self._refused = reason
        return sqlite3.SQLITE_DENY

    def _late(self):
        return int(self._deadline is not None and self._now() > self._deadline)

    def _error(self, error):
        name = getattr(error, "sqlite_errorname", "SQLITE_ERROR")
        message = str(error)
        if self._refused is not None and name == "SQLITE_AUTH":
            message = self._refused
        elif name == "SQLITE_INTERRUPT":
            message = (
                f"the statement ran longer than {self._limits.statement_seconds:g} s"
                " (--d1-statement-timeout) and was interrupted"
            )
        elif name == "SQLITE_FULL":
            message = (
                f"the database is at its size limit, {self._limits.max_bytes / (1024 * 1024):g}"
                " MiB (--d1-max-database-mb): database or disk is full"
            )
        return SQLError(f"{message}: {name}")

    def size(self):
        """
        The database's size in bytes.
        """
        (pages,) = self._connection.execute("PRAGMA page_count").fetchone()
        (page,) = self._connection.execute("PRAGMA page_size").fetchone()
        return pages * page

    def tables(self):
        """
        How many tables the database has (SQLite's own and D1's bookkeeping left out).
        """
        (count,) = self._connection.execute(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'"
        ).fetchone()
        return count

    def run(self, queries, rows_as="objects"):
        """
        Run C{queries} (L{Statement}s) in one transaction: all of them, or on the first
        error none (the error is raised).  Return one D1 result for each.

        @param rows_as: C{"objects"} (C{results} is a list of objects) or C{"arrays"}
            (C{results} is C{{columns, rows}}, the C{/raw} shape).
        @raise SQLError: SQLite's message, for the statement that failed.
        """
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        answers = []
        try:
            for query in queries:
                answers.append(self._one(query, rows_as))
        except BaseException:
            # Some errors (SQLITE_FULL, an interrupt) have rolled back already.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        size = self.size()
        for answer in answers:
            answer["meta"]["size_after"] = size
        return answers

    def _one(self, query, rows_as):
        connection = self._connection
        before = connection.total_changes
        started = self._now()
        self._deadline = started + self._limits.statement_seconds
        self._guarding, self._refused = True, None
        try:
            cursor = connection.execute(query.sql, query.params)
            rows = cursor.fetchall()
        except sqlite3.Error as e:
            raise self._error(e) from None
        finally:
            self._guarding, self._deadline = False, None
        elapsed = (self._now() - started) * 1000
        columns = [d[0] for d in cursor.description or ()]
        changes = connection.total_changes - before
        if rows_as == "arrays":
            results = {"columns": columns, "rows": [[_cell(c) for c in row] for row in rows]}
        else:
            results = [{k: _cell(c) for k, c in zip(columns, row)} for row in rows]
        first = query.sql.lstrip().split(None, 1)[0].upper() if query.sql.strip() else ""
        return {
            "results": results,
            "success": True,
            "meta": {
                "served_by": "funcplane",
                "served_by_region": "local",
                "served_by_primary": True,
                "timings": {"sql_duration_ms": elapsed},
                "duration": elapsed,
                "changes": max(cursor.rowcount, 0) if changes else 0,
                "last_row_id": cursor.lastrowid or 0,
                "changed_db": bool(changes) or first in ("CREATE", "DROP", "ALTER"),
                "size_after": 0,
                "rows_read": len(rows),
                "rows_written": changes,
            },
        }
