"""
Each function's cron triggers, in the functions' database (table C{schedules},
L{funcplane.store.schema}): what the Cloudflare API puts and lists, and the last time each
fired, claimed before it runs so that no scheduled time runs twice, even after a restart.
Deleting a function deletes its schedules with it (C{ON DELETE CASCADE}).
"""

from zope.interface import implementer

from funcplane.interfaces import ISchedules
from funcplane.model import Schedule, Target
from funcplane.store import queries

CLAIMED = "claimed"
FIRED = "fired"
GONE = "gone"

_COLUMNS = "cron, created_at, modified_at, last_fired"


def _schedules(txn, function_id):
    txn.execute(
        f"SELECT {_COLUMNS} FROM schedules WHERE function_id = ? ORDER BY position",
        (function_id,),
    )
    return tuple(Schedule(*row) for row in txn.fetchall())


def schedules(txn, function):
    """
    C{(stored name, schedules)} of C{function}.
    """
    function_id, name = queries.function_row(txn, function)[:2]
    return name, _schedules(txn, function_id)


def replace(txn, function, crons, now):
    """
    Make C{crons} (expressions, in order, without repeats) the schedules of C{function}:
    those it had already keep when they were added and when they last fired; the others
    are added at C{now}; those not given go.
    """
    function_id, name = queries.function_row(txn, function)[:2]
    kept = {s.cron: s for s in _schedules(txn, function_id)}
    txn.execute("DELETE FROM schedules WHERE function_id = ?", (function_id,))
    txn.executemany(
        "INSERT INTO schedules (function_id, position, cron, created_at, modified_at, last_fired)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                function_id,
                position,
                cron,
                kept[cron].created_at if cron in kept else now,
                kept[cron].modified_at if cron in kept else now,
                kept[cron].last_fired if cron in kept else None,
            )
            for position, cron in enumerate(crons)
        ],
    )
    return name, _schedules(txn, function_id)


def every(txn):
    """
    C{(function name, schedule)} for every schedule of every function, by function.
    """
    txn.execute(
        f"SELECT f.name, {', '.join('s.' + c for c in _COLUMNS.split(', '))}"
        " FROM schedules s JOIN functions f ON f.id = s.function_id ORDER BY f.key, s.position"
    )
    return [(row[0], Schedule(*row[1:])) for row in txn.fetchall()]


def _target(txn, function):
    txn.execute(
        "SELECT f.id, f.name, f.latest_version_id, v.name FROM functions f"
        " LEFT JOIN versions v ON v.id = f.latest_version_id WHERE f.key = ?",
        (function.lower(),),
    )
    row = txn.fetchone()
    if row is None:
        return None, None
    return row[0], Target(function=row[1], version_id=row[2], version=row[3])


def target(txn, function):
    """
    The L{Target} a scheduled event of C{function} runs on.
    """
    queries.function_row(txn, function)
    return _target(txn, function)[1]


def claim(txn, function, cron, tick):
    """
    Record that schedule C{cron} of C{function} fires for C{tick} unless it already has (for
    that time or a later one).  Returns C{(CLAIMED, target)}, C{(FIRED, target)} or
    C{(GONE, None)} when the function or the schedule no longer exists.
    """
    function_id, found = _target(txn, function)
    if function_id is None:
        return GONE, None
    txn.execute(
        "UPDATE schedules SET last_fired = ? WHERE function_id = ? AND cron = ?"
        " AND (last_fired IS NULL OR last_fired < ?)",
        (tick, function_id, cron, tick),
    )
    if txn.rowcount == 1:
        return CLAIMED, found
    txn.execute("SELECT 1 FROM schedules WHERE function_id = ? AND cron = ?", (function_id, cron))
    return (FIRED, found) if txn.fetchone() else (GONE, None)


@implementer(ISchedules)
class SQLiteSchedules:
    """
    The schedules, in the database of an L{funcplane.store.sqlite.SQLiteStore} (which
    opens, migrates and closes it).  See L{ISchedules}.
    """

    def __init__(self, store):
        self._store = store

    def schedules(self, function):
        return self._store.interaction(schedules, function)

    def replace(self, function, crons, now):
        return self._store.interaction(replace, function, tuple(crons), now)

    def every(self):
        return self._store.interaction(every)

    def target(self, function):
        return self._store.interaction(target, function)

    def claim(self, function, cron, tick):
        return self._store.interaction(claim, function, cron, tick)
