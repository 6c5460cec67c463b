"""
The funcplane service: the whole tree of named parts, built up front in the order they
start, and the parts that are not services of their own.
"""

import errno
import os

import attrs
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.failure import Failure

from funcplane.admin.api import AdminAPI
from funcplane.admin.auth import TokenChecker, TokenSource
from funcplane.admin.cloudflare.api import CloudflareAPI
from funcplane.admin.parse import Limits
from funcplane.admin.site import AdminLimits, admin_site
from funcplane.assets.sessions import AssetLimits, UploadSessions
from funcplane.assets.store import DIRECTORY as ASSETS_DIRECTORY, AssetStore
from funcplane.d1.imports import Imports as D1Imports
from funcplane.d1.registry import DIRECTORY as D1_DIRECTORY, Databases
from funcplane.d1.sql import Limits as D1Limits
from funcplane.datadir import DataDirectory
from funcplane.edge.listener import ProxyFactory, ProxyLimits
from funcplane.edge.upstream import UpstreamPool
from funcplane.errors import Unauthorized
from funcplane.kv import KV, KVPurge
from funcplane.kv_binding import kv_site
from funcplane.observe.logbook import LogBook
from funcplane.observe.tails import Tails
from funcplane.ordered import OrderedMultiService
from funcplane.platform import Platform
from funcplane.routing import RouteTable
from funcplane.runtime.descriptors import DescriptorReserve, raise_open_files_limit
from funcplane.runtime.lifecycle import Lifecycle
from funcplane.runtime.host import ChildRuntime, RuntimeChoices
from funcplane.runtime.limits import ChildLimits
from funcplane.runtime.storage import StorageChannel
from funcplane.runtime.supervisor import Supervisor
from funcplane.runtime.delivery import EventsClient
from funcplane.runtime.watchdog import SpinWatch
from funcplane.schedule.runs import ScheduledRunner
from funcplane.schedule.scheduler import Scheduler
from funcplane.store.kv import SQLiteKV
from funcplane.store.schedules import SQLiteSchedules
from funcplane.store.sqlite import SQLiteStore


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
    keep_versions: int | None = 100
    request_timeout: float = 60.0
    proxy_limits: ProxyLimits = ProxyLimits()
    trusted_proxies: tuple = ()
    compatibility_date: str = "2026-11-01"
    flags_allowed: frozenset | None = None
    flags_denied: frozenset = frozenset()
    limits: Limits = Limits()
    admin_body_timeout: float = 120.0
    admin_auth_failures: int = 10
    child_limits: ChildLimits = ChildLimits()
    child_heap_mb: int = 128
    max_log_line_bytes: int = 16 * 1024
    log_bytes_per_version: int = 1024 * 1024
    log_bytes_total: int = 64 * 1024 * 1024
    fd_reserve: int = 256
    asset_limits: AssetLimits = AssetLimits()
    d1_limits: D1Limits = D1Limits()


class Collaborator(Service):
    """
    A place in the tree for a collaborator that is not a service: C{start()} is called when
    it starts and C{stop()} when it stops; either may return a Deferred, or be left out.
    """

    def __init__(self, start=None, stop=None):
        self._start = start
        self._stop = stop

    def startService(self):
        super().startService()
        if self._start is not None:
            return maybeDeferred(self._start)

    def stopService(self):
        super().stopService()
        if self._stop is not None:
            return maybeDeferred(self._stop)


class AdminToken(Service):
    """
    Checks requests for the admin token, whose hash it decides when it starts (see
    L{TokenSource}: from the environment, else the store, else a new token).  The admin
    APIs are given it when the tree is built, before the hash exists; until it has
    started, no request passes.
    """

    def __init__(self, source):
        self._source = source
        self._checker = None

    def startService(self):
        super().startService()
        return Deferred.fromCoroutine(self._decide())

    async def _decide(self):
        self._checker = TokenChecker(await self._source.expected_hash())

    def check(self, request):
        """
        Return nothing if C{request} carries the admin token, else raise L{Unauthorized}.
        """
        if self._checker is None:
            raise Unauthorized("funcplane has not decided its admin token yet")
        self._checker.check(request)


class RouteLoader(Service):
    """
    Fills the route table from the store when it starts, then starts every function's
    latest version in the background (the listener serves meanwhile, and a request for a
    version not started yet starts it).  That work is its own: stopping cancels it, so
    nothing new starts once funcplane stops; the supervisor, which stops after it, stops
    what had started.

    @param platform: the L{Platform}.
    @ivar functions: how many functions were loaded.
    """

    log = Logger()

    def __init__(self, platform):
        self._platform = platform
        self._boot = None
        self.functions = 0

    def startService(self):
        super().startService()
        return Deferred.fromCoroutine(self._load())

    async def _load(self):
        all_routes = await self._platform.load_routes()
        self.functions = len(all_routes)
        self._boot = Deferred.fromCoroutine(self._platform.start_latest(all_routes))
        self._boot.addErrback(self._boot_failed)

    def _boot_failed(self, failure):
        if not failure.check(CancelledError):
            self.log.failure("starting the latest versions failed", failure)

    def stopService(self):
        super().stopService()
        boot, self._boot = self._boot, None
        if boot is not None:
            boot.cancel()
            return boot


