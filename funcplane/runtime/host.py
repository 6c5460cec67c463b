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

import attrs
from twisted.application.service import Service
from twisted.logger import Logger
from zope.interface import implementer

from funcplane.interfaces import IRuntimeLauncher
from funcplane.runtime.config import ConfigBuilder, RuntimeSettings, load_schema
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
    """

    workerd: str
    run_dir: str
    data_dir: str
    startup_timeout: float = 5.0
    egress_allow: tuple = ()
    compatibility_date: str = "2026-11-01"
    child_limits: ChildLimits = ChildLimits()


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
    @ivar confiner: the L{funcplane.runtime.limits.IChildLimits} in force, once started.
    """

    log = Logger()

    def __init__(self, reactor, choices, logbook=None, machine=Machine, in_thread=None):
        self._reactor = reactor
        self._in_thread = in_thread
        self._choices = choices
        self._logbook = logbook
        self._machine = machine
        self._launcher = None
        self.confiner = None

    def startService(self):
        super().startService()
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
        )

    def launch(self, spec):
        if self._launcher is None:
            raise RuntimeError("the runtime has not started: no child can be launched yet")
        return self._launcher.launch(spec)

    def stopService(self):
        super().stopService()
        self._launcher = None
        if self.confiner is not None:
            self.confiner.close()
