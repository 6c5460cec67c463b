"""
The data directory: its lock, its private directories, and what an earlier funcplane that
did not stop cleanly left in it.
"""

import fcntl
import os

from twisted.application.service import Service
from twisted.logger import Logger

from funcplane.runtime.process import clean_run_dir, make_children_directory

DATABASE = "funcplane.sqlite3"
RUN_DIR = "run"
LOCK = "funcplane.lock"


class DataDirInUse(Exception):
    """
    Another funcplane holds the data directory's lock.
    """


def lock_data_dir(data_dir):
    """
    Take the data directory's lock, so that two funcplanes never share one (each would
    kill the other's children at start); returns the open lock file, held until closed.
    """
    path = os.path.join(data_dir, LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise DataDirInUse(
            f"another funcplane (pid {holder}) is using {data_dir}; stop it or choose"
            " another --data-dir"
        )
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode("ascii"))
    return fd


def private_directory(path):
    """
    Create C{path} (and parents) if missing and make it readable by funcplane's user only.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _counted(count, noun, plural):
    return f"{count} {noun}{'' if count == 1 else plural}"


class DataDirectory(Service):
    """
    Holds the data directory for as long as it runs: when it starts it creates the
    directory and its C{run/} (0700), takes the lock (or fails with L{DataDirInUse}), and
    kills the children and removes the sockets an earlier funcplane left in C{run/}; when
    it stops it lets the lock go.

    @param path: the data directory, absolute.
    """

    log = Logger()

    def __init__(self, path):
        self.path = path
        self.run_dir = os.path.join(path, RUN_DIR)
        self.database = os.path.join(path, DATABASE)
        self._lock = None

    def startService(self):
        super().startService()
        private_directory(self.path)
        self._lock = lock_data_dir(self.path)
        private_directory(self.run_dir)
        make_children_directory(self.run_dir)
        orphans, sockets = clean_run_dir(self.run_dir)
        if orphans or sockets:
            done = []
            if orphans:
                done.append(f"killed {_counted(orphans, 'of its workerd process', 'es')}")
            if sockets:
                done.append(f"removed {_counted(sockets, 'stale socket', 's')}")
            self.log.warn(
                "an earlier funcplane did not stop cleanly: {done}",
                done=" and ".join(done),
                orphans=orphans,
                sockets=sockets,
            )

    def stopService(self):
        super().stopService()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
