"""
The seams of funcplane: each interface here has a real implementation and a fake in the
tests.
"""

from zope.interface import Attribute, Interface


class IChild(Interface):
    """
    One running workerd process serving one version.
    """

    spec = Attribute("The L{funcplane.model.VersionSpec} it serves.")
    pid = Attribute("The process id, or L{None} once it has exited.")
    socket_path = Attribute("The unix socket it serves HTTP on.")

    def when_ready():
        """
        A Deferred that fires with this child once it accepts requests, or fails with
        L{funcplane.errors.StartFailed} if it exits or hangs first.
        """

    def when_ended():
        """
        A Deferred that fires with the exit reason (an exception) once the process is gone.
        """

    def stop(grace):
        """
        SIGTERM, then SIGKILL after C{grace} seconds; return L{when_ended}.
        """

    def signal(signum):
        """
        Send C{signum} to the process, unless it has exited.
        """

    def stderr_tail():
        """
        The last lines the child wrote to stderr.
        """


class IRuntimeLauncher(Interface):
    """
    Starts workerd children.
    """

    def launch(spec):
        """
        Start a child for L{funcplane.model.VersionSpec} C{spec} and return its L{IChild}.
        """


class ISupervisor(Interface):
    """
    Owns the workerd children: starts a version when it is deployed or first requested,
    counts its requests in flight, and stops it.  The edge uses L{lease},
    L{running_socket}, L{ensure_running} and L{request_timed_out}; the platform the rest.
    """

    def lease(version_id):
        """
        Count one request as in flight on C{version_id} until the returned object's
        C{release()}; a version with requests in flight is never suspended.
        """

    def running_socket(version_id):
        """
        The socket path of C{version_id} if it is running now, else L{None}: the proxy's
        fast path, without a Deferred.
        """

    def ensure_running(version_id):
        """
        A Deferred firing with the socket path of C{version_id} once it serves: at once if
        it runs, else after starting (or thawing) its process, single-flight however many
        callers wait.  Fails with L{funcplane.errors.StartFailed} or
        L{funcplane.errors.AtCapacity}.
        """

    def request_timed_out(version_id):
        """
        A request to C{version_id} ran past the request timeout: check whether its child is
        wedged.
        """

    def start(spec):
        """
        Start L{funcplane.model.VersionSpec} C{spec} (a new version, before it is
        published); a Deferred firing with its L{IChild} once it serves.
        """

    def stop(version_id):
        """
        Stop C{version_id}'s process; a Deferred firing once it has exited.
        """

    def forget(version_id):
        """
        Stop C{version_id} and drop what is known of it (it was deleted).
        """

    def runtime(version_id):
        """
        What is known of C{version_id} now: a L{funcplane.runtime.supervisor.Runtime}.
        """

    def has_room():
        """
        Whether one more child may start without suspending another.
        """

    def retire(version_id):
        """
        C{version_id} serves no host but its own any more (it is not the latest, in the
        deployment or behind an alias): freeze it as soon as it has no request in flight,
        rather than once it has been idle for the freeze period.  A later L{start} or
        L{ensure_running} (asked before a host is pointed at it again) undoes this.
        """


class ITailSink(Interface):
    """
    What the edge tells about finished requests while someone tails a function.
    """

    active = Attribute("Whether any tail is live: the edge asks nothing more while not.")

    def watching(host):
        """
        The name of the function C{host} (a Host header's bytes) belongs to if a tail
        watches it, else L{None}; asked once, when a request is routed.
        """

    def request_done(traced):
        """
        A watched request ended: C{traced} is a L{funcplane.observe.trace.Traced}.
        """


class ITailSocket(Interface):
    """
    The connection one live tail's events go out on: a WebSocket on the admin side
    (L{funcplane.admin.cloudflare.tails.TailSocket}), which L{funcplane.observe.tails.Tails}
    writes to without knowing it.  The socket tells the tails when it connects
    (C{Tails.attached}) and when it ends (C{Tails.detached}).
    """

    paused = Attribute("Whether the client reads too slowly: events are dropped meanwhile.")

    def send_text(text):
        """
        Send one event (a JSON text).
        """

    def close(code, reason):
        """
        End the connection with WebSocket close code C{code} (RFC 6455 7.4.1) and
        C{reason}.
        """