class CannotListen(Exception):
    """
    The listener could not listen on its description (the port is taken, say).
    """


# What an operator can do about the reasons a listener most often cannot listen.
_LISTEN_ADVICE = {
    errno.EADDRINUSE: "stop what listens there, or choose another --port",
    errno.EACCES: "ports below 1024 need root or CAP_NET_BIND_SERVICE; choose another --port",
    errno.EADDRNOTAVAIL: "that address is not one of this host's; choose another --port",
}


class Listener(Service):
    """
    Listens on a strports description when it starts; stops listening when it stops (the
    connections already open are left to finish).

    @ivar port: the C{IListeningPort} while it listens, else L{None}.
    """

    def __init__(self, reactor, description, factory):
        self._reactor = reactor
        self._description = description
        self._factory = factory
        self.port = None

    def startService(self):
        super().startService()
        # Parsed here, not when the tree is built: an ssl: description reads its files.
        endpoint = serverFromString(self._reactor, self._description)
        return endpoint.listen(self._factory).addCallbacks(self._listening, self._not_listening)

    def _listening(self, port):
        self.port = port

    def _not_listening(self, failure):
        failure.trap(CannotListenError)
        error = failure.value.socketError
        reason = getattr(error, "strerror", None) or str(error)
        advice = _LISTEN_ADVICE.get(getattr(error, "errno", None), "choose another --port")
        raise CannotListen(f"cannot listen on {self._description} ({reason.lower()}): {advice}")

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()


