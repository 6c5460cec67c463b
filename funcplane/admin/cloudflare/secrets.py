"""
A script's secrets, which are C{secret_text} bindings of its deployed version: listed by
name only, and put or deleted by deploying a new version with the change.
"""

from funcplane import errors
from funcplane.admin.cloudflare.app import SCRIPT, app, checked, json_body, ok, source
from funcplane.admin.cloudflare.upload import parse_bindings
from funcplane.model import SECRET_TEXT
from funcplane.names import check_env_name


class SecretRoutes:
    """
    C{.../secrets}.
    """

    @app.route(SCRIPT + "/secrets", methods=["GET"])
    @checked
    async def secrets(self, request, name):
        info = (await self._platform.function(name)).info
        latest = info.version_named(info.latest) if info.latest else None
        found = [b for b in latest.bindings if b.type == SECRET_TEXT] if latest else []
        return ok(request, [{"name": b.name, "type": SECRET_TEXT} for b in found])

    @app.route(SCRIPT + "/secrets", methods=["PUT"])
    @checked
    async def put_secret(self, request, name):
        given = json_body(request)
        secret_name = check_env_name(given.get("name"))
        kind = given.get("type", SECRET_TEXT)
        if kind != SECRET_TEXT:
            raise errors.InvalidBinding(f"secret type {kind!r} is not supported; use secret_text")
        [binding], _ = parse_bindings(
            [{"name": secret_name, "type": SECRET_TEXT, "text": given.get("text")}], self._limits
        )

        def change(current):
            return dict(current, **{secret_name: binding})

        metadata = {"source": source(request), "triggered_by": "secret"}
        await self._platform.change_bindings(name, change, metadata)
        return ok(request, {"name": secret_name, "type": SECRET_TEXT})

    @app.route(SCRIPT + "/secrets/<secret>", methods=["DELETE"])
    @checked
    async def delete_secret(self, request, name, secret):
        def change(current):
            found = current.get(secret)
            if found is None or found.type != SECRET_TEXT:
                raise errors.NoSuchSecret(f"{name} has no secret {secret}")
            return {key: value for key, value in current.items() if key != secret}

        metadata = {"source": source(request), "triggered_by": "secret"}
        await self._platform.change_bindings(name, change, metadata)
        return ok(request, None)
