"""
Scripts, which are funcplane's functions: the list, uploads (a deploy with C{PUT}, a
version without one with C{POST .../versions}), deletion, the settings with their bindings
(C{wrangler secret bulk} replaces them), and what wrangler asks of a script on the way (its
service, script settings, subdomain and references).  A script's code is read back by
L{funcplane.admin.cloudflare.content}.
"""

from funcplane import errors
from funcplane.admin.cloudflare.app import ACCOUNT, SCRIPT, app, body, checked, ok, source
from funcplane.admin.cloudflare import features
from funcplane.admin.cloudflare.assets import parse_assets
from funcplane.admin.cloudflare.content import current_version
from funcplane.admin.cloudflare.shapes import public_binding, script_json, script_list_json, version_json
from funcplane.admin.cloudflare.upload import multipart_parts, parse_bindings, parse_upload
from funcplane.admin.parse import parse_json_object
from funcplane.ids import cf_id
from funcplane.model import KV_NAMESPACE


class ScriptRoutes:
    """
    C{.../workers/scripts/<name>} and C{.../workers/services/<name>}.
    """

    @app.route(ACCOUNT + "/workers/scripts", methods=["GET"])
    @checked
    async def list_scripts(self, request):
        """
        List Workers: every function as a script, its current version's settings (wrangler
        reads C{id} and C{migration_tag} before a Durable Object migration).
        """
        states = await self._platform.functions()
        return ok(
            request,
            [script_list_json(s.info, current_version(s.info)) for s in states if s.info.versions],
        )

    @app.route(ACCOUNT + "/workers/services/<name>", methods=["GET"])
    @checked
    async def service(self, request, name):
        info = (await self._platform.function(name)).info
        script = script_json(info)
        return ok(
            request,
            {
                "id": info.name,
                "created_on": script["created_on"],
                "modified_on": script["modified_on"],
                "default_environment": {
                    "environment": "production",
                    "created_on": script["created_on"],
                    "modified_on": script["modified_on"],
                    "script": script,
                },
                "environments": [],
            },
        )

    @app.route(ACCOUNT + "/workers/services/<name>", methods=["DELETE"])
    @app.route(SCRIPT, methods=["DELETE"])
    @checked
    async def delete(self, request, name):
        await self._platform.delete_function(name)
        return ok(request, None)

    async def _check_bindings(self, bindings):
        if self._kv is not None:
            await self._kv.check_bindings(bindings)
        elif any(b.type == KV_NAMESPACE for b in bindings):
            raise errors.InvalidBinding(features.KV.message)

    async def _upload(self, request, name, deploy, triggered_by="upload"):
        deployment = parse_upload(
            name,
            body(request),
            (request.getHeader(b"content-type") or b"").decode("latin-1"),
            self._limits,
            deploy=deploy,
            source=source(request),
            triggered_by=triggered_by,
            assets=lambda metadata: parse_assets(metadata, name, self._assets),
        )
        await self._check_bindings(deployment.bindings)
        started = self._clock.seconds()
        spec = await self._platform.deploy(deployment)
        return spec, max(1, round((self._clock.seconds() - started) * 1000))

    @app.route(SCRIPT, methods=["PUT"])
    @checked
    async def put_script(self, request, name):
        """
        Upload a version and deploy it to all traffic: a first deploy, or a service-worker
        script.  A function that does not exist yet is created.
        """
        spec, startup = await self._upload(request, name, deploy=True)
        info = (await self._platform.function(name)).info
        return ok(
            request,
            dict(
                script_json(info),
                deployment_id=cf_id(spec.id),
                startup_time_ms=startup,
                compatibility_date=spec.compatibility_date or "",
                compatibility_flags=list(spec.compatibility_flags),
            ),
        )

    @app.route(SCRIPT + "/versions", methods=["POST"])
    @checked
    async def upload_version(self, request, name):
        """
        Upload a version without deploying it; it answers at its own hosts.  Unlike
        Cloudflare, a function that does not exist yet is created, with this version and
        no deployment: its own host answers that it is not deployed until a deployment
        (C{wrangler versions deploy}) gives it one.
        """
        spec, startup = await self._upload(request, name, deploy=False)
        state = await self._platform.function(name)
        return ok(
            request,
            dict(version_json(state.info, state.info.version_named(spec.version)), startup_time_ms=startup),
        )

    async def _settings(self, name):
        info = (await self._platform.function(name)).info
        latest = info.version_named(info.latest) if info.latest else None
        bindings = [public_binding(b) for b in latest.bindings] if latest else []
        return {"bindings": bindings, "logpush": False, "tail_consumers": None}

    @app.route(SCRIPT + "/settings", methods=["GET"])
    @checked
    async def settings(self, request, name):
        return ok(request, await self._settings(name))

    @app.route(SCRIPT + "/settings", methods=["PATCH"])
    @checked
    async def patch_settings(self, request, name):
        """
        Replace the deployed version's bindings (C{wrangler secret bulk}): entries with
        only a name and a type keep what the version has; the new version is deployed.
        """
        fields, _ = multipart_parts(
            body(request),
            (request.getHeader(b"content-type") or b"").decode("latin-1"),
            self._limits.max_body_bytes,
        )
        settings = parse_json_object(fields.get("settings", "").encode("utf-8"))
        given, keep = parse_bindings(settings.get("bindings"), self._limits, allow_keep=True)
        await self._check_bindings(given)

        def change(current):
            missing = [name for name in keep if name not in current]
            if missing:
                raise errors.InvalidBinding(
                    f"inherit binding '{missing[0]}' is invalid: the deployed version has no"
                    " such binding"
                )
            found = {name: current[name] for name in keep}
            found.update((binding.name, binding) for binding in given)
            return found

        metadata = {"source": source(request), "triggered_by": "secret"}
        await self._platform.change_bindings(name, change, metadata)
        return ok(request, await self._settings(name))

    @app.route(SCRIPT + "/script-settings", methods=["GET", "PATCH"])
    @checked
    async def script_settings(self, request, name):
        await self._platform.function(name)
        return ok(request, {"logpush": False, "tail_consumers": None, "observability": {"enabled": False}})

    @app.route(SCRIPT + "/subdomain", methods=["GET", "POST"])
    @checked
    async def script_subdomain(self, request, name):
        await self._platform.function(name)
        return ok(request, {"enabled": True, "previews_enabled": True})

    @app.route(SCRIPT + "/references", methods=["GET"])
    @checked
    async def references(self, request, name):
        await self._platform.function(name)
        return ok(
            request,
            {
                "services": {"incoming": [], "outgoing": [], "pages_function": False},
                "durable_objects": [],
                "dispatch_outbounds": [],
            },
        )
