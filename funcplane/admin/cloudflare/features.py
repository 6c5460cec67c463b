"""
The Cloudflare features funcplane does not have, each with the message that names it and
says what to do instead: answered by the routes that ask for one
(L{funcplane.admin.cloudflare.unsupported}) and by an upload with a binding that needs one
(L{binding_refusal}).

The error is L{funcplane.errors.NotSupported}: status 403 with Cloudflare's own code for
the feature being unavailable where it has one (10042 for R2, 10084 for Durable Objects),
else 10015 ("not entitled"); wrangler acts on none of them in a special way, so it stops
there, shows the message, and retries nothing.
"""

import attrs

from funcplane.errors import NotSupported

# Cloudflare's codes for a feature the account does not have.
R2_NOT_ENABLED = 10042
DURABLE_OBJECTS_NOT_ENABLED = 10084


@attrs.frozen
class Feature:
    """
    A Cloudflare feature funcplane lacks.

    @ivar message: one sentence naming it, then what to do instead.
    @ivar code: Cloudflare's own code for it being unavailable, or L{None} for the
        table's (L{funcplane.admin.errors.CLOUDFLARE_ERRORS}).
    """

    name: str
    message: str
    code: int | None = None

    def error(self):
        return NotSupported(self.message, self.code)


KV = Feature(
    "Workers KV",
    "Workers KV is not supported by funcplane on this API: it was built without a KV store.",
)
D1 = Feature(
    "D1 export and time travel",
    "D1 export and time travel are not supported by funcplane: its D1 databases can be"
    " created, listed, queried, imported into (wrangler d1 execute --remote --file) and"
    " migrated, but not exported or restored; export with wrangler d1 execute --remote"
    " --command \"SELECT ...\" instead.",
)
D1_BINDING = Feature(
    "D1 bindings",
    "D1 bindings are not yet supported by funcplane: D1 databases exist (wrangler d1 create,"
    " execute --remote and migrations apply --remote work), but a worker cannot bind one yet."
    " Remove [[d1_databases]] from wrangler.toml to deploy the rest of the worker.",
)
DURABLE_OBJECTS = Feature(
    "Durable Objects",
    "Durable Objects are not yet supported by funcplane: no class can be bound or migrated."
    " Remove [[durable_objects.bindings]] and [[migrations]] from wrangler.toml to deploy"
    " the rest of the worker.",
    DURABLE_OBJECTS_NOT_ENABLED,
)
R2 = Feature(
    "R2",
    "R2 is not supported by funcplane: buckets cannot be created, read or bound. Reach an"
    " S3-compatible store over fetch() instead.",
    R2_NOT_ENABLED,
)
QUEUES = Feature(
    "Queues",
    "Queues are not supported by funcplane: no queue can be created, sent to or consumed."
    " Remove [[queues.producers]] and [[queues.consumers]] from wrangler.toml.",
)
WORKFLOWS = Feature(
    "Workflows",
    "Workflows are not supported by funcplane. Remove [[workflows]] from wrangler.toml.",
)
# Where funcplane's functions answer instead of routes, custom domains and workers.dev.
HOSTS = "NAME.DOMAIN (DOMAIN is funcplane's --domain, func.local by default)"
ROUTES = Feature(
    "Routes",
    "Routes, Custom Domains and zones are not supported by funcplane: it routes by host,"
    f" and a function answers at {HOSTS}, each version at VERSION.NAME.DOMAIN. Remove"
    " route and routes from wrangler.toml.",
)
CUSTOM_DOMAINS = Feature(
    "Custom Domains",
    "Custom Domains are not supported by funcplane: it routes by host, and a function"
    f" answers at {HOSTS}. Remove the custom_domain routes from wrangler.toml.",
)
SUBDOMAIN = Feature(
    "workers.dev subdomains",
    "Registering a workers.dev subdomain is not supported by funcplane: its one account's"
    f" subdomain is always 'funcplane', and functions answer at {HOSTS}, not on"
    " workers.dev.",
)
REMOTE_DEVELOPMENT = Feature(
    "Remote development",
    "Remote development (wrangler dev --remote, remote bindings) is not supported by"
    " funcplane: run wrangler dev locally, or upload with wrangler versions upload and call"
    " the version at its own host.",
)
PREVIEWS = Feature(
    "Worker previews",
    "Worker previews are not supported by funcplane: upload with wrangler versions upload"
    " and call the version at VERSION.NAME.DOMAIN (DOMAIN is funcplane's --domain).",
)
SERVICE_ENVIRONMENTS = Feature(
    "Service environments",
    "Service environments are not supported by funcplane, nor is wrangler init --from-dash,"
    " which reads them: each wrangler environment is a script of its own (NAME-ENV, as"
    " wrangler does by default). GET .../workers/scripts/NAME downloads a script.",
)
DISPATCH_NAMESPACES = Feature(
    "Dispatch namespaces",
    "Dispatch namespaces (Workers for Platforms) are not supported by funcplane: deploy each"
    " worker as a script of its own.",
)
SERVICE_BINDINGS = Feature(
    "Service bindings",
    "Service bindings are not supported by funcplane: call the other function over HTTP at"
    f" its host, {HOSTS}.",
)
HYPERDRIVE = Feature(
    "Hyperdrive",
    "Hyperdrive is not supported by funcplane: connect to the database from the worker.",
)
VECTORIZE = Feature("Vectorize", "Vectorize is not supported by funcplane.")
PAGES = Feature(
    "Pages",
    "Pages is not supported by funcplane: deploy the project as a worker with static assets"
    " ([assets] in wrangler.toml).",
)
AI = Feature(
    "Workers AI",
    "Workers AI and AI Search are not supported by funcplane: call a model's API over"
    " fetch() instead.",
)
SECRETS_STORE = Feature(
    "Secrets Store",
    "The Secrets Store is not supported by funcplane: give the worker secrets of its own"
    " (wrangler secret put).",
)
MTLS_CERTIFICATES = Feature(
    "mTLS certificates", "mTLS certificates are not supported by funcplane."
)
PIPELINES = Feature("Pipelines", "Pipelines are not supported by funcplane.")
CONTAINERS = Feature("Containers", "Containers are not supported by funcplane.")
EMAIL = Feature(
    "Email", "Email Routing and Email Sending are not supported by funcplane."
)
VPC = Feature("Workers VPC", "Workers VPC services are not supported by funcplane.")
TUNNELS = Feature("Cloudflare Tunnel", "Cloudflare Tunnels are not supported by funcplane.")
ANALYTICS_ENGINE = Feature(
    "Analytics Engine", "Workers Analytics Engine is not supported by funcplane."
)
BROWSER = Feature("Browser Rendering", "Browser Rendering is not supported by funcplane.")
VERSION_METADATA = Feature(
    "Version metadata",
    "The version metadata binding is not supported by funcplane.",
)
RATE_LIMITING = Feature(
    "Rate limiting", "Rate limiting bindings are not supported by funcplane."
)
SERVICE_WORKER_MODULES = Feature(
    "Service-worker modules",
    "wasm_module, text_blob and data_blob bindings (service-worker format) are not"
    " supported by funcplane: use an ES module worker and import the module.",
)
SECRET_KEYS = Feature(
    "Secret keys",
    "secret_key bindings are not supported by funcplane: keep the key in a secret_text"
    " binding and import it with crypto.subtle.importKey.",
)

