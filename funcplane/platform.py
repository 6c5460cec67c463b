"""
The use cases: deploy, roll back, alias, stop, delete, list.  Each one keeps the store (the
source of truth), the route table and the running children in step.
"""

import uuid

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from funcplane import retention
from funcplane.boot import start_latest
from funcplane.errors import (
    Conflict,
    FuncplaneError,
    InvalidBinding,
    NoSuchFunction,
    NoSuchVersion,
    NotDeployed,
)
from funcplane.locks import KeyedLocks
from funcplane.model import Deployment, VersionSpec
from funcplane.names import generate_version_name

GENERATED_NAME_ATTEMPTS = 5


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

    Changes to one function (deploy, change_bindings, deploy_versions, rollback,
    set_alias, delete_alias, delete_version, delete_function) happen one at a time, in the
    order they were asked for: each reads what it builds on only once the one before it
    has written.  The store checks it again when it writes (a version is published only
    while the newest version it was built on is still the newest), for writers this lock
    does not see.

    @param clock: an C{IReactorTime}, for creation times.
    @param store: an L{funcplane.interfaces.IStore}.
    @param supervisor: a L{funcplane.runtime.supervisor.Supervisor}.
    @param routes: an L{funcplane.interfaces.IRouteTable}.
    @param tails: the L{funcplane.observe.tails.Tails}, whose tails of a deleted function end.
    @param scale_to_zero: start no version when funcplane starts (C{--scale-to-zero}).
    @param keep_versions: after a deploy, delete the function's versions beyond its newest
        C{keep_versions} that nothing uses (C{--keep-versions}); L{None} or 0: keep them
        all.
    @param compatibility_date: the compatibility date a deploy that names none is given
        (C{--compatibility-date}), or L{None} to leave it to the runtime.
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
        scale_to_zero=False,
        keep_versions=None,
        compatibility_date=None,
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
        self._scale_to_zero = scale_to_zero
        self._keep_versions = keep_versions
        self._compatibility_date = compatibility_date
        self._locks = KeyedLocks()

    async def load_routes(self):
        """
        Fill the route table from the store; return every function's routes.
        """
        all_routes = await self._store.routes()
        for routes in all_routes:
            self._routes.replace(routes)
        return all_routes

    def start_latest(self, all_routes):
        """
        Start the versions that should be warm (L{funcplane.boot.start_latest}): every
        function's latest, unless C{scale_to_zero}.
        """
        return start_latest(self._supervisor, all_routes, self._scale_to_zero)

    async def _read(self, function):
        """
        The L{funcplane.model.FunctionInfo} of C{function}, or L{None} if it is new.
        """
        try:
            return await self._store.function(function)
        except NoSuchFunction:
            return None

    async def _version_name(self, deployment, info):
        name = deployment.version
        if name is None:
            taken = set()
            if info is not None:
                taken = {v.name.lower() for v in info.versions}
                taken.update(a.lower() for a, _ in info.aliases)
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

    async def _bindings(self, deployment, newest):
        """
        The new version's bindings: its own, plus those it inherits by name, plus those of
        the kept types it does not set.  As on Cloudflare, it inherits from C{newest} (the
        id of the function's newest version, deployed or not, or L{None}): C{wrangler
        versions secret put/delete} build on it too.
        """
        if not deployment.inherit and not deployment.keep_types:
            return deployment.bindings
        current = {}
        if newest is not None:
            spec = await self._store.version_spec(newest)
            current = {binding.name: binding for binding in spec.bindings}
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

    def _serve(self, routes, *starting):
        """
        Route by C{routes}; the versions that serve no host of the function but their own
        any more are frozen once idle, except those in C{starting} (just started).
        """
        self._routes.replace(routes)
        serving = retention.serving(routes)
        for version_id in routes.versions.values():
            if version_id not in serving and version_id not in starting:
                self._supervisor.retire(version_id)

    async def deploy(self, deployment):
        """
        Start C{deployment} as a new version, and only once it serves, record it, make it
        the function's whole deployment (unless it is only uploaded) and point its alias at
        it.  Return its L{VersionSpec}.

        @raise funcplane.errors.StartFailed: the script did not start; nothing is recorded
            and no process is left.
        @raise funcplane.errors.Conflict: a name is taken, or the function changed (by a
            writer that does not share this platform's lock) while the version started.
        """
        async with self._locks.hold(deployment.function):
            return await self._deploy(deployment, await self._read(deployment.function))

    async def _deploy(self, deployment, info):
        """
        L{deploy}, building on C{info}: the function as it was read (or L{None}).
        """
        name = await self._version_name(deployment, info)
        newest = info.versions[-1].id if info is not None and info.versions else None
        spec = VersionSpec(
            id=self._new_id(),
            function=deployment.function,
            version=name,
            format=deployment.format,
            modules=deployment.modules,
            bindings=await self._bindings(deployment, newest),
            # A deploy that names no date is pinned to today's default: a later change of
            # the operator's default does not change how this version behaves.
            compatibility_date=deployment.compatibility_date or self._compatibility_date,
            compatibility_flags=deployment.compatibility_flags,
            # wrangler versions secret put keeps the newest version's assets.
            assets=(await self._store.version_spec(newest)).assets
            if deployment.keep_assets and newest
            else deployment.assets,
        )
        started = self._clock.seconds()
        try:
            await self._supervisor.start(spec)
            try:
                routes = await self._store.publish(
                    deployment, spec, self._clock.seconds(), self._new_deployment_id(), newest
                )
            except BaseException:
                await self._supervisor.stop(spec.id)
                raise
        except FuncplaneError as e:
            self.log.warn(
                "could not {what} {function}:{version}: {reason}",
                what="deploy" if deployment.deploy else "upload",
                function=deployment.function,
                version=name,
                reason=str(e),
                error=type(e).__name__,
            )
            raise
        self._serve(routes, spec.id)
        self.log.info(
            "{what} {function}:{version} in {seconds:.3f}s",
            what="deployed" if deployment.deploy else "uploaded",
            function=deployment.function,
            version=name,
            seconds=self._clock.seconds() - started,
        )
        if self._keep_versions:
            await self._prune(deployment.function)
        return spec

    async def _prune(self, function):
        """
        Delete C{function}'s versions beyond its newest C{keep_versions} that nothing uses.
        The deploy that asks has succeeded whatever happens here: a failure is logged, and
        the next deploy prunes again.  Their processes are stopped without the deploy
        waiting for them to finish what they were doing.
        """
        try:
            info = await self._store.function(function)
            current = await self._store.current_deployment(function)
            doomed = retention.prunable(info, current, self._keep_versions)
            if not doomed:
                return
            routes = await self._store.delete_versions(info, current, [v.id for v in doomed])
            self._routes.replace(routes)
            for version in doomed:
                Deferred.fromCoroutine(self._forget(version.id)).addErrback(
                    lambda f, v=version: self.log.failure(
                        "could not stop deleted version {version}", f, version=v.name
                    )
                )
        except Exception:
            self.log.failure("could not delete the old versions of {function}", function=function)
            return
        self.log.info(
            "deleted {count} old versions of {function}, beyond its newest {keep}"
            " (--keep-versions): {versions}",
            count=len(doomed),
            function=info.name,
            keep=self._keep_versions,
            versions=", ".join(v.name for v in doomed),
        )

    async def deploy_versions(self, function, shares, metadata):
        """
        Serve C{function}'s own host by several versions: C{shares} are C{(version id,
        percentage)} pairs summing to 100.  Each version is started first, so that the
        switch drops nothing.  Return the deployment's id.
        """
        async with self._locks.hold(function):
            for version_id, _ in shares:
                await self._supervisor.ensure_running(version_id)
            deployment_id = self._new_deployment_id()
            routes = await self._store.deploy(
                function, shares, self._clock.seconds(), deployment_id, metadata
            )
            self._serve(routes)
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
        async with self._locks.hold(function):
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
            deployment = Deployment(
                function=info.name,
                format=current.format,
                modules=current.modules,
                bindings=tuple(bindings.values()),
                keep_types=(),
                metadata=metadata,
                compatibility_date=current.compatibility_date,
                compatibility_flags=current.compatibility_flags,
                assets=current.assets,
            )
            return await self._deploy(deployment, info)

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
        async with self._locks.hold(function):
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
            self._serve(routes)
        self.log.info(
            "rolled {function} back to {version}", function=info.name, version=target.name
        )
        return info.name, target.name

    async def set_alias(self, function, alias, version):
        """
        Point C{alias} of C{function} at C{version}.
        """
        async with self._locks.hold(function):
            info, target = await self._existing_version(function, version)
            # Started first, so that moving the alias drops nothing.
            await self._supervisor.ensure_running(target.id)
            self._serve(await self._store.set_alias(function, alias, version))
        return info.name, target.name

    async def delete_alias(self, function, alias):
        """
        Remove C{alias} of C{function}.
        """
        async with self._locks.hold(function):
            self._serve(await self._store.delete_alias(function, alias))

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
        version is left, nothing serves the function's host (L{retention.successor}).

        The decision is made on what was read from the store, and the store writes it only
        if that still holds, so a change made meanwhile cannot slip past these rules.

        @raise Conflict: the version is in use; or the function changed between the read
            and the write, and nothing was deleted (try again).
        """
        async with self._locks.hold(function):
            info = await self._store.function(function)
            target = info.version_named(version)
            if target is None:
                raise NoSuchVersion(f"function {function} has no version {version}")
            current = await self._store.current_deployment(function)
            uses = retention.uses(info, target, current)
            if uses and not force:
                raise Conflict(
                    f"version {version} of {function} is in use ({', '.join(uses)});"
                    " roll back or move the aliases first, or delete with ?force=true"
                )
            latest = info.version_named(info.latest).id if info.latest is not None else None
            replacement = None
            if target.id == latest or (current and target.id in dict(current.versions)):
                latest, replacement = retention.successor(
                    info, target, current, self._new_deployment_id, self._clock.seconds()
                )
            routes = await self._store.delete_version(
                info, current, target.id, latest, replacement
            )
            self._routes.replace(routes)
            await self._forget(target.id)

    async def _forget(self, version_id):
        await self._supervisor.forget(version_id)
        if self._logbook is not None:
            self._logbook.forget(version_id)

    async def delete_function(self, function):
        """
        Delete C{function}: every host of it answers 404 and its processes stop.
        """
        async with self._locks.hold(function):
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
