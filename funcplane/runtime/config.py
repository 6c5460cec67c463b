"""
Generate workerd's configuration as a binary Cap'n Proto message.

User strings (code, environment names and values) are only ever assigned to fields of the
message, so no value can change the configuration's structure: there is no text to escape
and nothing to inject.  The schema is the C{workerd.capnp} that ships with the pinned
workerd npm package, kept beside this module; Cap'n Proto's compatibility rules let it
describe newer workerd binaries too.
"""

import json
import os
from importlib.resources import files

import attrs
import capnp

from funcplane.model import JSON, KV_NAMESPACE, MODULE, TEXT_KINDS
from funcplane.runtime import assets, events, storage

capnp.remove_import_hook()

SOCKET_NAME = "http"
# The module workerd starts an ES-module version from: it imports the version's main
# module, refuses at top level (so the start fails with the reason) when the default export
# has no fetch handler, and re-exports everything.
ENTRY_MODULE = "__funcplane_entry__.js"
_ENTRY_SOURCE = """import * as version from {main};
const handler = version.default;
const fetches = handler !== null && handler !== undefined && (
  typeof handler.fetch === "function" ||
  (typeof handler === "function" && handler.prototype && typeof handler.prototype.fetch === "function"));
if (!fetches) {{
  throw new Error("the main module " + {main} + " has no fetch handler: its default export must have"
    + " a fetch(request, env, ctx) method, as in export default {{ async fetch(request, env, ctx)"
    + " {{ return new Response('ok') }} }}");
}}
export * from {main};
export default handler;
"""


# Around a service-worker script, on its first line (so no line number moves) and after its
# last: whether the script registered a fetch listener, and a refusal at the end of its top
# level if it did not.
_WORKER_PROLOGUE = (
    "let __funcplane_fetches = false; { const add = globalThis.addEventListener;"
    " globalThis.addEventListener = function (type, ...rest) { if (type === 'fetch')"
    " __funcplane_fetches = true; return add.call(this, type, ...rest); }; }"
)
_WORKER_EPILOGUE = (
    "\n;if (!__funcplane_fetches) { throw new Error('the script registers no fetch listener:"
    " add addEventListener(\"fetch\", event => event.respondWith(...))'); }\n"
)


def service_worker_script(source):
    """
    The script workerd runs for a service-worker version of C{source}: the same, with a
    check that it registers a fetch listener, and the listener that takes scheduled events
    from the events socket (L{funcplane.runtime.events}).
    """
    return events.WORKER_PROLOGUE + _WORKER_PROLOGUE + source + _WORKER_EPILOGUE


def entry_module(main_name):
    """
    The source of L{ENTRY_MODULE} for a version whose main module is C{main_name}.  The
    name reaches the source only as a JSON string literal (valid JavaScript).  It also
    exports the entrypoint the events socket names (L{funcplane.runtime.events}).
    """
    return _ENTRY_SOURCE.format(main=json.dumps("./" + main_name)) + events.ENTRY_SOURCE
MAIN_SERVICE = "main"
EGRESS_SERVICE = "internet"


def load_schema():
    """
    Load the workerd config schema.  It imports C{/capnp/c++.capnp}, which pycapnp ships.
    """
    path = files("funcplane.runtime").joinpath("workerd.capnp")
    return capnp.load(str(path), imports=[os.path.dirname(os.path.dirname(capnp.__file__))])


@attrs.frozen
class RuntimeSettings:
    """
    The operator's settings that every version's config shares.

    @ivar compatibility_date: workerd's compatibility date for a version that asks for none.
    @ivar heap_limit_mb: V8's old-space limit per child, in megabytes.
    @ivar egress: the L{funcplane.runtime.egress.EgressPolicy}.
    """

    egress: object
    compatibility_date: str = "2026-11-01"
    heap_limit_mb: int = 128


