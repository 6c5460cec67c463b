"""
The runtime as a part of funcplane's service tree: what this machine offers the workerd
children, found out when the part starts, and the launcher made from it.

Building the tree only records the operator's choices.  Starting the part asks the
machine: whether util-linux C{setpriv} exists (to drop privileges and tie each child's life
to funcplane's), which user children run as, the host's own addresses (denied to
functions' egress), the config schema, and which kernel limits apply (killing what an
earlier funcplane left in its cgroups).  Stopping it, once every child has exited, removes
funcplane's cgroups.
"""

import os
import resource

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from funcplane.interfaces import IRuntimeLauncher
from funcplane.runtime.compatibility import Compatibility, is_date, newest_date, utc_date
from funcplane.runtime.config import ConfigBuilder, RuntimeSettings, load_schema
from funcplane.runtime.lines import DEFAULT_MAX_LINE_BYTES
from funcplane.runtime.egress import EgressPolicy
from funcplane.runtime.limits import ChildLimits, detect
from funcplane.runtime.process import WorkerdLauncher, child_user, find_env, find_setpriv


@attrs.frozen
class RuntimeChoices:
    """
    What the operator chose for every child.

    @ivar workerd: the absolute path of the workerd binary.
    @ivar run_dir: the private directory of the children's sockets.
    @ivar data_dir: the data directory, whose hash names funcplane's cgroups.
    @ivar egress_allow: networks (CIDR text) functions may reach besides public ones.
    @ivar heap_limit_mb: V8's old-space limit per child, in MiB.
    @ivar max_log_line_bytes: the longest line of a child's output that is kept.
    @ivar compatibility_date: the date of a version that was deployed without one (every
        version since compatibility dates were kept has its own).
    @ivar flags_allowed: the only compatibility flags versions may ask for (L{None}: any).
    @ivar flags_denied: compatibility flags versions may not ask for.
    @ivar assets_dir: the asset store's directory (children with assets read it), or
        L{None}.
    """

    workerd: str
    run_dir: str
    data_dir: str
    startup_timeout: float = 5.0
    egress_allow: tuple = ()
    compatibility_date: str = "2026-11-01"
    child_limits: ChildLimits = ChildLimits()
    heap_limit_mb: int = 128
    max_log_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    flags_allowed: frozenset | None = None
    flags_denied: frozenset = frozenset()
    assets_dir: str | None = None


class Machine:
    """
    The questions the part asks this machine; tests answer them with a fake.
    """

    setpriv = staticmethod(find_setpriv)
    env = staticmethod(find_env)
    user = staticmethod(child_user)
    egress = staticmethod(EgressPolicy.for_host)
    schema = staticmethod(load_schema)
    limits = staticmethod(detect)
    newest_date = staticmethod(newest_date)


# Below this many open files (about 3 a version), a few hundred versions exhaust them.
LOW_OPEN_FILES = 4096


