"""
A version's static assets in its workerd config: two services beside the user's C{main}.

- C{assets}: funcplane's asset worker (C{asset-worker.js}, package data), a module worker
  given the version's manifest and asset config as JSON bindings, the store as C{STORE}
  and, when the version has a worker, C{main} as C{USER}.  Its default entrypoint is the
  router the version's socket points at (assets first, unless C{run_worker_first}); its
  entrypoint C{binding} serves assets only, and is what the user's C{ASSETS} binding names.
- C{assets-store}: a read-only C{disk} service on the content-addressed store.  The path
  is C{/proc/self/fd/N}: funcplane hands each child with assets a descriptor of the store's
  directory as fd C{ASSETS_FD} (the store sits in the 0700 data directory, which a child
  running as another user could not enter by name).

Every name, path and entrypoint here is funcplane's; what the version's deployer chose
(paths, headers, redirects) reaches workerd only as the text of the JSON bindings.
"""

import json
from functools import cache
from importlib.resources import files

ASSETS_FD = 9
ROUTER_SERVICE = "assets"
STORE_SERVICE = "assets-store"
BINDING_ENTRYPOINT = "binding"
WORKER_MODULE = "asset-worker.js"
# The date the asset worker was written and tested against (not the version's: how the
# worker behaves is funcplane's; the version's date reaches it in CONFIG, as on Cloudflare).
WORKER_DATE = "2025-01-01"
# The main module of a version that has only assets (no user worker): never reached, since
# the router has no USER binding; it keeps "a version has a main module" true everywhere.
ASSETS_ONLY_MODULE = "__funcplane_assets_only__.js"
ASSETS_ONLY_SOURCE = b"export default { fetch() { return new Response(null, { status: 404 }); } };\n"


@cache
def worker_source():
    """
    The asset worker's JavaScript.
    """
    return files("funcplane.runtime").joinpath(WORKER_MODULE).read_text("utf-8")


def service_count(spec):
    """
    How many services the assets of C{spec} add to its config.
    """
    return 2 if spec.assets is not None else 0


def entry_service(spec, main):
    """
    The service the version's socket points at: the router when it has assets.
    """
    return ROUTER_SERVICE if spec.assets is not None else main


def binding_count(spec):
    """
    How many bindings the assets of C{spec} add to its worker: its C{ASSETS} binding.
    """
    return 1 if spec.assets is not None and spec.assets.binding else 0


def fill_binding(binding, spec):
    """
    Make C{binding} (a Worker.Binding) the version's assets binding.
    """
    binding.name = spec.assets.binding
    service = binding.init("service")
    service.name = ROUTER_SERVICE
    service.entrypoint = BINDING_ENTRYPOINT


def manifest_json(assets):
    """
    The MANIFEST binding's text: C{{"/path": [hash, size, content type or null]}}.
    """
    return json.dumps(
        {path: [digest, size, content_type] for path, digest, size, content_type in assets.manifest},
        separators=(",", ":"),
    )


def config_json(spec, compatibility_date):
    """
    The CONFIG binding's text: the version's asset config with its compatibility date and
    flags (they decide, as on Cloudflare, how navigation requests are treated).
    """
    config = dict(json.loads(spec.assets.config))
    config["compatibility_date"] = spec.compatibility_date or compatibility_date
    config["compatibility_flags"] = list(spec.compatibility_flags)
    return json.dumps(config, separators=(",", ":"))


def fill_services(router, store, spec, main, egress, compatibility_date):
    """
    Make C{router} and C{store} (Config.Service) the version's asset services.

    @param main: the name of the user's worker service.
    @param egress: the name of the egress service (the router's global outbound).
    @param compatibility_date: the operator's default, for a version without a date.
    """
    router.name = ROUTER_SERVICE
    worker = router.init("worker")
    [module] = worker.init("modules", 1)
    module.name = WORKER_MODULE
    module.esModule = worker_source()
    worker.compatibilityDate = WORKER_DATE
    has_user = json.loads(spec.assets.config).get("has_user_worker", True)
    bindings = worker.init("bindings", 4 if has_user else 3)
    bindings[0].name = "MANIFEST"
    bindings[0].json = manifest_json(spec.assets)
    bindings[1].name = "CONFIG"
    bindings[1].json = config_json(spec, compatibility_date)
    bindings[2].name = "STORE"
    bindings[2].init("service").name = STORE_SERVICE
    if has_user:
        bindings[3].name = "USER"
        bindings[3].init("service").name = main
    worker.globalOutbound.name = egress

    store.name = STORE_SERVICE
    disk = store.init("disk")
    disk.path = f"/proc/self/fd/{ASSETS_FD}"
    disk.writable = False
    disk.allowDotfiles = False