class ConfigBuilder:
    """
    Builds the binary config for a version.  The schema is loaded once.
    """

    def __init__(self, settings, schema=None):
        self._settings = settings
        self._schema = schema if schema is not None else load_schema()

    def build(self, spec, child_id=None):
        """
        The config message for L{VersionSpec} C{spec}, as bytes.  The socket has no
        address: the supervisor hands workerd a listening socket with C{--socket-fd}.
        A version that binds KV namespaces reaches them on the storage socket of child
        C{child_id} (L{funcplane.runtime.storage}).
        """
        settings = self._settings
        config = self._schema.Config.new_message()
        stored = storage.service_count(spec)
        if stored and child_id is None:
            raise ValueError("a version that binds storage needs its child's id")
        main, internet, *more = config.init("services", 2 + assets.service_count(spec) + stored)
        asset_services, storage_services = more[: len(more) - stored], more[len(more) - stored :]

        main.name = MAIN_SERVICE
        worker = main.init("worker")
        if spec.format == MODULE:
            wrapped = spec.modules[0].kind == "esModule"
            modules = worker.init("modules", len(spec.modules) + wrapped)
            if wrapped:
                modules[0].name = ENTRY_MODULE
                modules[0].esModule = entry_module(spec.modules[0].name)
            for module, source in zip(list(modules)[wrapped:], spec.modules):
                module.name = source.name
                if source.kind in TEXT_KINDS:
                    setattr(module, source.kind, source.content.decode("utf-8"))
                else:
                    setattr(module, source.kind, source.content)
        else:
            worker.serviceWorkerScript = service_worker_script(spec.modules[0].content.decode("utf-8"))
        worker.compatibilityDate = spec.compatibility_date or settings.compatibility_date
        worker.compatibilityFlags = list(spec.compatibility_flags)
        bindings = worker.init("bindings", len(spec.bindings) + assets.binding_count(spec))
        for binding, source in zip(bindings, spec.bindings):
            binding.name = source.name
            if source.type == JSON:
                binding.json = source.value
            elif source.type == KV_NAMESPACE:
                binding.init("kvNamespace").name = storage.kv_service(spec, source.value)
            else:
                binding.text = source.value
        if assets.binding_count(spec):
            assets.fill_binding(bindings[len(spec.bindings)], spec)
        worker.globalOutbound.name = EGRESS_SERVICE

        internet.name = EGRESS_SERVICE
        network = internet.init("network")
        network.allow = settings.egress.allow_list()
        network.deny = settings.egress.deny_list()
        network.init("tlsOptions").trustBrowserCas = True
        if asset_services:
            assets.fill_services(
                *asset_services, spec, MAIN_SERVICE, EGRESS_SERVICE, settings.compatibility_date
            )

        storage.fill_services(storage_services, spec, child_id)

        socket, *events_socket = config.init("sockets", 1 + events.takes_events(spec))
        socket.name = SOCKET_NAME
        http = socket.init("http")
        socket.service.name = assets.entry_service(spec, MAIN_SERVICE)
        if events_socket:
            _events_socket(events_socket[0], spec, http)

        config.v8Flags = [f"--max-old-space-size={settings.heap_limit_mb}"]
        # One JSON object a line: console output and errors are read back unambiguously.
        config.structuredLogging = True
        return config.to_bytes()

    def read(self, blob):
        """
        Decode a config built by L{build}, for inspection.
        """
        with self._schema.Config.from_bytes(blob) as message:
            return message.to_dict()


def _events_socket(socket, spec, public):
    """
    Make C{socket} the version's events socket (L{funcplane.runtime.events}): it marks each
    request with the events header and goes to the entry module's events entrypoint (an
    ES-module version) or to the script (a service worker, whose C{public} socket options
    then remove that header from every client request).
    """
    socket.name = events.SOCKET_NAME
    header = socket.init("http").init("injectRequestHeaders", 1)[0]
    header.name = events.HEADER
    header.value = events.HEADER_VALUE
    socket.service.name = MAIN_SERVICE
    if spec.format == MODULE:
        socket.service.entrypoint = events.ENTRYPOINT
    else:
        # A null value: workerd removes the header from the requests it takes there.
        public.init("injectRequestHeaders", 1)[0].name = events.HEADER
