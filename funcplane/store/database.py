"""
Opening the SQLite database: an C{adbapi} pool of one connection over C{pysqlite3}
(foreign keys enforced, a busy timeout, write-ahead logging) and the numbered schema
migrations shipped in L{funcplane.store.schema}.
"""

import os
from importlib.resources import files

from twisted.enterprise import adbapi


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


def thread_pool(path, reactor):
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


def migrate(txn):
    """
    Apply every migration newer than the database's C{user_version}, each in a transaction
    of its own; return the version the database had before.
    """
    txn.execute("PRAGMA user_version")
    (current,) = txn.fetchone()
    for number, sql in migrations():
        if number > current:
            txn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    return current
