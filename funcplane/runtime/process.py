"""
One workerd child: how it is spawned, and the process it is (how its pipes are read is in
L{funcplane.runtime.protocol}).

The child gets its config as a binary message on a memfd (so code and env values never touch
the disk), a listening unix socket made by funcplane in a 0700 directory (C{--socket-fd}),
beside it a second one for events that are not requests (L{funcplane.runtime.events}), and
a pipe on which it announces readiness (C{--control-fd}).  Its environment is empty.
"""

import os
import pwd
import shutil
import signal
import socket
import uuid

from twisted.internet.defer import maybeDeferred, succeed
from twisted.logger import Logger
from twisted.internet.threads import deferToThreadPool
from twisted.internet.error import ProcessExitedAlready
from zope.interface import implementer

from funcplane.errors import StartFailed
from funcplane.interfaces import IChild, IRuntimeLauncher
from funcplane.runtime.assets import ASSETS_FD
from funcplane.runtime import events, storage
from funcplane.runtime.config import SOCKET_NAME
from funcplane.runtime.lines import DEFAULT_MAX_LINE_BYTES
from funcplane.runtime.protocol import CONTROL_FD, WorkerdProtocol, _Observers

CONFIG_FD = 3
SOCKET_FD = 4


@implementer(IChild)
class Child:
    """
    A spawned workerd process.  See L{IChild}.

    It is ready once workerd listens and, when it is confined, once it is in its limits
    (C{confined}, a Deferred firing with an L{funcplane.runtime.limits.IConfinement}); a
    failure of either fails the start and kills the process.  A child whose version binds
    storage has a C{channel} (the listening port of its storage socket), closed when it ends.
    """

    log = Logger()

    def __init__(
        self,
        clock,
        spec,
        protocol,
        transport,
        socket_path,
        startup_timeout,
        confined=None,
        channel=None,
    ):
        self.spec = spec
        self._channel = channel
        self._ended = _Observers()
        self.socket_path = socket_path
        self._clock = clock
        self._protocol = protocol
        self._transport = transport
        self._ready = _Observers()
        self._waiting_for = {"listen", "limits"}
        self._confinement = None
        self._timeout = clock.callLater(startup_timeout, self._startup_timed_out, startup_timeout)
        self._kill_call = None
        protocol.ended.when().addCallback(self._remove_socket)
        protocol.ended.when().addCallback(self._release)
        protocol.ready.when().addCallback(self._done, "listen")
        (confined if confined is not None else succeed(None)).addCallbacks(
            self._confined, self._not_confined
        )
        self._ready.when().addCallback(self._settled)
        protocol.ended.when().addCallback(self._settled)
        protocol.ended.when().addCallback(self._close_channel)

    @property
    def pid(self):
        return self._transport.pid

    def _done(self, result, what):
        if isinstance(result, Exception):
            self._ready.fire(result)
            return
        self._waiting_for.discard(what)
        if not self._waiting_for:
            self._ready.fire(True)

    def _confined(self, confinement):
        self._confinement = confinement
        if self._protocol.ended.done:
            # It exited while it was being confined.
            self._release(None)
        self._done(True, "limits")

    def _not_confined(self, failure):
        self.abort(StartFailed(f"funcplane could not apply its resource limits: {failure.value}"))

    def _settled(self, _):
        if self._timeout.active():
            self._timeout.cancel()
        if self._protocol.ended.done and self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()

    def _close_channel(self, reason):
        # The storage socket (funcplane.runtime.storage) lives as long as the child: it has
        # ended only once that socket is closed and removed.
        if self._channel is None:
            self._ended.fire(reason)
            return
        closing = maybeDeferred(self._channel.stopListening)
        closing.addErrback(lambda f: self.log.failure("closing a child's storage socket failed", f))
        closing.addCallback(lambda _: self._ended.fire(reason))

    def _remove_socket(self, _):
        # workerd never removes its socket; this runs before anyone can start the version
        # again, so the path is still this child's.  Its events socket goes with it.
        for path in (self.socket_path, events.events_socket_path(self.socket_path)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _release(self, _):
        # Runs before the supervisor hears of the exit, so that its report and the logs
        # say why the kernel killed the child.
        confinement, self._confinement = self._confinement, None
        if confinement is None:
            return
        if confinement.out_of_memory():
            self._protocol.note("killed by the kernel: it used more than its memory limit")
        confinement.release()

    def _startup_timed_out(self, seconds):
        self.abort(
            StartFailed(
                f"the script did not become ready within {seconds:g} seconds"
                " (does its top-level code loop or wait forever?)",
                reason="StartupTimeout",
            )
        )

    def abort(self, failure):
        """
        Fail the start with C{failure} (a L{StartFailed}) and SIGKILL the process.
        """
        self._ready.fire(failure)
        self.signal(signal.SIGKILL)

    def when_ready(self):
        def check(result):
            if isinstance(result, Exception):
                raise result
            return self

        return self._ready.when().addCallback(check)

    def when_ended(self):
        return self._ended.when()

    def stderr_tail(self):
        """
        The last lines the child wrote to stderr.
        """
        return list(self._protocol.stderr_tail)

    def signal(self, signum):
        """
        Send C{signum}, unless the process has already exited.
        """
        try:
            self._transport.signalProcess(signum)
        except ProcessExitedAlready:
            pass

    def stop(self, grace):
        if not self._protocol.ended.done:
            self.signal(signal.SIGTERM)
            # A frozen (SIGSTOPped) child acts on SIGTERM only once it continues.
            self.signal(signal.SIGCONT)
            if self._kill_call is None:
                self._kill_call = self._clock.callLater(grace, self.signal, signal.SIGKILL)
        return self.when_ended()


def bind_unix_socket(path):
    """
    A listening unix socket at C{path}, replacing any stale one, readable and writable by
    funcplane's user only.
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return sock


def find_env():
    """
    coreutils' C{env}, which can change a child's directory before it runs workerd.
    """
    return shutil.which("env")


def find_setpriv():
    """
    util-linux's C{setpriv}, which makes the kernel kill a child when funcplane dies
    (C{--pdeathsig}), or L{None} when this machine has none.
    """
    return shutil.which("setpriv")


@implementer(IRuntimeLauncher)
class WorkerdLauncher:
    """
    Spawns workerd children.

    Each child listens on a socket of its own, named by a fresh random id, so a version
    that is woken while its previous child is still finishing never shares a path with it.
    Where C{setpriv} exists, a child is spawned through it with C{--pdeathsig KILL}: if
    funcplane is killed outright, its children die with it.

    @param reactor: an C{IReactorProcess} and C{IReactorTime} provider.
    @param binary: the absolute path of workerd.
    @param run_dir: a private (0700) directory for the children's sockets.
    @param builder: a L{funcplane.runtime.config.ConfigBuilder}.
    @param logbook: a L{funcplane.observe.logbook.LogBook} that keeps what the children print.
    @param setpriv: the path of C{setpriv}, or L{None} to spawn workerd directly.
    @param user: C{(uid, gid)} the children run as (through C{setpriv}), or L{None} for
        funcplane's own.
    @param limits: an L{funcplane.runtime.limits.IChildLimits} that confines each child,
        or L{None}.
    @param env: the path of coreutils' C{env}, through which a child is spawned to change
        to its working directory (so that Twisted can use C{posix_spawn}), or L{None}.
    @param in_thread: C{in_thread(f, *args)} runs C{f} off the reactor thread and returns
        a Deferred of its result (by default in the reactor's thread pool).
    @param assets_dir: the asset store's directory, of which a child whose version has
        assets gets a descriptor (L{funcplane.runtime.assets.ASSETS_FD}), or L{None}.
    @param max_line_bytes: the longest line of a child's output that is kept; the rest of
        a longer one is dropped (and the line says how much).
    @param storage: the L{funcplane.runtime.storage.StorageChannel} that gives a child
        whose version binds KV namespaces its storage socket, or L{None} (such a version
        then does not start).
    """

    def __init__(
        self,
        reactor,
        binary,
        run_dir,
        builder,
        startup_timeout=5.0,
        logbook=None,
        setpriv=None,
        user=None,
        limits=None,
        in_thread=None,
        env=None,
        max_line_bytes=DEFAULT_MAX_LINE_BYTES,
        assets_dir=None,
        storage=None,
    ):
        self._storage = storage
        self._reactor = reactor
        self._binary = binary
        self._run_dir = run_dir
        self._builder = builder
        self._startup_timeout = startup_timeout
        self._logbook = logbook
        self._setpriv = setpriv
        self._user = user
        self._limits = limits
        self._env = env
        self._max_line_bytes = max_line_bytes
        self._assets_dir = assets_dir
        self._in_thread = in_thread or (
            lambda f, *args: deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)
        )

    def _command(self, takes_events=False):
        workerd = [
            self._binary,
            "serve",
            "--verbose",
            "--binary",
            f"/proc/self/fd/{CONFIG_FD}",
            "--socket-fd",
            f"{SOCKET_NAME}={SOCKET_FD}",
            f"--control-fd={CONTROL_FD}",
        ]
        if takes_events:
            workerd[-1:-1] = ["--socket-fd", f"{events.SOCKET_NAME}={events.EVENTS_FD}"]
        if self._setpriv is not None:
            drop = []
            if self._user is not None:
                uid, gid = self._user
                drop = [f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
            workerd = [self._setpriv, *drop, "--pdeathsig", "KILL", "--"] + workerd
        if self._env is not None:
            workerd = [self._env, f"--chdir={children_directory(self._run_dir)}"] + workerd
        return workerd[0], workerd

    def launch(self, spec):
        name = uuid.uuid4().hex
        blob = self._builder.build(spec, name)
        path = os.path.join(self._run_dir, name + ".sock")
        open_channel = self._storage_channel(spec, name)
        channel = None
        config_fd = os.memfd_create("funcplane-config", os.MFD_CLOEXEC)
        listening = None
        store_fd = None
        events_listening = None
        takes_events = events.takes_events(spec)
        executable, args = self._command(takes_events)
        try:
            os.write(config_fd, blob)
            os.lseek(config_fd, 0, os.SEEK_SET)
            listening = bind_unix_socket(path)
            protocol = WorkerdProtocol(spec, self._logbook, self._max_line_bytes)
            child_fds = {}
            if takes_events:
                # Beside the HTTP socket, in the same private directory: funcplane's own
                # way in for events that are not requests (funcplane.runtime.events).
                events_listening = bind_unix_socket(events.events_socket_path(path))
                child_fds[events.EVENTS_FD] = events_listening.fileno()
            if spec.assets is not None:
                if self._assets_dir is None:
                    raise StartFailed("this funcplane has no asset store for the version's assets")
                store_fd = os.open(self._assets_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                child_fds[ASSETS_FD] = store_fd
            if open_channel is not None:
                channel = open_channel()
            transport = self._reactor.spawnProcess(
                protocol,
                executable,
                args,
                env={},
                # With env to change directory, Twisted can posix_spawn() instead of
                # forking funcplane, which blocks the reactor several times longer.
                path=None if self._env is not None else children_directory(self._run_dir),
                childFDs={
                    1: "r",
                    2: "r",
                    CONFIG_FD: config_fd,
                    SOCKET_FD: listening.fileno(),
                    CONTROL_FD: "r",
                    **child_fds,
                },
            )
        except BaseException:
            if channel is not None:
                channel.stopListening()
            raise
        finally:
            os.close(config_fd)
            if store_fd is not None:
                os.close(store_fd)
            if listening is not None:
                listening.close()
            if events_listening is not None:
                events_listening.close()
        confined = None
        if self._limits is not None:
            # Moving a process between cgroups waits for an RCU grace period (10-20 ms
            # here), so it happens in a thread while workerd starts; the child takes no
            # request until it is done.
            confined = self._in_thread(self._limits.confine, transport.pid, name)
        return Child(
            self._reactor,
            spec,
            protocol,
            transport,
            path,
            self._startup_timeout,
            confined,
            channel,
        )

    def _storage_channel(self, spec, name):
        """
        L{None}, or for a version that binds storage, what makes its child's socket.
        """
        if not storage.binds_storage(spec):
            return None
        if self._storage is None:
            raise StartFailed("this funcplane has no storage channel for the version's KV bindings")
        directory = children_directory(self._run_dir)
        return lambda: self._storage.listen(directory, name, spec, self._user)


CHILDREN_DIR = "children"


def children_directory(run_dir):
    """
    The children's working directory, inside the run directory. workerd opens its working
    directory, so a child running as another user must be able to search it (0711); it
    holds only the children's storage sockets (L{funcplane.runtime.storage}).
    """
    return os.path.join(run_dir, CHILDREN_DIR)


def make_children_directory(run_dir):
    path = children_directory(run_dir)
    os.makedirs(path, mode=0o711, exist_ok=True)
    os.chmod(path, 0o711)
    return path


def child_user():
    """
    C{(uid, gid)} of C{nobody} when funcplane runs as root, so that children never do;
    L{None} otherwise (children run as funcplane's own user).
    """
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def leftovers(run_dir, proc="/proc"):
    """
    The pids of processes whose working directory is the children's directory under
    C{run_dir}: funcplane starts every child there, so after an unclean exit these are
    its orphans.
    """
    run_dir = os.path.realpath(children_directory(run_dir))
    found = []
    for name in os.listdir(proc):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            if os.readlink(os.path.join(proc, name, "cwd")) == run_dir:
                found.append(int(name))
        except OSError:
            continue
    return found


def clean_run_dir(run_dir, kill=os.kill, proc="/proc"):
    """
    Before serving: SIGKILL the children an earlier funcplane left running in C{run_dir}
    and remove their sockets.  Returns how many processes and sockets were found.
    """
    orphans = leftovers(run_dir, proc)
    for pid in orphans:
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    children = children_directory(run_dir)
    sockets = [os.path.join(run_dir, name) for name in os.listdir(run_dir) if name.endswith(".sock")]
    if os.path.isdir(children):
        sockets += [os.path.join(children, n) for n in os.listdir(children) if n.endswith(".sock")]
    for path in sockets:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return len(orphans), len(sockets)
