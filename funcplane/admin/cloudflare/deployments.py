"""
A script's deployments: which versions serve its own host, in which shares.  A
deployment is a deploy, a gradual one, or a rollback; the list is its history.
"""

from funcplane import errors
from funcplane.admin.cloudflare.app import SCRIPT, app, checked, json_body, ok, source
from funcplane.admin.cloudflare.shapes import deployment_json
from funcplane.admin.cloudflare.versions import find_version


class DeploymentRoutes:
    """
    C{.../deployments}.
    """

    @app.route(SCRIPT + "/deployments", methods=["GET"])
    @checked
    async def deployments(self, request, name):
        history = await self._platform.deployments(name)
        return ok(request, {"deployments": [deployment_json(d) for d in history]})

    @app.route(SCRIPT + "/deployments", methods=["POST"])
    @checked
    async def deploy(self, request, name):
        """
        Serve the script by the given versions in the given shares (any number of them,
        summing to 100): a deploy, a gradual one, or a rollback.
        """
        given = json_body(request)
        strategy = given.get("strategy", "percentage")
        if strategy != "percentage":
            raise errors.InvalidRequest(f"strategy {strategy!r} is not supported; use 'percentage'")
        info = (await self._platform.function(name)).info
        shares = _shares(given.get("versions"), info)
        annotations = given.get("annotations") or {}
        metadata = {"source": source(request)}
        message = annotations.get("workers/message") if isinstance(annotations, dict) else None
        if isinstance(message, str) and message:
            metadata["message"] = message[:1024]
        deployment_id = await self._platform.deploy_versions(info.name, shares, metadata)
        history = await self._platform.deployments(name)
        current = next(d for d in history if d.id == deployment_id)
        return ok(request, deployment_json(current))


def _shares(entries, info):
    """
    C{(version id, percentage)} pairs from a deployment's C{versions} list.
    """
    if not isinstance(entries, list) or not entries:
        raise errors.InvalidRequest("'versions' must list at least one version")
    shares = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("version_id"), str):
            raise errors.InvalidRequest("each entry of 'versions' needs a 'version_id'")
        percentage = entry.get("percentage")
        if isinstance(percentage, bool) or not isinstance(percentage, (int, float)) or not 0 < percentage <= 100:
            raise errors.InvalidRequest("each version's 'percentage' must be a number above 0, at most 100")
        version = find_version(info, entry["version_id"])
        if version.id in shares:
            raise errors.InvalidRequest(f"version {entry['version_id']} is listed twice")
        shares[version.id] = percentage
    if abs(sum(shares.values()) - 100) > 1e-6:
        raise errors.InvalidRequest(f"the percentages sum to {sum(shares.values()):g}, not 100")
    return list(shares.items())