class FuncplaneService(OrderedMultiService):
    """
    The whole of funcplane: a tree of named parts, every one built here and none started
    (nothing listens, spawns or opens a file until C{startService}).

    @param reactor: the reactor (processes, time, threads and listening).
    @param settings: the L{Settings}.
    @param environ: the environment the admin token may come from.
    @ivar ready: fires with this service once every part has started, or fails with why
        one could not (once those that had are stopped).  twistd drops the Deferred
        C{startService} returns, so a failed start is reported through this one.
    """

    log = Logger()

    def __init__(self, reactor, settings, environ=os.environ):
        super().__init__()
        self._reactor = reactor
        self.settings = settings
        self._environ = environ
        self.ready = Deferred()
        self._create_child_services()

    def _create_child_services(self):
        """
        Build every collaborator, once, and add the parts in the order they start.
        """
        settings, reactor = self.settings, self._reactor
        self.data_dir = DataDirectory(settings.data_dir)
        self.assets = AssetStore(os.path.join(settings.data_dir, ASSETS_DIRECTORY), reactor)
        self.uploads = UploadSessions(reactor, self.assets, settings.asset_limits)
        self.store = SQLiteStore(self.data_dir.database, reactor)
        self.d1 = Databases(
            self.store, os.path.join(settings.data_dir, D1_DIRECTORY), reactor, settings.d1_limits
        )
        self.kv = KV(reactor, SQLiteKV(self.store))
        self.routes = RouteTable(settings.domain)
        self.logbook = LogBook(
            reactor,
            bytes_per_version=settings.log_bytes_per_version,
            bytes_total=settings.log_bytes_total,
        )
        self.tails = Tails(reactor, self.logbook, settings.domain)
        self.admin_token = AdminToken(TokenSource(self.store, settings.data_dir, self._environ))

        self.runtime = ChildRuntime(
            reactor,
            RuntimeChoices(
                workerd=settings.workerd,
                run_dir=self.data_dir.run_dir,
                data_dir=settings.data_dir,
                startup_timeout=settings.startup_timeout,
                egress_allow=settings.egress_allow,
                compatibility_date=settings.compatibility_date,
                flags_allowed=settings.flags_allowed,
                flags_denied=settings.flags_denied,
                child_limits=settings.child_limits,
                heap_limit_mb=settings.child_heap_mb,
                max_log_line_bytes=settings.max_log_line_bytes,
                assets_dir=self.assets.path,
            ),
            logbook=self.logbook,
            open_files=raise_open_files_limit,
            storage=StorageChannel(reactor, kv_site(self.kv, reactor)),
        )
        lifecycle = Lifecycle(
            idle_timeout=settings.idle_timeout,
            freeze_after=settings.freeze_after,
            scale_to_zero=settings.scale_to_zero,
            max_running=settings.max_running,
            grace=settings.stop_grace,
        )
        self.supervisor = Supervisor(
            reactor,
            self.runtime,
            self.store.version_spec,
            lifecycle,
            is_warm=self.routes.is_latest,
            # A spinning child uses all of its CPU quota, which may be less than a core.
            watch=SpinWatch(reactor, quota=settings.child_limits.cpu),
            descriptors=DescriptorReserve(settings.fd_reserve),
        )
        self.platform = Platform(
            reactor,
            self.store,
            self.supervisor,
            self.routes,
            logbook=self.logbook,
            tails=self.tails,
            scale_to_zero=settings.scale_to_zero,
            keep_versions=settings.keep_versions,
            compatibility_date=settings.compatibility_date,
        )
        self.pool = UpstreamPool(
            reactor, response_head_bytes=settings.proxy_limits.response_head_bytes
        )

        self.scheduler = Scheduler(
            reactor,
            SQLiteSchedules(self.store),
            ScheduledRunner(
                reactor,
                self.supervisor,
                EventsClient(reactor).scheduled,
                logbook=self.logbook,
                tails=self.tails,
            ),
            logbook=self.logbook,
        )
        admin = AdminAPI(
            self.platform,
            self.admin_token,
            settings.limits,
            settings.domain,
            settings.public_port,
            logbook=self.logbook,
            clock=reactor,
            cloudflare=CloudflareAPI(
                self.platform,
                self.admin_token,
                settings.limits,
                reactor,
                self.tails,
                self.uploads,
                schedules=self.scheduler,
                kv=self.kv,
                d1=self.d1,
                d1_imports=D1Imports(reactor, self.d1),
            ),
            schedules=self.scheduler,
            kv=self.kv,
        )
        proxy = ProxyFactory(
            self.routes,
            self.supervisor,
            self.pool,
            admin_site(
                self.routes,
                admin.resource(),
                self.admin_token,
                reactor,
                AdminLimits(
                    body_bytes=settings.limits.max_body_bytes,
                    head_seconds=settings.proxy_limits.head_seconds,
                    body_seconds=settings.admin_body_timeout,
                    idle_seconds=settings.proxy_limits.idle_seconds,
                    auth_failures=settings.admin_auth_failures,
                ),
                trusted_proxies=settings.trusted_proxies,
                uploads=self.uploads,
            ),
            reactor,
            settings.proxy_limits,
            request_timeout=settings.request_timeout,
            trusted_proxies=settings.trusted_proxies,
            tails=self.tails,
        )
        self.route_loader = RouteLoader(self.platform)
        self.listener = Listener(reactor, settings.listen, proxy)

        # The order is the order of dependence: each part starts once those before it have
        # started, and stops (in reverse) before they do.
        #  - The data directory comes first: its lock keeps a second funcplane from killing
        #    our children, and the database, the token file and the sockets live in it.
        #  - The store is open before anything reads it: the token's hash, the routes;
        #    the purge of expired KV keys runs only while it is.
        #  - The D1 databases' registry reads the store; its directory and thread pool
        #    exist before a request reaches it, and it closes every database before the
        #    store closes.
        #  - The asset store's directory exists before a child is handed it, and its
        #    thread pool runs before an upload reaches it.
        #  - The runtime has asked the machine what it offers the children (setpriv, the
        #    host's addresses, the kernel limits) and killed an earlier funcplane's
        #    leftovers in its cgroups before the first child is spawned; it removes the
        #    cgroups only once every child has exited.
        #  - The supervisor owns the children; everything that can ask it for one stops
        #    before it does, so it stops them all and none is spawned after.
        #  - The pool's connections to the children close before the children stop.
        #  - The routes are loaded before the listener serves them; the boot work they
        #    start is cancelled before the supervisor stops.
        #  - The cron triggers' timers start once the store is open and the supervisor can
        #    start children (a run wakes the version it runs on), after the routes, whose
        #    boot starts the latest versions first; they stop, cancelling the runs in
        #    flight, before the supervisor stops the children those runs use.
        #  - The tails end once nothing new reaches them.
        #  - The listener comes last: it serves only once every part behind it is ready,
        #    and is the first to stop, so no new request arrives while the rest goes down.
        for name, part in [
            ("data-dir", self.data_dir),
            ("store", Collaborator(start=self.store.open, stop=self.store.close)),
            ("kv-purge", KVPurge(reactor, self.kv)),
            ("d1", self.d1),
            ("admin-token", self.admin_token),
            ("assets", self.assets),
            ("runtime", self.runtime),
            ("supervisor", self.supervisor),
            ("upstream-pool", Collaborator(stop=self.pool.close)),
            ("routes", self.route_loader),
            ("scheduler", self.scheduler),
            ("tails", Collaborator(stop=self.tails.close)),
            ("listener", self.listener),
        ]:
            part.setName(name)
            part.setServiceParent(self)

    @property
    def port(self):
        """
        The listening port once funcplane has started, else L{None}.
        """
        return self.listener.port

    def startService(self):
        """
        Start every part in order.  The outcome is L{ready}'s; the Deferred returned
        fires (with L{None}) once L{ready} has.
        """
        return super().startService().addBoth(self._settled)

    def _settled(self, result):
        if isinstance(result, Failure):
            self.ready.errback(result)
            return
        self.log.info(
            "funcplane serves {count} {functions} on {listen}; function hosts are *.{domain}",
            count=self.route_loader.functions,
            functions="function" if self.route_loader.functions == 1 else "functions",
            listen=self.settings.listen,
            domain=self.settings.domain,
        )
        self.ready.callback(self)

    def stopService(self):
        """
        Stop accepting requests, stop every child (SIGTERM, then SIGKILL after the grace
        period), close the pool and the database; the Deferred fires when all of that is
        done.
        """
        return super().stopService()
