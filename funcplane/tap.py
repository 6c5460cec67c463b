"""
C{twistd funcplane}: command-line options and the service they build.
"""

import atexit
import datetime
import importlib.metadata
import ipaddress
import os
import sys

import twisted
from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger
from twisted.python import usage

from funcplane.admin.auth import TokenTooShort
from funcplane.assets.sessions import AssetLimits
from funcplane.d1.sql import Limits as D1Limits
from funcplane.datadir import RUN_DIR, DataDirInUse
from funcplane.edge.listener import ProxyLimits
from funcplane.ordered import StoppedWhileStarting
from funcplane.runtime.limits import ChildLimits, MiB
from funcplane.runtime.locate import WorkerdNotFound, find_workerd
from funcplane.runtime.compatibility import is_flag_name
from funcplane.service import CannotListen, FuncplaneService, Settings

# Linux's sun_path holds 107 bytes and a NUL; socket names are 32 hex digits and ".sock".
_MAX_SOCKET_PATH = 107
_SOCKET_NAME_LENGTH = 32 + len(".sock")
MIN_CHILD_MEMORY_MB = 192
MIN_CHILD_HEAP_MB = 16
MIN_FD_RESERVE = 16
# What workerd needs beside its JS heap, about 50 MiB, with some room.
_CHILD_BASE_MB = 64
# The status twistd funcplane exits with when it could not start.
EXIT_COULD_NOT_START = 1
log = Logger()


def listen_description(port):
    """
    A strports description for C{--port}: a bare number means C{tcp:NUMBER}.
    """
    return f"tcp:{port}" if port.isdigit() else port


