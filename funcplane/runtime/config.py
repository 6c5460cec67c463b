"""
Generate workerd's configuration as a binary Cap'n Proto message.

User strings (code, environment names and values) are only ever assigned to fields of the
message, so no value can change the configuration's structure: there is no text to escape
and nothing to inject.  The schema is the C{workerd.capnp} that ships with the pinned
workerd npm package, kept beside this module; Cap'n Proto's compatibility rules let it
describe newer workerd binaries too.
"""

import os
from importlib.resources import files

import attrs
import capnp

from funcplane.model import JSON, MODULE, TEXT_KINDS

capnp.remove_import_hook()

SOCKET_NAME = "http"
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

    @ivar compatibility_date: workerd's compatibility date for every function.
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

    def build(self, spec):
        """
        The config message for L{VersionSpec} C{spec}, as bytes.  The socket has no
        address: the supervisor hands workerd a listening socket with C{--socket-fd}.
        """
        settings = self._settings
        config = self._schema.Config.new_message()
        main, internet = config.init("services", 2)

        main.name = MAIN_SERVICE
        worker = main.init("worker")
        if spec.format == MODULE:
            for module, source in zip(worker.init("modules", len(spec.modules)), spec.modules):
                module.name = source.name
                if source.kind in TEXT_KINDS:
                    setattr(module, source.kind, source.content.decode("utf-8"))
                else:
                    setattr(module, source.kind, source.content)
        else:
            worker.serviceWorkerScript = spec.modules[0].content.decode("utf-8")
        worker.compatibilityDate = settings.compatibility_date
        bindings = worker.init("bindings", len(spec.bindings))
        for binding, source in zip(bindings, spec.bindings):
            binding.name = source.name
            if source.type == JSON:
                binding.json = source.value
            else:
                binding.text = source.value
        worker.globalOutbound.name = EGRESS_SERVICE

        internet.name = EGRESS_SERVICE
        network = internet.init("network")
        network.allow = settings.egress.allow_list()
        network.deny = settings.egress.deny_list()
        network.init("tlsOptions").trustBrowserCas = True

        socket = config.init("sockets", 1)[0]
        socket.name = SOCKET_NAME
        socket.init("http")
        socket.service.name = MAIN_SERVICE

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