# Binding type -> the feature it needs.
BINDING_FEATURES = {
    "d1": D1_BINDING,
    "durable_object_namespace": DURABLE_OBJECTS,
    "r2_bucket": R2,
    "queue": QUEUES,
    "workflow": WORKFLOWS,
    "service": SERVICE_BINDINGS,
    "dispatch_namespace": DISPATCH_NAMESPACES,
    "hyperdrive": HYPERDRIVE,
    "vectorize": VECTORIZE,
    "ai": AI,
    "ai_search": AI,
    "ai_search_namespace": AI,
    "secrets_store_secret": SECRETS_STORE,
    "mtls_certificate": MTLS_CERTIFICATES,
    "pipelines": PIPELINES,
    "send_email": EMAIL,
    "vpc_service": VPC,
    "analytics_engine": ANALYTICS_ENGINE,
    "browser": BROWSER,
    "version_metadata": VERSION_METADATA,
    "ratelimit": RATE_LIMITING,
    "wasm_module": SERVICE_WORKER_MODULES,
    "text_blob": SERVICE_WORKER_MODULES,
    "data_blob": SERVICE_WORKER_MODULES,
    "secret_key": SECRET_KEYS,
}


def binding_refusal(name, kind, supported):
    """
    Why binding C{name} of type C{kind} cannot be made, for an upload's error: the feature
    it needs, when one is known, and the types funcplane does provide (C{supported}).
    """
    feature = BINDING_FEATURES.get(kind)
    given = f"binding {name} has type {kind!r}"
    provides = f"The bindings funcplane provides: {', '.join(supported)} (vars, secrets, KV)."
    if feature is None:
        return f"{given}, which funcplane does not provide. {provides}"
    return f"{given}: {feature.message} {provides}"


def refuse_features(metadata):
    """
    Refuse what an upload's C{metadata} asks for, besides its bindings, that funcplane
    lacks: Durable Object migrations (sent even when no binding names a class).

    @raise NotSupported: naming the feature.
    """
    if metadata.get("migrations"):
        raise DURABLE_OBJECTS.error()


