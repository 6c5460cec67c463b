"""
The funcplane service: assembles the store, runtime, route table, proxy and admin API when
it starts, and takes them down in order when it stops.
"""

import fcntl
import os

import attrs
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from funcplane.admin.api import AdminAPI
from funcplane.admin.cloudflare.api import CloudflareAPI
from funcplane.admin.auth import TokenChecker, TokenSource
from funcplane.admin.parse import Limits
from funcplane.platform import Platform
from funcplane.edge.listener import ProxyFactory, ProxyLimits
from funcplane.routing import RouteTable
from funcplane.runtime.config import ConfigBuilder, RuntimeSettings
from funcplane.runtime.egress import EgressPolicy
from funcplane.runtime.limits import ChildLimits, detect
from funcplane.observe.logbook import LogBook
from funcplane.runtime.process import (
    WorkerdLauncher,
    child_user,
    clean_run_dir,
    find_env,
    find_setpriv,
    make_children_directory,
)
from funcplane.runtime.supervisor import Lifecycle, Supervisor
from funcplane.admin.site import admin_site
from funcplane.store.sqlite import SQLiteStore
from funcplane.observe.tails import Tails
from funcplane.edge.upstream import UpstreamPool

DATABASE = "funcplane.sqlite3"
RUN_DIR = "run"
LOCK = "funcplane.lock"


@attrs.frozen
class Settings:
    """
    Everything the operator chose, validated by L{funcplane.tap.Options}.
    """

    listen: str
    data_dir: str
    workerd: str
    domain: str = "func.local"
    public_port: int = 80
    egress_allow: tuple = ()
    startup_timeout: float = 5.0
    stop_grace: float = 10.0
    idle_timeout: float = 300.0
    freeze_after: float | None = 30.0
    scale_to_zero: bool = False
    max_running: int | None = None
    request_timeout: float = 60.0
    proxy_limits: ProxyLimits = ProxyLimits()
    trusted_proxies: tuple = ()
    compatibility_date: str = "2026-11-01"
    limits: Limits = Limits()
    child_limits: ChildLimits = ChildLimits()


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


class FuncplaneService(MultiService):
    """
    The whole of funcplane as one service.

    @param reactor: the reactor (process, time and TCP/unix listening).
    @param environ: the environment the admin token may come from.
    """

    log = Logger()

    def __init__(self, reactor, settings, environ=os.environ):
        super().__init__()
        self._reactor = reactor
        self.settings = settings
        self._environ = environ
        self.store = SQLiteStore(os.path.join(settings.data_dir, DATABASE), reactor)
        self.routes = RouteTable(settings.domain)
        self.logbook = LogBook(reactor)
        self.tails = Tails(reactor, self.logbook, settings.domain)
        self.supervisor = None
        self.platform = None
        self._pool = None
        self._lock = None
        self._confiner = None
        self.port = None
        self.ready = Deferred()

    def startService(self):
        super().startService()
        d = Deferred.fromCoroutine(self._start())
        d.addCallbacks(self.ready.callback, self.ready.errback)

    async def _start(self):
        settings = self.settings
        private_directory(settings.data_dir)
        self._lock = lock_data_dir(settings.data_dir)
        run_dir = private_directory(os.path.join(settings.data_dir, RUN_DIR))
        make_children_directory(run_dir)
        orphans, sockets = clean_run_dir(run_dir)
        if orphans or sockets:
            self.log.warn(
                "an earlier funcplane did not stop cleanly: killed {orphans} of its workerd"
                " processes and removed {sockets} stale sockets",
                orphans=orphans,
                sockets=sockets,
            )
        await self.store.open()
        checker = TokenChecker(
            await TokenSource(self.store, settings.data_dir, self._environ).expected_hash()
        )
        runtime_settings = RuntimeSettings(
            egress=EgressPolicy.for_host(settings.egress_allow),
            compatibility_date=settings.compatibility_date,
        )
        builder = ConfigBuilder(runtime_settings)
        setpriv = find_setpriv()
        user = child_user() if setpriv is not None else None
        if os.geteuid() == 0 and user is None:
            self.log.warn(
                "funcplane runs as root and cannot drop its children's privileges"
                " (util-linux setpriv or the user nobody is missing): they run as root"
            )
        elif user is not None:
            self.log.info("workerd children run as uid {uid}, gid {gid}", uid=user[0], gid=user[1])
        confiner = self._confiner = self._confine(runtime_settings.heap_limit_mb)
        launcher = WorkerdLauncher(
            self._reactor,
            settings.workerd,
            run_dir,
            builder,
            settings.startup_timeout,
            logbook=self.logbook,
            setpriv=setpriv,
            user=user,
            limits=confiner,
            env=find_env(),
        )
        lifecycle = Lifecycle(
            idle_timeout=settings.idle_timeout,
            freeze_after=settings.freeze_after,
            scale_to_zero=settings.scale_to_zero,
            max_running=settings.max_running,
            grace=settings.stop_grace,
        )
        self.supervisor = Supervisor(
            self._reactor,
            launcher,
            self.store.version_spec,
            lifecycle,
            is_warm=self.routes.is_latest,
        )
        self.supervisor.setServiceParent(self)
        self.platform = Platform(
            self._reactor,
            self.store,
            self.supervisor,
            self.routes,
            logbook=self.logbook,
            tails=self.tails,
        )
        all_routes = await self.platform.load_routes()
        self._pool = UpstreamPool(
            self._reactor, response_head_bytes=settings.proxy_limits.response_head_bytes
        )
        admin = AdminAPI(
            self.platform,
            checker,
            settings.limits,
            settings.domain,
            settings.public_port,
            logbook=self.logbook,
            clock=self._reactor,
            cloudflare=CloudflareAPI(
                self.platform, checker, settings.limits, self._reactor, self.tails
            ),
        )
        listener = ProxyFactory(
            self.routes,
            self.supervisor,
            self._pool,
            admin_site(self.routes, admin.resource(), settings.limits.max_body_bytes),
            self._reactor,
            settings.proxy_limits,
            request_timeout=settings.request_timeout,
            trusted_proxies=settings.trusted_proxies,
            tails=self.tails,
        )
        self.port = await serverFromString(self._reactor, settings.listen).listen(listener)
        self.log.info(
            "funcplane serves {count} functions on {listen}; function hosts are *.{domain}",
            count=len(all_routes),
            listen=settings.listen,
            domain=settings.domain,
        )
        # In the background: the listener is already serving, and a request for a version
        # not started yet starts it.
        Deferred.fromCoroutine(self.platform.start_latest(all_routes))
        return self

    def _confine(self, heap_mb):
        confiner = detect(self.settings.child_limits, self.settings.data_dir)
        leftovers = confiner.clean()
        if leftovers:
            self.log.warn(
                "killed {count} workerd processes an earlier funcplane left in its cgroups",
                count=leftovers,
            )
        self.log.info(
            "each workerd child is limited to: {applied}; JS heap {heap} MiB (V8)",
            applied="; ".join(confiner.applied) or "nothing by the kernel",
            heap=heap_mb,
        )
        for missing in confiner.missing:
            self.log.warn("{missing}", missing=missing)
        return confiner

    async def _stop(self):
        self.tails.close()
        if self.port is not None:
            await self.port.stopListening()
        if self._pool is not None:
            await self._pool.close()
        await super().stopService()
        if self._confiner is not None:
            self._confiner.close()
        self.store.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def stopService(self):
        """
        Stop accepting requests, stop every child (SIGTERM, then SIGKILL after the grace
        period), close the database; the Deferred fires when all of that is done.
        """
        return Deferred.fromCoroutine(self._stop())