class IStore(Interface):
    """
    Persistent state: functions, versions, aliases, deployments and the latest pointer.
    Every method but L{close} returns a Deferred.  It stores and reads; the rules of what
    may change and what follows from a change are the platform's.
    """

    def open():
        """
        Open the database and bring its schema up to date.
        """

    def close():
        """
        Close the database.
        """

    def get_setting(key):
        """
        The value stored under C{key}, or L{None}.
        """

    def put_setting(key, value):
        """
        Store C{value} under C{key}.
        """

    def check_publish(deployment, version_name):
        """
        Raise what L{publish} would raise for these names, writing nothing.
        """

    def publish(deployment, spec, created_at, deployment_id, built_on):
        """
        Record the new version C{spec} (a L{funcplane.model.VersionSpec}) of
        C{deployment.function}, creating the function if needed; if C{deployment.deploy},
        make it the function's whole deployment (C{deployment_id}); point
        C{deployment.alias} at it; all in one transaction.  Return the function's
        L{funcplane.model.FunctionRoutes}.  Raise L{funcplane.errors.Conflict} if a name is
        taken, or if the function's newest version is no longer C{built_on} (the id of the
        newest version the caller read and built the new one on, or L{None} if it read
        none): publishing then would silently undo the change that made a newer one.
        """

    def deploy(function, shares, created_at, deployment_id, metadata):
        """
        Make C{shares}, C{(version id, percentage)} pairs, the deployment of C{function}:
        its own host is served by those versions in those proportions, and the largest share
        becomes the latest version.  Return the function's routes.
        """

    def deployments(function):
        """
        The L{funcplane.model.DeploymentInfo}s of C{function}, newest first.
        """

    def current_deployment(function):
        """
        The L{funcplane.model.DeploymentInfo} serving C{function}'s own host now: its newest
        deployment that still has a version, or L{None}.
        """

    def set_latest(function, version, created_at, deployment_id, metadata):
        """
        Make version C{version} (a name) the whole deployment of C{function}; return the
        function's routes.
        """

    def set_alias(function, alias, version):
        """
        Point C{alias} at C{version} (a name); return the function's routes.
        """

    def delete_alias(function, alias):
        """
        Remove an alias; return the function's routes.
        """

    def delete_version(seen, current, version_id, latest, replacement=None):
        """
        In one transaction: remove version C{version_id} with the aliases that point to it,
        record C{replacement} (a L{funcplane.model.DeploymentInfo}, or L{None}) as the
        function's newest deployment, and make C{latest} (a version id, or L{None}) its
        latest version.  Return the function's L{funcplane.model.FunctionRoutes}.

        Whether to delete and what serves afterwards is the caller's decision, made on what
        it read: C{seen}, the function's L{funcplane.model.FunctionInfo} (L{function}), and
        C{current}, its L{current_deployment}.  The store writes only if both still are
        what it holds; otherwise it writes nothing and fails with
        L{funcplane.errors.Conflict}: read again and retry.
        """

    def delete_versions(seen, current, version_ids):
        """
        In one transaction, remove the versions C{version_ids}, which the caller found
        unused in C{seen} and C{current} (as for L{delete_version}); return the function's
        routes.  Writes nothing and fails with L{funcplane.errors.Conflict} if the function
        changed since.
        """

    def delete_function(function):
        """
        Remove a function with all its versions and aliases; return the versions' ids.
        """

    def function(name):
        """
        The L{funcplane.model.FunctionInfo} of C{name}.
        """

    def functions():
        """
        Every L{funcplane.model.FunctionInfo}, by name.
        """

    def version_spec(version_id):
        """
        The L{funcplane.model.VersionSpec} needed to start version C{version_id}.
        """

    def routes():
        """
        A L{funcplane.model.FunctionRoutes} for every function.
        """


class IRouteTable(Interface):
    """
    Maps request hosts to version ids, in memory.
    """

    def is_function_host(host):
        """
        Whether C{host} (a Host header's bytes) is under the functions' domain.
        """

    def resolve(host, header=None):
        """
        The version id that serves C{host}.  C{header(name)} gives the request's first
        value of header C{name} (lower-case bytes) or L{None}; it is asked only when the
        host's function splits its traffic.

        @raise funcplane.routing.NotAFunctionHost: C{host} is not under the functions'
            domain.
        @raise funcplane.routing.NotRouted: with a message naming what was not found.
        """

    def replace(routes):
        """
        Set everything known about one function from a L{funcplane.model.FunctionRoutes}.
        """

    def remove(function):
        """
        Forget a function.
        """


class IUpstreamPool(Interface):
    """
    Keep-alive connections to the children.
    """

    def acquire(socket_path):
        """
        A Deferred that fires with an idle L{funcplane.edge.upstream.UpstreamConnection} to the
        child listening on C{socket_path}, connecting a new one when none is idle.
        """

    def take_idle(socket_path):
        """
        An idle connection to C{socket_path} at once, or L{None} when there is none: the
        proxy's fast path, without a Deferred.
        """

    def release(connection):
        """
        Keep C{connection} for a later request.
        """

    def close():
        """
        Close every idle connection; the Deferred fires when they are closed.
        """


class ISchedules(Interface):
    """
    The functions' cron triggers, stored (L{funcplane.store.schedules}).  Every method
    returns a Deferred and fails with L{funcplane.errors.NoSuchFunction} for a function
    that does not exist (but L{claim}, which says so).
    """

    def schedules(function):
        """
        C{(stored name, schedules)}: the function's L{funcplane.model.Schedule}s in order.
        """

    def replace(function, crons, now):
        """
        Make the expressions C{crons} the function's schedules (those it keeps keep their
        times); return C{(stored name, schedules)}.
        """

    def every():
        """
        C{(function name, schedule)} for every schedule.
        """

    def target(function):
        """
        The L{funcplane.model.Target} a scheduled event of the function runs on.
        """

    def claim(function, cron, tick):
        """
        Record that schedule C{cron} fires for scheduled time C{tick}, unless it already
        has: C{("claimed", target)}, C{("fired", target)}, or C{("gone", None)} when the
        function or the schedule is no more.
        """
