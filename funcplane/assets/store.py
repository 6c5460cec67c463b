"""
The content-addressed store of asset files, shared by every version of every function:
C{<data-dir>/assets/<first two hex digits>/<hash>}.  A file is written once, atomically
(a dot-named temporary file in the same directory, flushed to disk, then renamed), and
never changed; versions reference files only through their manifests.

Only a hash that is exactly 32 lower-case hex digits is ever joined to the directory.  The
directories are 0711 and the files 0644, inside the data directory (0700): workerd
children, which may run as another user, reach the store only through a descriptor of its
directory that funcplane hands them, and can open a file only if they know its hash.

Nothing here blocks the reactor: every file operation runs in the store's own small
thread pool.
"""

import os
import tempfile

from twisted.application.service import Service
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from funcplane.assets.content import is_hash

DIRECTORY = "assets"
_DIR_MODE = 0o711
_FILE_MODE = 0o644


def blob_path(root, digest):
    """
    Where the file of C{digest} lives under C{root}.

    @raise ValueError: C{digest} is not an asset hash.
    """
    if not is_hash(digest):
        raise ValueError(f"not an asset hash: {digest[:40]!r}")
    return os.path.join(root, digest[:2], digest)


def _directory(path):
    os.makedirs(path, mode=_DIR_MODE, exist_ok=True)
    os.chmod(path, _DIR_MODE)


def missing(root, digests):
    """
    Those of C{digests} that have no file under C{root} (blocking).
    """
    return {digest for digest in digests if not os.path.exists(blob_path(root, digest))}


def write(root, digest, content):
    """
    Store C{content} as the file of C{digest} under C{root}, unless it is there already
    (blocking).  The caller has checked that C{content} hashes to C{digest}.
    """
    final = blob_path(root, digest)
    if os.path.exists(final):
        return False
    shard = os.path.dirname(final)
    if not os.path.isdir(shard):
        _directory(shard)
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=shard)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), _FILE_MODE)
        os.replace(temporary, final)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return True


class AssetStore(Service):
    """
    The store, as a part of the service tree: when it starts it creates its directory
    (0711) and its thread pool; when it stops it stops the pool.

    @param path: the store's directory, absolute (C{<data-dir>/assets}).
    @param reactor: an C{IReactorFromThreads} (and C{IReactorThreads}) provider.
    @param in_thread: C{in_thread(f, *args)} runs C{f} off the reactor thread and returns a
        Deferred of its result; by default the store's own pool (tests pass one that runs
        at once).
    """

    def __init__(self, path, reactor, in_thread=None, threads=2):
        self.path = path
        self._reactor = reactor
        self._in_thread = in_thread
        self._threads = threads
        self._pool = None

    def startService(self):
        super().startService()
        _directory(self.path)
        if self._in_thread is None:
            self._pool = ThreadPool(minthreads=0, maxthreads=self._threads, name="funcplane-assets")
            self._pool.start()

    def stopService(self):
        super().stopService()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    def run(self, f, *args):
        """
        Run C{f(*args)} off the reactor thread; a Deferred of its result.
        """
        if self._in_thread is not None:
            return self._in_thread(f, *args)
        if self._pool is None:
            raise RuntimeError("the asset store has not started")
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    def missing(self, digests):
        """
        A Deferred of the set of C{digests} the store has no file for.
        """
        return self.run(missing, self.path, tuple(digests))