def public_port(description):
    """
    The port a TCP description listens on, for function URLs; 80 for anything else.
    """
    kind, _, rest = description.partition(":")
    if kind == "tcp":
        for field in rest.split(":"):
            value = field.removeprefix("port=")
            if value.isdigit():
                return int(value)
    return 80


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run funcplane: the admin API and every function on one listener. Requests whose"
        " Host is under --domain go to functions; every other one to the admin API."
    )
    optParameters = [
        ["port", "p", "8081", "Listener: a port number or any strports description (tcp:8081:interface=127.0.0.1, unix:/path)."],
        ["domain", None, "func.local", "Functions answer at [VERSION.]NAME.DOMAIN."],
        ["public-port", None, None, "The port in function URLs (default: the TCP port listened on; 80 is left out)."],
        ["data-dir", "d", "funcplane-data", "Directory for the SQLite database, the admin token and the children's sockets."],
        ["workerd", None, None, "The workerd binary (default: $FUNCPLANE_WORKERD, else the npm package in node_modules)."],
        ["startup-timeout", None, "5", "Seconds a new version may take to start before its deploy fails."],
        ["stop-grace", None, "10", "Seconds between SIGTERM and SIGKILL when stopping a child."],
        ["compatibility-date", None, "2026-11-01", "The workerd compatibility date of a version deployed without one (each version keeps the date it was deployed with)."],
        ["compatibility-flags-allowed", None, None, "Comma-separated compatibility flags versions may ask for, and no others (default: any flag workerd runs without --experimental)."],
        ["compatibility-flags-denied", None, "", "Comma-separated compatibility flags versions may not ask for."],
        ["idle-timeout", None, "300", "Seconds without requests after which a version is suspended (its process stopped); its next request wakes it."],
        ["freeze-after", None, "30", "Seconds without requests after which a version that would later be suspended is frozen (SIGSTOP: it keeps its memory, uses no CPU, and its next request thaws it in about a millisecond); 0: never."],
        ["max-running", None, None, "The most workerd processes alive at once; the least recently used idle version is suspended to make room (default: no limit)."],
        ["keep-versions", None, "100", "After a deploy, delete a function's versions beyond its newest N that nothing uses (not the latest, not deployed, no alias); 0: keep every version."],
        ["request-timeout", None, "60", "Seconds a function may take to begin its response, and then each next piece of it; past that the client gets 504."],
        ["max-header-bytes", None, "32768", "Largest request line and headers of a function request (431 beyond)."],
        ["max-url-bytes", None, "8192", "Longest request target of a function request (414 beyond)."],
        ["max-body-bytes", None, "104857600", "Largest function request body, declared or chunked (413 beyond, before it is read)."],
        ["max-response-header-bytes", None, "65536", "Largest status line and headers a function may answer with (502 beyond)."],
        ["header-timeout", None, "10", "Seconds a client has to send a request's headers, from its first byte (408 beyond)."],
        ["keep-alive-timeout", None, "60", "Seconds an idle kept-alive client connection is kept open."],
        ["admin-body-timeout", None, "120", "Seconds an admin API client has to send a request's body, from the end of its headers (408 beyond)."],
        ["max-auth-failures", None, "10", "Failed admin authentications one client address may make a minute; past them its admin requests get 429 until it has waited. At least 1."],
        ["child-memory-mb", None, "1024", "Memory (swap included) each workerd child may use, in MiB; the kernel kills a child that uses more (0: no limit). At least 192."],
        ["child-cpu", None, "1", "CPU each workerd child may use, in cores (0.5: half a core; 0: no limit)."],
        ["child-heap-mb", None, "128", "V8's JavaScript heap (old space) each workerd child may use, in MiB; a script that needs more aborts its child, and the next request starts a fresh one. At least 16, and at most --child-memory-mb less 64."],
        ["max-connections-per-ip", None, "256", "Open connections one client address may have; one more gets 503 (0: no limit)."],
        ["linger-timeout", None, "10", "Seconds funcplane goes on reading, and dropping, what a client still sends after its request was refused (so that it can read why) before closing."],
        ["linger-bytes", None, "104857600", "Bytes funcplane reads and drops at most while lingering so (see --linger-timeout)."],
        ["websocket-idle-timeout", None, "300", "Seconds a WebSocket through which nothing passed, either way, stays open."],
        ["websocket-lifetime", None, "3600", "Seconds a WebSocket may stay open at most."],
        ["max-websockets-per-version", None, "1000", "WebSockets open to one version at once; one more gets 503 (0: no limit)."],
        ["max-websockets-per-ip", None, "64", "WebSockets open from one client address at once; one more gets 503 (0: no limit)."],
        ["max-log-line-bytes", None, "16384", "Longest line of a function's output that is kept (logs, tails and funcplane's own log); the rest of a longer line is dropped and the line says how many bytes were. At least 256."],
        ["log-bytes-per-version", None, "1048576", "Bytes of output lines kept in memory for each version; past that its oldest lines go. At least --max-log-line-bytes."],
        ["log-bytes-total", None, "67108864", "Bytes of output lines kept in memory for all versions together; past that the oldest lines go. At least --log-bytes-per-version."],
        ["fd-reserve", None, "256", "File descriptors kept free for what already runs: with fewer free, no other version starts (503) until some close. At least 16."],
        ["max-asset-file-bytes", None, "26214400", "Largest static asset file a version may have, in bytes (Cloudflare's limit: 25 MiB)."],
        ["max-asset-files", None, "20000", "Most static asset files a version may have (Cloudflare's limit: 20,000)."],
        ["d1-statement-timeout", None, "30", "Seconds one D1 statement may run; a longer one is interrupted and its request rolled back."],
        ["d1-max-database-mb", None, "500", "Largest size of one D1 database, in MiB; a write past it fails (SQLITE_FULL). Cloudflare's: 10 GB on paid plans. At least 1."],
    ]
    optFlags = [
        ["scale-to-zero", None, "Suspend idle latest versions too (by default a function's latest version stays running)."],
    ]

    def __init__(self):
        super().__init__()
        self["egress-allow"] = []
        self["trusted-proxy"] = []

    def opt_trusted_proxy(self, cidr):
        """
        A load balancer's network (CIDR) whose X-Forwarded-For, -Proto and -Host headers
        functions should see; repeatable.  By default funcplane replaces them.
        """
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as e:
            raise usage.UsageError(f"--trusted-proxy {cidr}: {e}")
        self["trusted-proxy"].append(cidr)

    def opt_egress_allow(self, cidr):
        """
        Let functions reach this network (CIDR) too; repeatable.  By default they reach
        public addresses only.
        """
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as e:
            raise usage.UsageError(f"--egress-allow {cidr}: {e}")
        self["egress-allow"].append(cidr)

    def opt_version(self):
        """
        Print funcplane's version and Twisted's, and exit.
        """
        print(f"funcplane version: {funcplane_version()}")
        print(f"Twisted version: {twisted.__version__}")
        sys.exit(0)

    def _output_and_descriptor_bounds(self):
        for name, least, unit in [
            ("max-log-line-bytes", 256, "bytes"),
            ("log-bytes-per-version", 1, "bytes"),
            ("log-bytes-total", 1, "bytes"),
            ("fd-reserve", MIN_FD_RESERVE, "file descriptors (a spawn alone needs about 8)"),
            ("max-asset-file-bytes", 1, "bytes"),
            ("max-asset-files", 1, "files"),
        ]:
            if not str(self[name]).isdigit() or int(self[name]) < least:
                raise usage.UsageError(f"--{name} must be a whole number of {unit}, at least {least}")
            self[name] = int(self[name])
        for smaller, larger in [
            ("max-log-line-bytes", "log-bytes-per-version"),
            ("log-bytes-per-version", "log-bytes-total"),
        ]:
            if self[larger] < self[smaller]:
                raise usage.UsageError(
                    f"--{larger} {self[larger]} is less than --{smaller} {self[smaller]}:"
                    f" raise --{larger} or lower --{smaller}"
                )

    def _positive(self, name):
        try:
            value = float(self[name])
        except ValueError:
            value = 0
        if value <= 0:
            raise usage.UsageError(f"--{name} must be a positive number of seconds")
        return value

    def postOptions(self):
        self["listen"] = listen_description(self["port"])
        self["startup-timeout"] = self._positive("startup-timeout")
        self["stop-grace"] = self._positive("stop-grace")
        self["idle-timeout"] = self._positive("idle-timeout")
        self["request-timeout"] = self._positive("request-timeout")
        self["d1-statement-timeout"] = self._positive("d1-statement-timeout")
        if not str(self["d1-max-database-mb"]).isdigit() or int(self["d1-max-database-mb"]) < 1:
            raise usage.UsageError("--d1-max-database-mb must be a whole number of MiB, at least 1")
        self["d1-max-database-mb"] = int(self["d1-max-database-mb"])
        try:
            self["freeze-after"] = float(self["freeze-after"])
        except ValueError:
            self["freeze-after"] = -1.0
        if self["freeze-after"] < 0:
            raise usage.UsageError("--freeze-after must be a number of seconds (0: never freeze)")
        for name in ["max-header-bytes", "max-url-bytes", "max-body-bytes", "max-response-header-bytes"]:
            if not str(self[name]).isdigit() or int(self[name]) < 1:
                raise usage.UsageError(f"--{name} must be a whole number of bytes, at least 1")
            self[name] = int(self[name])
        if not str(self["max-connections-per-ip"]).isdigit():
            raise usage.UsageError("--max-connections-per-ip must be a whole number (0: no limit)")
        self["max-connections-per-ip"] = int(self["max-connections-per-ip"])
        for name in ["linger-bytes", "max-websockets-per-version", "max-websockets-per-ip"]:
            if not str(self[name]).isdigit():
                raise usage.UsageError(f"--{name} must be a whole number (0: none)")
            self[name] = int(self[name])
        for name in ["linger-timeout", "websocket-idle-timeout", "websocket-lifetime"]:
            self[name] = self._positive(name)
        memory = str(self["child-memory-mb"])
        if not memory.isdigit() or 0 < int(memory) < MIN_CHILD_MEMORY_MB:
            raise usage.UsageError(
                f"--child-memory-mb must be 0 (no limit) or a whole number of MiB, at least"
                f" {MIN_CHILD_MEMORY_MB} (a child needs about 50 MiB before its heap)"
            )
        self["child-memory-mb"] = int(memory)
        heap = str(self["child-heap-mb"])
        if not heap.isdigit() or int(heap) < MIN_CHILD_HEAP_MB:
            raise usage.UsageError(
                f"--child-heap-mb must be a whole number of MiB, at least {MIN_CHILD_HEAP_MB}"
            )
        self["child-heap-mb"] = int(heap)
        if self["child-memory-mb"] and self["child-heap-mb"] > self["child-memory-mb"] - _CHILD_BASE_MB:
            raise usage.UsageError(
                f"--child-heap-mb {self['child-heap-mb']} leaves too little of --child-memory-mb"
                f" {self['child-memory-mb']}: workerd needs about 50 MiB beside its heap, so the"
                f" kernel would kill the child before V8 stopped the script; give the heap at most"
                f" {self['child-memory-mb'] - _CHILD_BASE_MB} MiB, or raise --child-memory-mb"
            )
        try:
            self["child-cpu"] = float(self["child-cpu"])
        except ValueError:
            self["child-cpu"] = -1.0
        if not 0 <= self["child-cpu"] <= 1024:
            raise usage.UsageError("--child-cpu must be a number of cores, such as 0.5 (0: no limit)")
        date = self["compatibility-date"]
        try:
            valid = len(date) == 10 and datetime.date.fromisoformat(date) is not None
        except ValueError:
            valid = False
        if not valid:
            raise usage.UsageError(f"--compatibility-date must be a date such as 2026-11-01, not {date!r}")
        for name in ("compatibility-flags-allowed", "compatibility-flags-denied"):
            if self[name] is not None:
                flags = frozenset(flag.strip() for flag in self[name].split(",") if flag.strip())
                bad = sorted(flag for flag in flags if not is_flag_name(flag))
                if bad:
                    raise usage.UsageError(
                        f"--{name}: {bad[0]!r} is not a compatibility flag name (lower-case letters,"
                        " digits and _, such as nodejs_compat)"
                    )
                self[name] = flags
        self["header-timeout"] = self._positive("header-timeout")
        self["keep-alive-timeout"] = self._positive("keep-alive-timeout")
        self["admin-body-timeout"] = self._positive("admin-body-timeout")
        if not str(self["max-auth-failures"]).isdigit() or int(self["max-auth-failures"]) < 1:
            raise usage.UsageError(
                "--max-auth-failures must be a whole number of failures a minute, at least 1"
            )
        self["max-auth-failures"] = int(self["max-auth-failures"])
        if not str(self["keep-versions"]).isdigit():
            raise usage.UsageError(
                "--keep-versions must be a whole number of versions to keep (0: keep them all)"
            )
        self["keep-versions"] = int(self["keep-versions"])
        self._output_and_descriptor_bounds()
        if self["max-running"] is not None:
            if not str(self["max-running"]).isdigit() or int(self["max-running"]) < 1:
                raise usage.UsageError("--max-running must be a whole number, at least 1")
            self["max-running"] = int(self["max-running"])
        self["data-dir"] = os.path.abspath(self["data-dir"])
        if self["public-port"] is None:
            self["public-port"] = public_port(self["listen"])
        elif not str(self["public-port"]).isdigit():
            raise usage.UsageError("--public-port must be a port number")
        self["public-port"] = int(self["public-port"])
        run_dir = os.path.join(self["data-dir"], RUN_DIR)
        if len(run_dir) + 1 + _SOCKET_NAME_LENGTH > _MAX_SOCKET_PATH:
            raise usage.UsageError(
                f"--data-dir {self['data-dir']} is too long for unix socket paths under it;"
                " choose a shorter path"
            )
        try:
            self["workerd"] = find_workerd(self["workerd"])
        except WorkerdNotFound as e:
            raise usage.UsageError(str(e))


