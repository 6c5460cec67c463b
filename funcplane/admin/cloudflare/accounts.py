"""
The account and the user, for C{wrangler whoami} and for runs without an account id,
and the workers subdomain wrangler reads on the way (KV namespaces are
L{funcplane.admin.cloudflare.kv}'s).  funcplane has one account, C{funcplane}.
"""

from funcplane.admin.cloudflare.app import ACCOUNT, app, checked, ok

SUBDOMAIN = "funcplane"
ACCOUNT_INFO = {"id": "funcplane", "name": "funcplane"}


class AccountRoutes:
    """
    C{/accounts}, C{/memberships}, C{/user}, and the workers subdomain.
    """

    @app.route(ACCOUNT + "/workers/subdomain", methods=["GET"])
    @checked
    async def subdomain(self, request):
        return ok(request, {"subdomain": SUBDOMAIN})

    @app.route("/accounts", methods=["GET"])
    async def accounts(self, request):
        self._checker.check(request)
        return ok(request, [ACCOUNT_INFO])

    @app.route("/memberships", methods=["GET"])
    async def memberships(self, request):
        self._checker.check(request)
        membership = {"id": ACCOUNT_INFO["id"], "account": ACCOUNT_INFO, "status": "accepted", "roles": []}
        return ok(request, [membership])

    @app.route("/user/tokens/verify", methods=["GET"])
    @app.route("/user", methods=["GET"])
    async def user(self, request):
        self._checker.check(request)
        return ok(request, {"id": "funcplane", "status": "active", "email": "funcplane"})
