"""
A script's versions, read: the list, and one by its id.  They are made by uploads
(L{funcplane.admin.cloudflare.scripts}) and served by deployments
(L{funcplane.admin.cloudflare.deployments}).
"""

from funcplane import errors
from funcplane.admin.cloudflare.app import SCRIPT, app, checked, ok
from funcplane.admin.cloudflare.shapes import version_json
from funcplane.ids import plain_id


def find_version(info, text):
    """
    The version of L{funcplane.model.FunctionInfo} C{info} whose id is C{text}, as a
    UUID or plain.

    @raise funcplane.errors.NoSuchVersion: it has none.
    """
    wanted = plain_id(text)
    for version in info.versions:
        if version.id == wanted:
            return version
    raise errors.NoSuchVersion(f"{info.name} has no version {text}")


class VersionRoutes:
    """
    C{.../versions}, for reading.
    """

    @app.route(SCRIPT + "/versions", methods=["GET"])
    @checked
    async def versions(self, request, name):
        info = (await self._platform.function(name)).info
        items = [version_json(info, v) for v in reversed(info.versions)]
        return ok(request, {"items": items})

    @app.route(SCRIPT + "/versions/<version>", methods=["GET"])
    @checked
    async def version(self, request, name, version):
        info = (await self._platform.function(name)).info
        return ok(request, version_json(info, find_version(info, version)))