def funcplane_version():
    """
    The version of the installed funcplane distribution.
    """
    try:
        return importlib.metadata.version("funcplane")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (funcplane is not installed: run ./dev setup)"


def settings_from(options):
    """
    The L{Settings} that parsed C{options} describe.
    """
    return Settings(
        listen=options["listen"],
        data_dir=options["data-dir"],
        workerd=options["workerd"],
        domain=options["domain"].lower().rstrip("."),
        public_port=options["public-port"],
        egress_allow=tuple(options["egress-allow"]),
        trusted_proxies=tuple(options["trusted-proxy"]),
        startup_timeout=options["startup-timeout"],
        stop_grace=options["stop-grace"],
        compatibility_date=options["compatibility-date"],
        flags_allowed=options["compatibility-flags-allowed"],
        flags_denied=options["compatibility-flags-denied"] or frozenset(),
        idle_timeout=options["idle-timeout"],
        freeze_after=options["freeze-after"] or None,
        scale_to_zero=bool(options["scale-to-zero"]),
        max_running=options["max-running"],
        keep_versions=options["keep-versions"] or None,
        request_timeout=options["request-timeout"],
        proxy_limits=ProxyLimits(
            head_bytes=options["max-header-bytes"],
            target_bytes=options["max-url-bytes"],
            body_bytes=options["max-body-bytes"],
            response_head_bytes=options["max-response-header-bytes"],
            head_seconds=options["header-timeout"],
            idle_seconds=options["keep-alive-timeout"],
            connections_per_ip=options["max-connections-per-ip"],
            linger_seconds=options["linger-timeout"],
            linger_bytes=options["linger-bytes"],
            tunnel_idle_seconds=options["websocket-idle-timeout"],
            tunnel_lifetime_seconds=options["websocket-lifetime"],
            tunnels_per_version=options["max-websockets-per-version"],
            tunnels_per_client=options["max-websockets-per-ip"],
        ),
        child_limits=ChildLimits(
            memory_bytes=options["child-memory-mb"] * MiB or None,
            cpu=options["child-cpu"] or None,
        ),
        child_heap_mb=options["child-heap-mb"],
        max_log_line_bytes=options["max-log-line-bytes"],
        log_bytes_per_version=options["log-bytes-per-version"],
        log_bytes_total=options["log-bytes-total"],
        fd_reserve=options["fd-reserve"],
        asset_limits=AssetLimits(
            max_file_bytes=options["max-asset-file-bytes"], max_files=options["max-asset-files"]
        ),
        admin_body_timeout=options["admin-body-timeout"],
        d1_limits=D1Limits(
            statement_seconds=options["d1-statement-timeout"],
            max_bytes=options["d1-max-database-mb"] * MiB,
        ),
        admin_auth_failures=options["max-auth-failures"],
    )


