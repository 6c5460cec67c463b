"""
Value types that cross funcplane's seams.  They are frozen: the API builds them once from
validated input, and the core trusts them.
"""

from attrs import field, frozen

SERVICE_WORKER = "service-worker"
MODULE = "module"
FORMATS = (SERVICE_WORKER, MODULE)


@frozen
class Deployment:
    """
    A validated request to deploy code as a new version of a function.

    @ivar version: the version name, or L{None} to have one generated.
    @ivar alias: an alias to point at the new version, or L{None}.
    @ivar env: environment variables as sorted C{(name, value)} pairs.
    """

    function: str
    code: str
    format: str
    version: str | None = None
    alias: str | None = None
    env: tuple = field(default=(), converter=lambda pairs: tuple(sorted(dict(pairs).items())))


@frozen
class VersionSpec:
    """
    Everything the runtime needs to start one version, and nothing it does not.

    @ivar id: the version's identifier, made by funcplane (never a user string); it names
        the version's socket.
    @ivar function: the function's name, for log events.
    @ivar version: the version's name, for log events.
    """

    id: str
    function: str
    version: str
    code: str
    format: str
    env: tuple = ()


@frozen
class VersionInfo:
    """
    A version as the store knows it.
    """

    id: str
    name: str
    created_at: float


@frozen
class FunctionInfo:
    """
    A function as the store knows it: its versions (oldest first), its aliases as sorted
    C{(alias, version name)} pairs, and the name of its latest version.
    """

    name: str
    created_at: float
    latest: str | None
    versions: tuple = ()
    aliases: tuple = ()

    def version_named(self, name):
        """
        The L{VersionInfo} called C{name} (compared case-insensitively), or L{None}.
        """
        key = name.lower()
        for version in self.versions:
            if version.name.lower() == key:
                return version
        return None

    def alias_target(self, alias):
        """
        The name of the version C{alias} points to, or L{None}.
        """
        key = alias.lower()
        for name, target in self.aliases:
            if name.lower() == key:
                return target
        return None


@frozen
class FunctionRoutes:
    """
    What the route table knows of one function: ids by lower-case version and alias name,
    and the latest version's id.
    """

    function: str
    latest: str | None
    versions: dict = field(factory=dict)
    aliases: dict = field(factory=dict)
