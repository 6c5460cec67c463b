"""
One change at a time per function: a C{DeferredLock} for each name that has a change in
progress, made when the first change asks for it and dropped once nobody holds or waits for
it, so that memory grows with the changes under way, never with the functions ever changed.
"""

from contextlib import asynccontextmanager

from twisted.internet.defer import DeferredLock


class KeyedLocks:
    """
    Locks by name, compared case-insensitively (as function names are).
    """

    def __init__(self):
        self._locks = {}

    def __len__(self):
        """
        How many names have a change in progress or waiting.
        """
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, name):
        """
        Hold the lock of C{name} for the body of an C{async with}: the body waits until
        every change to C{name} begun before it has ended (in order), and the next one
        waits for it.  Cancelled while waiting, it never holds the lock.
        """
        key = name.lower()
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = DeferredLock()
        try:
            await lock.acquire()
            try:
                yield
            finally:
                # The next waiter, if any, is handed the lock (and may run) before this
                # returns.
                lock.release()
        finally:
            if not lock.locked and not lock.waiting and self._locks.get(key) is lock:
                del self._locks[key]
