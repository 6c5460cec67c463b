"""
A script's aliases, as the other self-hosted workerd platform exposes them: an alias
names a version, and answers at C{alias.function.domain}.
"""

from funcplane import errors
from funcplane.admin.cloudflare.app import SCRIPT, app, checked, json_body, ok
from funcplane.admin.cloudflare.versions import find_version
from funcplane.ids import cf_id
from funcplane.names import check_label


class AliasRoutes:
    """
    C{.../aliases}.
    """

    @app.route(SCRIPT + "/aliases", methods=["GET"])
    @checked
    async def aliases(self, request, name):
        info = (await self._platform.function(name)).info
        names = {v.name: v.id for v in info.versions}
        return ok(
            request,
            [{"name": alias, "version_id": cf_id(names[version])} for alias, version in info.aliases],
        )

    @app.route(SCRIPT + "/aliases/<alias>", methods=["PUT"])
    @checked
    async def put_alias(self, request, name, alias):
        check_label("alias", alias)
        wanted = json_body(request).get("version_id")
        if not isinstance(wanted, str):
            raise errors.InvalidRequest("'version_id' is required")
        info = (await self._platform.function(name)).info
        version = find_version(info, wanted)
        await self._platform.set_alias(name, alias, version.name)
        return ok(request, {"name": alias, "version_id": cf_id(version.id)})
