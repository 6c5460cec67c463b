"""
The routes wrangler 4.86 calls for the Cloudflare features funcplane does not have
(L{funcplane.admin.cloudflare.features}), each answering its feature's error: its C{d1},
C{r2}, C{queues}, C{workflows}, C{hyperdrive}, C{vectorize}, C{pages},
C{dispatch-namespace}, C{containers}... commands, C{dev --remote}, and C{deploy} or
C{triggers deploy} with routes, custom domains, queues or workflows.  Each refuses every
method on its path and, for a prefix, on every path under it.

What funcplane does answer under these prefixes has routes of its own, which win (werkzeug
prefers the more specific rule): C{GET .../workers/subdomain} names the account's
subdomain.  Workers KV's routes are L{funcplane.admin.cloudflare.kv}'s.
"""

from funcplane.admin.cloudflare import features as f
from funcplane.admin.cloudflare.app import ACCOUNT, SCRIPT, app, checked

EVERY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# (path, feature, methods, whether every path under it is refused too).
REFUSED = (
    (ACCOUNT + "/d1", f.D1, EVERY_METHOD, True),
    (ACCOUNT + "/workers/durable_objects", f.DURABLE_OBJECTS, EVERY_METHOD, True),
    (ACCOUNT + "/r2", f.R2, EVERY_METHOD, True),
    (ACCOUNT + "/r2-catalog", f.R2, EVERY_METHOD, True),
    (ACCOUNT + "/event_notifications/r2", f.R2, EVERY_METHOD, True),
    (ACCOUNT + "/queues", f.QUEUES, EVERY_METHOD, True),
    (ACCOUNT + "/event_subscriptions", f.QUEUES, EVERY_METHOD, True),
    (ACCOUNT + "/workflows", f.WORKFLOWS, EVERY_METHOD, True),
    ("/zones", f.ROUTES, EVERY_METHOD, True),
    (SCRIPT + "/routes", f.ROUTES, EVERY_METHOD, False),
    (ACCOUNT + "/workers/domains", f.CUSTOM_DOMAINS, EVERY_METHOD, True),
    (SCRIPT + "/domains", f.CUSTOM_DOMAINS, EVERY_METHOD, True),
    (ACCOUNT + "/workers/subdomain", f.SUBDOMAIN, ["PUT", "POST", "PATCH", "DELETE"], False),
    (ACCOUNT + "/workers/subdomains", f.SUBDOMAIN, EVERY_METHOD, True),
    (ACCOUNT + "/workers/subdomain/edge-preview", f.REMOTE_DEVELOPMENT, EVERY_METHOD, False),
    (SCRIPT + "/edge-preview", f.REMOTE_DEVELOPMENT, EVERY_METHOD, False),
    (ACCOUNT + "/workers/workers", f.PREVIEWS, EVERY_METHOD, True),
    (ACCOUNT + "/workers/services/<name>/environments", f.SERVICE_ENVIRONMENTS, EVERY_METHOD, True),
    (ACCOUNT + "/workers/dispatch", f.DISPATCH_NAMESPACES, EVERY_METHOD, True),
    (ACCOUNT + "/hyperdrive", f.HYPERDRIVE, EVERY_METHOD, True),
    (ACCOUNT + "/vectorize", f.VECTORIZE, EVERY_METHOD, True),
    (ACCOUNT + "/pages", f.PAGES, EVERY_METHOD, True),
    ("/pages", f.PAGES, EVERY_METHOD, True),
    (ACCOUNT + "/ai", f.AI, EVERY_METHOD, True),
    (ACCOUNT + "/ai-search", f.AI, EVERY_METHOD, True),
    (ACCOUNT + "/secrets_store", f.SECRETS_STORE, EVERY_METHOD, True),
    (ACCOUNT + "/mtls_certificates", f.MTLS_CERTIFICATES, EVERY_METHOD, True),
    (ACCOUNT + "/pipelines", f.PIPELINES, EVERY_METHOD, True),
    (ACCOUNT + "/containers", f.CONTAINERS, EVERY_METHOD, True),
    (ACCOUNT + "/cloudchamber", f.CONTAINERS, EVERY_METHOD, True),
    (ACCOUNT + "/email", f.EMAIL, EVERY_METHOD, True),
    ("/zones/<zone>/email", f.EMAIL, EVERY_METHOD, True),
    (ACCOUNT + "/connectivity", f.VPC, EVERY_METHOD, True),
    (ACCOUNT + "/browser-rendering", f.BROWSER, EVERY_METHOD, True),
    (ACCOUNT + "/cfd_tunnel", f.TUNNELS, EVERY_METHOD, True),
    (ACCOUNT + "/tunnels", f.TUNNELS, EVERY_METHOD, True),
)


def _refusal(feature, endpoint, in_account):
    """
    A route handler called C{endpoint} that answers C{feature}'s error, once the token
    (and, under C{/accounts}, the account id and any script name) has been checked.
    """

    async def refuse(self, request, **kwargs):
        if not in_account:
            self._checker.check(request)
        raise feature.error()

    refuse.__name__ = endpoint
    return checked(refuse) if in_account else refuse


def _register(refused):
    """
    Add the routes of C{refused} (L{REFUSED}) to the one app: each path, and with it, for
    a prefix, every path under it.
    """
    for number, (path, feature, methods, deeper) in enumerate(refused):
        rules = [(path, f"unsupported_{number}")]
        if deeper:
            rules.append((path + "/<path:rest>", f"unsupported_{number}_deeper"))
        for rule, endpoint in rules:
            handler = _refusal(feature, endpoint, path.startswith(ACCOUNT))
            app.route(rule, methods=methods, endpoint=endpoint)(handler)


_register(REFUSED)