@implementer(IRuntimeLauncher)
class ChildRuntime(Service):
    """
    Launches workerd children (L{IRuntimeLauncher}) once it has started.

    @param reactor: an C{IReactorProcess} and C{IReactorTime} provider.
    @param choices: the L{RuntimeChoices}.
    @param logbook: keeps what the children print.
    @param machine: answers the questions of L{Machine}.
    @param in_thread: how the launcher runs blocking work off the reactor thread (see
        L{WorkerdLauncher}); by default the reactor's thread pool.
    @param open_files: raises funcplane's limit of open files at start and returns
        C{(before, after, error)} (see
        L{funcplane.runtime.descriptors.raise_open_files_limit}); L{None} leaves it alone.
    @param storage: the L{funcplane.runtime.storage.StorageChannel} of children that bind
        KV namespaces, or L{None}.
    @ivar confiner: the L{funcplane.runtime.limits.IChildLimits} in force, once started.
    @ivar compatibility: the L{Compatibility} versions are checked against, once started.
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        choices,
        logbook=None,
        machine=Machine,
        in_thread=None,
        open_files=None,
        storage=None,
    ):
        self._storage = storage
        self._reactor = reactor
        self._open_files = open_files
        self._in_thread = in_thread
        self._choices = choices
        self._logbook = logbook
        self._machine = machine
        self._launcher = None
        self.confiner = None
        self.compatibility = None

    def startService(self):
        super().startService()
        if self._open_files is not None:
            self._raise_open_files()
        choices, machine = self._choices, self._machine
        setpriv = machine.setpriv()
        user = machine.user() if setpriv is not None else None
        if os.geteuid() == 0 and user is None:
            self.log.warn(
                "funcplane runs as root and cannot drop its children's privileges"
                " (util-linux setpriv or the user nobody is missing): they run as root"
            )
        elif user is not None:
            uid, gid = user
            self.log.info("workerd children run as uid {uid}, gid {gid}", uid=uid, gid=gid)
        settings = RuntimeSettings(
            egress=machine.egress(choices.egress_allow),
            compatibility_date=choices.compatibility_date,
            heap_limit_mb=choices.heap_limit_mb,
        )
        self.confiner = machine.limits(choices.child_limits, choices.data_dir)
        leftovers = self.confiner.clean()
        if leftovers:
            self.log.warn(
                "killed {count} workerd processes an earlier funcplane left in its cgroups",
                count=leftovers,
            )
        self.log.info(
            "each workerd child is limited to: {applied}; JS heap {heap} MiB (V8)",
            applied="; ".join(self.confiner.applied) or "nothing by the kernel",
            heap=settings.heap_limit_mb,
        )
        for missing in self.confiner.missing:
            self.log.warn("{missing}", missing=missing)
        self._launcher = WorkerdLauncher(
            self._reactor,
            choices.workerd,
            choices.run_dir,
            ConfigBuilder(settings, schema=machine.schema()),
            choices.startup_timeout,
            logbook=self._logbook,
            setpriv=setpriv,
            user=user,
            limits=self.confiner,
            env=machine.env(),
            in_thread=self._in_thread,
            max_line_bytes=choices.max_log_line_bytes,
            assets_dir=choices.assets_dir,
            storage=self._storage,
        )
        return Deferred.fromCoroutine(self._ask_compatibility())

    async def _ask_compatibility(self):
        choices = self._choices
        newest = await self._machine.newest_date(self._reactor, choices.workerd, choices.run_dir)
        default = choices.compatibility_date
        if not is_date(default) or default > newest:
            raise ValueError(
                f"--compatibility-date {default} is after {newest}, the newest date {choices.workerd}"
                " supports: choose an earlier one"
            )
        self.compatibility = Compatibility(newest, choices.flags_allowed, choices.flags_denied)
        self.log.info(
            "versions may ask for compatibility dates up to {newest}; the default is {default}",
            newest=newest,
            default=default,
        )

    def _raise_open_files(self):
        before, after, error = self._open_files()
        if error is not None:
            self.log.warn(
                "funcplane could not raise its open files limit ({before}): {error}",
                before=before,
                error=error,
            )
        elif after != before:
            self.log.info(
                "raised the open files limit from {before} to {after} (the hard limit)",
                before=before,
                after=after,
            )
        if after != resource.RLIM_INFINITY and after < LOW_OPEN_FILES:
            self.log.warn(
                "funcplane may open only {limit} files: each running version takes about 3"
                " and each request 1 or 2; raise its hard limit (LimitNOFILE= in its systemd"
                " unit) to run more than a few hundred versions",
                limit=after,
            )

    def launch(self, spec):
        if self._launcher is None or self.compatibility is None:
            raise RuntimeError("the runtime has not started: no child can be launched yet")
        # Before anything is spawned: a date or flag this runtime cannot honour.
        self.compatibility.check(
            spec.compatibility_date or self._choices.compatibility_date,
            spec.compatibility_flags,
            utc_date(self._reactor.seconds()),
        )
        return self._launcher.launch(spec)

    def stopService(self):
        super().stopService()
        self._launcher = None
        if self.confiner is not None:
            self.confiner.close()
