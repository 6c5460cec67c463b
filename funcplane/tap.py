"""
C{twistd funcplane}: command-line options and the service they build.
"""

import datetime
import ipaddress
import os

from twisted.logger import Logger
from twisted.python import usage

from funcplane.datadir import RUN_DIR, DataDirInUse
from funcplane.edge.listener import ProxyLimits
from funcplane.ordered import StoppedWhileStarting
from funcplane.runtime.limits import ChildLimits, MiB
from funcplane.runtime.locate import WorkerdNotFound, find_workerd
from funcplane.service import FuncplaneService, Settings

# Linux's sun_path holds 107 bytes and a NUL; socket names are 32 hex digits and ".sock".
_MAX_SOCKET_PATH = 107
_SOCKET_NAME_LENGTH = 32 + len(".sock")
MIN_CHILD_MEMORY_MB = 192
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
        ["compatibility-date", None, "2026-11-01", "workerd compatibility date for every function."],
        ["idle-timeout", None, "300", "Seconds without requests after which a version is suspended (its process stopped); its next request wakes it."],
        ["freeze-after", None, "30", "Seconds without requests after which a version that would later be suspended is frozen (SIGSTOP: it keeps its memory, uses no CPU, and its next request thaws it in about a millisecond); 0: never."],
        ["max-running", None, None, "The most workerd processes alive at once; the least recently used idle version is suspended to make room (default: no limit)."],
        ["request-timeout", None, "60", "Seconds a function may take to begin its response, and then each next piece of it; past that the client gets 504."],
        ["max-header-bytes", None, "32768", "Largest request line and headers of a function request (431 beyond)."],
        ["max-url-bytes", None, "8192", "Longest request target of a function request (414 beyond)."],
        ["max-body-bytes", None, "104857600", "Largest function request body, declared or chunked (413 beyond, before it is read)."],
        ["max-response-header-bytes", None, "65536", "Largest status line and headers a function may answer with (502 beyond)."],
        ["header-timeout", None, "10", "Seconds a client has to send a request's headers, from its first byte (408 beyond)."],
        ["keep-alive-timeout", None, "60", "Seconds an idle kept-alive client connection is kept open."],
        ["child-memory-mb", None, "1024", "Memory (swap included) each workerd child may use, in MiB; the kernel kills a child that uses more (0: no limit). At least 192."],
        ["child-cpu", None, "1", "CPU each workerd child may use, in cores (0.5: half a core; 0: no limit)."],
        ["max-connections-per-ip", None, "256", "Open connections one client address may have; one more gets 503 (0: no limit)."],
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
        memory = str(self["child-memory-mb"])
        if not memory.isdigit() or 0 < int(memory) < MIN_CHILD_MEMORY_MB:
            raise usage.UsageError(
                f"--child-memory-mb must be 0 (no limit) or a whole number of MiB, at least"
                f" {MIN_CHILD_MEMORY_MB} (a child needs about 50 MiB before its heap)"
            )
        self["child-memory-mb"] = int(memory)
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
        self["header-timeout"] = self._positive("header-timeout")
        self["keep-alive-timeout"] = self._positive("keep-alive-timeout")
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
        idle_timeout=options["idle-timeout"],
        freeze_after=options["freeze-after"] or None,
        scale_to_zero=bool(options["scale-to-zero"]),
        max_running=options["max-running"],
        request_timeout=options["request-timeout"],
        proxy_limits=ProxyLimits(
            head_bytes=options["max-header-bytes"],
            target_bytes=options["max-url-bytes"],
            body_bytes=options["max-body-bytes"],
            response_head_bytes=options["max-response-header-bytes"],
            head_seconds=options["header-timeout"],
            idle_seconds=options["keep-alive-timeout"],
            connections_per_ip=options["max-connections-per-ip"],
        ),
        child_limits=ChildLimits(
            memory_bytes=options["child-memory-mb"] * MiB or None,
            cpu=options["child-cpu"] or None,
        ),
    )


def makeService(options, reactor=None):
    """
    Build (not start) the funcplane service tree (see L{FuncplaneService}): nothing
    listens, spawns or opens a file until it starts.

    @param reactor: the reactor it runs on; by default the global one.
    """
    if reactor is None:
        from twisted.internet import reactor

    service = FuncplaneService(reactor, settings_from(options))
    service.ready.addErrback(_could_not_start, reactor)
    return service


def _could_not_start(failure, reactor):
    """
    Say why funcplane could not start (without a traceback when the reason is one an
    operator can act on), and exit.  A start cut short by a stop (twistd was told to exit
    while funcplane started) is no failure.
    """
    if failure.check(StoppedWhileStarting):
        return
    if failure.check(DataDirInUse):
        log.error("funcplane could not start: {reason}", reason=str(failure.value))
    else:
        log.failure("funcplane could not start", failure)
    if reactor.running:
        reactor.stop()
