"""
Value types that cross funcplane's seams.  They are frozen: the API builds them once from
validated input, and the core trusts them.
"""

from attrs import field, frozen

SERVICE_WORKER = "service-worker"
MODULE = "module"
FORMATS = (SERVICE_WORKER, MODULE)


# What a module's content is: text (UTF-8) or bytes, by the workerd module kind.
TEXT_KINDS = ("esModule", "commonJsModule", "text", "json")
BINARY_KINDS = ("data", "wasm")
# The one module of a service-worker version.
SCRIPT = "script"
MODULE_KINDS = TEXT_KINDS + BINARY_KINDS + (SCRIPT,)

# Binding types, by Cloudflare's names: a string, a JSON value (kept as its JSON text), a
# secret string (never shown by any API), a Workers KV namespace (its value is the
# namespace's id, funcplane's own).
PLAIN_TEXT = "plain_text"
JSON = "json"
SECRET_TEXT = "secret_text"
KV_NAMESPACE = "kv_namespace"
BINDING_TYPES = (PLAIN_TEXT, JSON, SECRET_TEXT, KV_NAMESPACE)


@frozen
class Module:
    """
    One module of a version, its bytes kept exactly as uploaded.

    @ivar name: the name other modules import it by (never a file path).
    @ivar kind: one of L{MODULE_KINDS}.
    """

    name: str
    kind: str
    content: bytes


@frozen
class Binding:
    """
    A name on the function's C{env} (or a global, for service-worker scripts).

    @ivar type: one of L{BINDING_TYPES}.
    @ivar value: the text; for L{JSON}, the value's JSON text.
    """

    name: str
    type: str
    value: str


@frozen
class Assets:
    """
    A version's static assets: which files it has, and how they are served.

    @ivar manifest: C{(path, hash, size, content type)} entries, sorted by path: each
        path (beginning with C{/}), the content hash its file is stored under (32
        lower-case hex digits, checked when the manifest is read; never used as given in a
        file path otherwise), its size in bytes, and the Content-Type it is served with
        (L{None}: none).
    @ivar config: how they are served, as JSON text (C{html_handling},
        C{not_found_handling}, C{run_worker_first}, C{has_user_worker}, and the text of
        the C{_headers} and C{_redirects} files).
    @ivar binding: the name of the C{env} binding through which the worker fetches them
        (C{ASSETS}), or L{None}.
    """

    manifest: tuple
    config: str = "{}"
    binding: str | None = None


def _sorted_bindings(bindings):
    return tuple(sorted(bindings, key=lambda b: b.name))


def script_modules(code, format):
    """
    The modules of a version given as one script: an ES module called C{worker.js}, or a
    service-worker script.
    """
    return (Module("worker.js", "esModule" if format == MODULE else SCRIPT, code.encode("utf-8")),)


def text_bindings(env):
    """
    L{PLAIN_TEXT} bindings from C{(name, value)} pairs.
    """
    return tuple(Binding(name, PLAIN_TEXT, value) for name, value in env)


@frozen
class Deployment:
    """
    A validated request to create a new version of a function.

    @ivar modules: the version's modules, the main one first.
    @ivar bindings: its bindings, by name.
    @ivar version: the version name, or L{None} to have one generated.
    @ivar alias: an alias to point at the new version, or L{None}.
    @ivar deploy: whether the new version takes all of the function's traffic at once
        (C{False}: it is only uploaded, and answers at its own hosts).
    @ivar inherit: names whose bindings come from the function's newest version; a name it
        does not have is an error.
    @ivar keep_types: binding types copied from the newest version for names the new
        version does not set.  Secrets are kept unless a deploy says otherwise, as on
        Cloudflare.
    @ivar metadata: what the version records about itself: C{source} (C{api} or
        C{wrangler}), C{message}, C{tag}, C{triggered_by}.
    @ivar compatibility_date: the workerd compatibility date the version runs with
        (C{YYYY-MM-DD}), or L{None} for the operator's default.
    @ivar compatibility_flags: the compatibility flags it runs with, checked.
    @ivar assets: its L{Assets}, or L{None}.
    @ivar keep_assets: whether it takes the newest version's assets instead (as
        C{wrangler versions secret put} asks with C{keep_assets}).
    """

    function: str
    format: str
    modules: tuple
    bindings: tuple = field(default=(), converter=_sorted_bindings)
    version: str | None = None
    alias: str | None = None
    deploy: bool = True
    inherit: tuple = ()
    keep_types: tuple = (SECRET_TEXT,)
    metadata: dict = field(factory=dict, eq=False)
    compatibility_date: str | None = None
    compatibility_flags: tuple = ()
    assets: Assets | None = None
    keep_assets: bool = False


@frozen
class VersionSpec:
    """
    Everything the runtime needs to start one version, and nothing it does not.

    @ivar id: the version's identifier, made by funcplane (never a user string); it names
        the version's socket.
    @ivar function: the function's name, for log events.
    @ivar version: the version's name, for log events.
    @ivar modules: L{Module}s, the main one first.
    @ivar bindings: L{Binding}s.
    @ivar compatibility_date: see L{Deployment.compatibility_date}.
    @ivar compatibility_flags: see L{Deployment.compatibility_flags}.
    @ivar assets: see L{Deployment.assets}.
    """

    id: str
    function: str
    version: str
    format: str
    modules: tuple
    bindings: tuple = ()
    compatibility_date: str | None = None
    compatibility_flags: tuple = ()
    assets: Assets | None = None


@frozen
class VersionInfo:
    """
    A version as the store knows it.

    @ivar bindings: its L{Binding}s, with every secret's value L{None}: nothing read for
        display carries a secret.
    @ivar metadata: see L{Deployment.metadata}.
    @ivar compatibility_date: the date it runs with (L{None}: the operator's default).
    @ivar compatibility_flags: the flags it runs with.
    @ivar has_assets: whether it has static assets (their manifest is in its
        L{VersionSpec}).
    """

    id: str
    name: str
    created_at: float
    format: str = MODULE
    bindings: tuple = ()
    metadata: dict = field(factory=dict, eq=False)
    compatibility_date: str | None = None
    compatibility_flags: tuple = ()
    has_assets: bool = False


@frozen
class DeploymentInfo:
    """
    One change of which versions serve a function's own host, and in what shares.

    @ivar versions: C{(version id, percentage)} pairs.
    @ivar metadata: C{source}, C{message}, C{triggered_by}.
    """

    id: str
    created_at: float
    versions: tuple
    metadata: dict = field(factory=dict, eq=False)


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


@frozen
class FunctionRoutes:
    """
    What the route table knows of one function: ids by lower-case version and alias name,
    and the latest version's id.

    @ivar split: when the function's own host is shared by several versions, their
        C{(id, percentage)} pairs; otherwise empty, and C{latest} serves it alone.
    """

    function: str
    latest: str | None
    versions: dict = field(factory=dict)
    aliases: dict = field(factory=dict)
    split: tuple = ()


@frozen
class Schedule:
    """
    One cron trigger of a function.

    @ivar cron: its expression, as given (checked by L{funcplane.schedule.cron.parse_cron}).
    @ivar created_at: when it was added (POSIX seconds).
    @ivar modified_at: when it last changed.
    @ivar last_fired: the last scheduled time it fired for, or L{None}.
    """

    cron: str
    created_at: float
    modified_at: float
    last_fired: float | None = None


@frozen
class Target:
    """
    What a scheduled event of a function runs on: the version serving it (the largest
    share of its deployment, its latest), or none.
    """

    function: str
    version_id: str | None
    version: str | None
