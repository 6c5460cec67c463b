"""
The part of Cloudflare's v4 API that wrangler uses, under C{/client/v4}, so that an
unmodified wrangler deploys to funcplane.  Every answer is Cloudflare's envelope
C{{"success", "errors", "messages", "result"}}; errors carry the codes wrangler acts on
(10007: no such worker, which is how it tells a first deploy), and the table of them is
L{funcplane.admin.errors.CLOUDFLARE_ERRORS}.  Scripts are funcplane's functions;
Cloudflare's version ids are funcplane's version ids, shown as UUIDs.

The routes live with their resource, one module each; this class is made of them.
What is written here is visible through the admin API and the other way round: both
call the same L{funcplane.platform.Platform}.
"""

from funcplane.admin.cloudflare import app as v4

# Its routes refuse the Cloudflare features funcplane lacks, naming each; they need nothing
# of the instance but its token checker, so no class of theirs is part of this one.
from funcplane.admin.cloudflare import unsupported  # noqa: F401
from funcplane.admin.cloudflare.accounts import AccountRoutes
from funcplane.admin.cloudflare.aliases import AliasRoutes
from funcplane.admin.cloudflare.assets import AssetRoutes
from funcplane.admin.cloudflare.content import ContentRoutes
from funcplane.admin.cloudflare.d1 import D1Routes
from funcplane.admin.cloudflare.deployments import DeploymentRoutes
from funcplane.admin.cloudflare.kv import KVRoutes
from funcplane.admin.cloudflare.schedules import ScheduleRoutes
from funcplane.admin.cloudflare.scripts import ScriptRoutes
from funcplane.admin.cloudflare.secrets import SecretRoutes
from funcplane.admin.cloudflare.tails import TailRoutes
from funcplane.admin.cloudflare.versions import VersionRoutes
from funcplane.admin.errors import add_cloudflare_error_handling


class CloudflareAPI(
    ScriptRoutes,
    ContentRoutes,
    VersionRoutes,
    DeploymentRoutes,
    SecretRoutes,
    TailRoutes,
    AliasRoutes,
    AccountRoutes,
    AssetRoutes,
    ScheduleRoutes,
    D1Routes,
    KVRoutes,
):
    """
    The Cloudflare v4 subset: one Klein app (L{funcplane.admin.cloudflare.app.app}) whose
    routes are the methods of the resource classes above.

    @param platform: the L{funcplane.platform.Platform}.
    @param checker: has C{check(request)} (see L{funcplane.admin.api.AdminAPI}); wrangler's
        C{CLOUDFLARE_API_TOKEN} is the admin token.
    @param limits: the L{funcplane.admin.parse.Limits}.
    @param clock: an C{IReactorTime}, for start-up times and the tails' sockets.
    @param tails: the L{funcplane.observe.tails.Tails}, for C{wrangler tail}.
    @param assets: the L{funcplane.assets.sessions.UploadSessions} of static assets, or
        L{None} (uploads with assets are refused).
    @param schedules: the L{funcplane.schedule.scheduler.Scheduler} of cron triggers, or L{None}
        (their routes are refused).
    @param d1: the L{funcplane.d1.registry.Databases} of D1 databases, or L{None} (their
        routes are refused); with it, C{d1_imports}, the L{funcplane.d1.imports.Imports}.
    @param kv: the L{funcplane.kv.KV} of Workers KV namespaces, or L{None} (their routes
        are refused).
    """

    app = v4.app
    add_cloudflare_error_handling(app)

    def __init__(self, platform, checker, limits, clock, tails, assets=None, schedules=None, kv=None, d1=None, d1_imports=None):
        self._platform = platform
        self._checker = checker
        self._limits = limits
        self._clock = clock
        self._tails = tails
        self._assets = assets
        self._schedules = schedules
        self._kv = kv
        self._d1 = d1
        self._d1_imports = d1_imports

    def resource(self):
        return self.app.resource()
