"""
The use cases: deploy, roll back, alias, stop, delete, list.  Each one keeps the store (the
source of truth), the route table and the running children in step.
"""

import uuid

import attrs
from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.logger import Logger

from funcplane.errors import (
    AtCapacity,
    Conflict,
    InvalidBinding,
    NoSuchFunction,
    NoSuchVersion,
    NotDeployed,
)
from funcplane.model import Deployment, DeploymentInfo, VersionSpec
from funcplane.names import generate_version_name

GENERATED_NAME_ATTEMPTS = 5
# Latest versions started at once when funcplane starts.
START_CONCURRENCY = 4


@attrs.frozen
class VersionState:
    """
    A version with what the runtime knows of it right now (a
    L{funcplane.runtime.supervisor.Runtime}).
    """

    info: object
    runtime: object


@attrs.frozen
class FunctionState:
    """
    A L{funcplane.model.FunctionInfo} with the state of each version.
    """

    info: object
    versions: tuple


class Platform:
    """
    funcplane's use cases.

    @param clock: an C{IReactorTime}, for creation times.
    @param store: an L{funcplane.interfaces.IStore}.
    @param supervisor: a L{funcplane.runtime.supervisor.Supervisor}.
    @param routes: an L{funcplane.interfaces.IRouteTable}.
    @param tails: the L{funcplane.observe.tails.Tails}, whose tails of a deleted function end.
    """

    log = Logger()

    def __init__(
        self,
        clock,
        store,
        supervisor,
        routes,
        new_id=lambda: uuid.uuid4().hex,
        new_version_name=generate_version_name,
        logbook=None,
        new_deployment_id=lambda: uuid.uuid4().hex,
        tails=None,
    ):
        self._clock = clock
        self._store = store
        self._supervisor = supervisor
        self._routes = routes
        self._new_id = new_id
        self._new_deployment_id = new_deployment_id
        self._new_version_name = new_version_name
        self._logbook = logbook
        self._tails = tails

    async def load_routes(self):
        """
        Fill the route table from the store; return every function's routes.
        """
        all_routes = await self._store.routes()
        for routes in all_routes:
            self._routes.replace(routes)
        return all_routes

    async def start_latest(self, all_routes, concurrency=START_CONCURRENCY):
        """
        Start every function's latest version, a few at a time and only while the running
        budget has room; the rest start on their first request.  Failures are logged.

        Cancelling the Deferred (funcplane is stopping) starts nothing more; a start
        already asked of the supervisor goes on there, and the supervisor stops it when it
        stops.
        """
        latest = [(r.function, r.latest) for r in all_routes if r.latest is not None]
        queue = iter(latest)
        started = []

        async def start(function, version_id):
            if not self._supervisor.has_room():
                return
            try:
                await self._supervisor.ensure_running(version_id)
            except CancelledError:
                raise
            except AtCapacity:
                return
            except Exception:
                self.log.failure(
                    "could not start the latest version of {function}", function=function
                )
                return
            started.append(function)

        async def work():
            # Each worker takes the next version once its last one has started.
            for function, version_id in queue:
                await start(function, version_id)

        workers = [Deferred.fromCoroutine(work()) for _ in range(concurrency)]
        for succeeded, result in await DeferredList(workers, consumeErrors=True):
            if not succeeded:
                # Cancelled: the workers stopped taking versions, and so does this.
                result.raiseException()
        if len(started) < len(latest):
            self.log.info(
                "started the latest version of {started} of {count} functions; the others"
                " start on their first request (--max-running)",
                started=len(started),
                count=len(latest),
            )

    async def _taken_names(self, function):
        try:
            info = await self._store.function(function)
        except NoSuchFunction:
            return set()
        return {v.name.lower() for v in info.versions} | {a.lower() for a, _ in info.aliases}

    async def _version_name(self, deployment):
        name = deployment.version
        if name is None:
            taken = await self._taken_names(deployment.function)
            if deployment.alias is not None:
                taken.add(deployment.alias.lower())
            for _ in range(GENERATED_NAME_ATTEMPTS):
                name = self._new_version_name()
                if name not in taken:
                    break
            else:
                raise Conflict("could not generate a free version name; give one with 'version'")
        await self._store.check_publish(deployment, name)
        return name

    async def _current_bindings(self, function):
        """
        The bindings (secrets included) of C{function}'s newest version, by name; empty for
        a new function.  As on Cloudflare, a new version inherits from the newest version,
        deployed or not: C{wrangler versions secret put/delete} build on it too.
        """
        try:
            info = await self._store.function(function)
        except NoSuchFunction:
            return {}
        if not info.versions:
            return {}
        spec = await self._store.version_spec(info.versions[-1].id)
        return {binding.name: binding for binding in spec.bindings}

    async def _bindings(self, deployment):
        """
        The new version's bindings: its own, plus those it inherits by name, plus those of
        the kept types it does not set.
        """
        if not deployment.inherit and not deployment.keep_types:
            return deployment.bindings
        current = await self._current_bindings(deployment.function)
        found = {binding.name: binding for binding in deployment.bindings}
        for name in deployment.inherit:
            if name not in current:
                raise InvalidBinding(
                    f"inherit binding '{name}' is invalid: the latest version of"
                    f" {deployment.function} has no binding {name}"
                )
            found[name] = current[name]
        for name, binding in current.items():
            if binding.type in deployment.keep_types and name not in found:
                found[name] = binding
        return tuple(sorted(found.values(), key=lambda binding: binding.name))

    async def deploy(self, deployment):
        """
        Start C{deployment} as a new version, and only once it serves, record it, make it
        the function's whole deployment (unless it is only uploaded) and point its alias at
        it.  Return its L{VersionSpec}.

        @raise funcplane.errors.StartFailed: the script did not start; nothing is recorded
            and no process is left.
        @raise funcplane.errors.Conflict: a name is taken.
        """
        name = await self._version_name(deployment)
        spec = VersionSpec(
            id=self._new_id(),
            function=deployment.function,
            version=name,
            format=deployment.format,
            modules=deployment.modules,
            bindings=await self._bindings(deployment),
        )
        started = self._clock.seconds()
        await self._supervisor.start(spec)
        try:
            routes = await self._store.publish(
                deployment, spec, self._clock.seconds(), self._new_deployment_id()
            )
        except BaseException:
            await self._supervisor.stop(spec.id)
            raise
        self._routes.replace(routes)
        self.log.info(
            "{what} {function}:{version} in {seconds:.3f}s",
            what="deployed" if deployment.deploy else "uploaded",
            function=deployment.function,
            version=name,
            seconds=self._clock.seconds() - started,
        )
        return spec

    async def deploy_versions(self, function, shares, metadata):
        """
        Serve C{function}'s own host by several versions: C{shares} are C{(version id,
        percentage)} pairs summing to 100.  Each version is started first, so that the
        switch drops nothing.  Return the deployment's id.
        """
        for version_id, _ in shares:
            await self._supervisor.ensure_running(version_id)
        deployment_id = self._new_deployment_id()
        routes = await self._store.deploy(
            function, shares, self._clock.seconds(), deployment_id, metadata
        )
        self._routes.replace(routes)
        self.log.info(
            "deployed {function}: {shares}",
            function=function,
            shares=", ".join(f"{version_id} {percentage:g}%" for version_id, percentage in shares),
        )
        return deployment_id

    async def change_bindings(self, function, change, metadata):
        """
        Deploy a new version of C{function} that is the one now serving it with its
        bindings changed by C{change} (given the bindings by name, it returns the new
        ones by name), as Cloudflare does for secret changes.  Return its L{VersionSpec}.

        @raise NotDeployed: the newest version is not serving all of the traffic.
        """
        info = await self._store.function(function)
        history = await self._store.deployments(function)
        newest = info.versions[-1] if info.versions else None
        if newest is None or not history or history[0].versions != ((newest.id, 100),):
            raise NotDeployed(
                f"the latest version of {info.name} is not deployed to all of its traffic;"
                " deploy it (or roll back) first, then change its secrets"
            )
        current = await self._store.version_spec(newest.id)
        bindings = change({binding.name: binding for binding in current.bindings})
        return await self.deploy(
            Deployment(
                function=info.name,
                format=current.format,
                modules=current.modules,
                bindings=tuple(bindings.values()),
                keep_types=(),
                metadata=metadata,
            )
        )

    async def modules(self, version_id):
        """
        The modules of version C{version_id}, the main one first.
        """
        return (await self._store.version_spec(version_id)).modules

    async def deployments(self, function):
        """
        The L{funcplane.model.DeploymentInfo}s of C{function}, newest first.
        """
        return await self._store.deployments(function)

    async def _existing_version(self, function, version):
        info = await self._store.function(function)
        found = info.version_named(version)
        if found is None:
            raise NoSuchVersion(f"function {info.name} has no version {version}")
        return info, found

    async def rollback(self, function, version, alias=None):
        """
        Make C{version} the latest of C{function} (and point C{alias} at it, if given),
        starting it first so that the switch drops nothing.  Return the function's and the
        version's stored names.
        """
        info, target = await self._existing_version(function, version)
        await self._supervisor.ensure_running(target.id)
        routes = await self._store.set_latest(
            function,
            version,
            self._clock.seconds(),
            self._new_deployment_id(),
            {"source": "api", "triggered_by": "rollback"},
        )
        if alias is not None:
            routes = await self._store.set_alias(function, alias, version)
        self._routes.replace(routes)
        self.log.info(
            "rolled {function} back to {version}", function=info.name, version=target.name
        )
        return info.name, target.name

    async def set_alias(self, function, alias, version):
        """
        Point C{alias} of C{function} at C{version}.
        """
        info, target = await self._existing_version(function, version)
        # Started first, so that moving the alias drops nothing.
        await self._supervisor.ensure_running(target.id)
        self._routes.replace(await self._store.set_alias(function, alias, version))
        return info.name, target.name

    async def delete_alias(self, function, alias):
        """
        Remove C{alias} of C{function}.
        """
        self._routes.replace(await self._store.delete_alias(function, alias))

    async def stop_version(self, function, version):
        """
        Stop C{version}'s process; it starts again on its next request.
        """
        _, target = await self._existing_version(function, version)
        await self._supervisor.stop(target.id)

    async def delete_version(self, function, version, force=False):
        """
        Delete C{version}: its hosts answer 404 and its process stops.

        A version in use (the latest, serving part of the function's traffic, or the target
        of an alias) is refused unless C{force}; forced, its aliases go with it.  If it
        served the function's own host, the rest of that deployment serves on; if nothing
        is left of it, the newest remaining version takes the whole deployment; if no
        version is left, nothing serves the function's host.

        The decision is made on what was read from the store, and the store writes it only
        if that still holds, so a change made meanwhile cannot slip past these rules.

        @raise Conflict: the version is in use; or the function changed between the read
            and the write, and nothing was deleted (try again).
        """
        info = await self._store.function(function)
        target = info.version_named(version)
        if target is None:
            raise NoSuchVersion(f"function {function} has no version {version}")
        current = await self._store.current_deployment(function)
        latest = info.version_named(info.latest).id if info.latest is not None else None
        serving = current is not None and target.id in dict(current.versions)
        uses = [f"alias {a} points to it" for a, name in info.aliases if name == target.name]
        if target.id == latest:
            uses.insert(0, "it is the latest version")
        elif serving:
            uses.insert(0, "it serves part of the function's traffic")
        if uses and not force:
            raise Conflict(
                f"version {version} of {function} is in use ({', '.join(uses)});"
                " roll back or move the aliases first, or delete with ?force=true"
            )
        replacement = None
        if serving or target.id == latest:
            latest, replacement = self._successor(info, target, current)
        routes = await self._store.delete_version(info, current, target.id, latest, replacement)
        self._routes.replace(routes)
        await self._forget(target.id)

    def _successor(self, info, target, current):
        """
        What serves the function's own host once C{target}, which served it, is gone: the
        new latest version's id (or L{None}), and the deployment to record for it (or
        L{None} when the rest of C{current} serves on, or when nothing is left).
        """
        rest = [share for share in current.versions if share[0] != target.id] if current else []
        if rest:
            return max(rest, key=lambda share: share[1])[0], None
        remaining = [v for v in info.versions if v.id != target.id]
        if not remaining:
            return None, None
        newest = remaining[-1].id
        return newest, DeploymentInfo(
            id=self._new_deployment_id(),
            created_at=self._clock.seconds(),
            versions=((newest, 100),),
            metadata={"source": "api", "triggered_by": "delete"},
        )

    async def _forget(self, version_id):
        await self._supervisor.forget(version_id)
        if self._logbook is not None:
            self._logbook.forget(version_id)

    async def delete_function(self, function):
        """
        Delete C{function}: every host of it answers 404 and its processes stop.
        """
        ids = await self._store.delete_function(function)
        self._routes.remove(function)
        if self._tails is not None:
            self._tails.end_function(function)
        for version_id in ids:
            await self._forget(version_id)
        self.log.info("deleted function {function}", function=function)

    def _state(self, info):
        return FunctionState(
            info=info,
            versions=tuple(
                VersionState(info=v, runtime=self._supervisor.runtime(v.id))
                for v in info.versions
            ),
        )

    async def function(self, name):
        """
        The L{FunctionState} of C{name}.
        """
        return self._state(await self._store.function(name))

    async def functions(self):
        """
        The L{FunctionState} of every function.
        """
        return [self._state(info) for info in await self._store.functions()]


    async def log_sources(self, function, version=None):
        """
        The function's stored name and the ids of the versions whose logs to read: one
        version's, or every version's.
        """
        info = await self._store.function(function)
        if version is None:
            return info.name, [v.id for v in info.versions]
        found = info.version_named(version)
        if found is None:
            raise NoSuchVersion(f"function {info.name} has no version {version}")
        return info.name, [found.id]