def makeService(options, reactor=None, at_exit=atexit.register):
    """
    Build (not start) the funcplane service tree (see L{FuncplaneService}): nothing
    listens, spawns or opens a file until it starts.

    @param reactor: the reactor it runs on; by default the global one.
    @param at_exit: registers what runs when the process exits (L{atexit.register}); a
        start that fails registers the end of the process with a failure status there.
    """
    if reactor is None:
        from twisted.internet import reactor

    service = FuncplaneService(reactor, settings_from(options))
    service.ready.addErrback(_could_not_start, reactor, at_exit)
    return service


# Why funcplane could not start, when an operator can act on it: said in one line.
_OPERATOR_ERRORS = (DataDirInUse, CannotListen, TokenTooShort)


def _could_not_start(failure, reactor, at_exit):
    """
    Say why funcplane could not start (in one line when the reason is one an operator can
    act on, else with its traceback), stop the reactor and have the process exit with
    L{EXIT_COULD_NOT_START}.  A start cut short by a stop (twistd was told to exit while
    funcplane started) is no failure.

    L{FuncplaneService.ready} fails only once the parts that had started have stopped, so
    no child is left by then.  The part that failed may be the first, before twistd has
    run the reactor: it stops as soon as it runs.
    """
    if failure.check(StoppedWhileStarting):
        return
    if failure.check(*_OPERATOR_ERRORS):
        log.error("funcplane could not start: {reason}", reason=str(failure.value))
    else:
        log.failure("funcplane could not start", failure)
    at_exit(_end_process, EXIT_COULD_NOT_START)
    reactor.callWhenRunning(_stop, reactor)


def _stop(reactor):
    try:
        reactor.stop()
    except ReactorNotRunning:
        # Already stopping (a signal came meanwhile): the status is set all the same.
        pass


def _end_process(status):
    """
    End the process with C{status}, from an C{atexit} hook.

    twistd (Twisted 26.10) has no way for a service to choose its exit status: once its
    reactor has stopped it ends the process with the signal that stopped it, if one did,
    else returns and Python exits with 0.  An C{atexit} hook runs after all of that (every
    part stopped, so every child has exited; the pidfile removed; the last line logged),
    and C{os._exit} is the only way it has to change the status (a C{SystemExit} raised
    there is ignored); the standard streams are flushed first.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
