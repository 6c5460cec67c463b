"""
The part of Cloudflare's v4 API that wrangler uses, under C{/client/v4}, so that an
unmodified wrangler deploys to funcplane.  Every answer is Cloudflare's envelope
C{{"success", "errors", "messages", "result"}}; errors carry the codes wrangler acts on
(10007: no such worker, which is how it tells a first deploy).  Scripts are funcplane's
functions; Cloudflare's version ids are funcplane's version ids, shown as UUIDs.

What is written here is visible through the admin API and the other way round: both
call the same L{funcplane.platform.Platform}.
"""

import functools
import json
import re
import uuid

from klein import Klein
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from twisted.logger import Logger
from werkzeug.exceptions import HTTPException

from funcplane import errors
from funcplane.model import SECRET_TEXT
from funcplane.names import check_env_name, check_label
from funcplane.admin.parse import parse_json_object
from funcplane.ids import cf_id, plain_id
from funcplane.timestamps import timestamp
from funcplane.admin.cloudflare.shapes import deployment_json, public_binding, script_json, version_json
from funcplane.observe.tails import PROTOCOL, TailSocket
from funcplane.observe.trace import TailFilter
from funcplane.admin.cloudflare.upload import CONTENT_TYPES, multipart_parts, parse_bindings, parse_upload
from funcplane.admin.websocket import handshake_problem, header_tokens, switching_protocols

# (HTTP status, Cloudflare error code) for each domain error, most specific first.
ERRORS = [
    (errors.Unauthorized, 401, 10000),
    (errors.InvalidBinding, 400, 10057),
    (errors.InvalidRequest, 400, 10021),
    (errors.NoSuchFunction, 404, 10007),
    (errors.NoSuchVersion, 404, 10007),
    (errors.NoSuchAlias, 404, 10007),
    (errors.NoSuchSecret, 404, 10007),
    (errors.NoSuchTail, 404, 10007),
    (errors.TooManyTails, 429, 10429),
    (errors.NotDeployed, 409, 10215),
    (errors.Conflict, 409, 10021),
    (errors.CodeTooLarge, 413, 10027),
    (errors.RequestTooLarge, 413, 10027),
    (errors.StartFailed, 400, 10021),
    (errors.FuncplaneError, 503, 10013),
]
ACCOUNT = "/accounts/<account>"
SCRIPT = ACCOUNT + "/workers/scripts/<name>"
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9-]{1,64}\Z")
_TAIL_ID = re.compile(r"[0-9a-f]{32}\Z")
_HOST = re.compile(rb"[A-Za-z0-9.:\[\]-]{1,255}\Z")
SUBDOMAIN = "funcplane"
ACCOUNT_INFO = {"id": "funcplane", "name": "funcplane"}


def envelope(result, success=True, errors_=()):
    return {"success": success, "errors": list(errors_), "messages": [], "result": result}


def _send(request, value, status=200):
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode("utf-8") + b"\n"


def _ok(request, result):
    return _send(request, envelope(result))


def checked(handler):
    """
    Require the admin token and a well-formed account id, and check the script name when
    the route has one.
    """

    @functools.wraps(handler)
    async def check(self, request, account, **kwargs):
        self._checker.check(request)
        if not _ACCOUNT_ID.match(account):
            raise errors.InvalidRequest(f"account id {account[:80]!r} is not valid")
        if "name" in kwargs:
            check_label("script", kwargs["name"])
        return await handler(self, request, **kwargs)

    return check


def _source(request):
    agent = request.getHeader(b"user-agent") or b""
    return "wrangler" if agent.startswith(b"wrangler") else "api"


class CloudflareAPI:
    """
    The Cloudflare v4 subset.

    @param platform: the L{funcplane.platform.Platform}.
    @param checker: the admin L{funcplane.admin.auth.TokenChecker}; wrangler's
        C{CLOUDFLARE_API_TOKEN} is the admin token.
    @param limits: the L{funcplane.admin.parse.Limits}.
    @param clock: an C{IReactorTime}, for start-up times.
    @param tails: the L{funcplane.observe.tails.Tails}, for C{wrangler tail}.
    """

    app = Klein()
    log = Logger()

    def __init__(self, platform, checker, limits, clock, tails):
        self._platform = platform
        self._checker = checker
        self._limits = limits
        self._clock = clock
        self._tails = tails

    def resource(self):
        return self.app.resource()

    @app.handle_errors(errors.FuncplaneError)
    def domain_error(self, request, failure):
        error = failure.value
        status, code = errors.classify(error, ERRORS)
        return _send(request, envelope(None, False, [{"code": code, "message": str(error)}]), status)

    @app.handle_errors(HTTPException)
    def http_error(self, request, failure):
        error = failure.value
        code = 7003 if error.code == 404 else 10405 if error.code == 405 else 10000 + error.code
        message = (
            f"funcplane does not implement {request.method.decode()} {request.path.decode()}"
            if error.code in (404, 405)
            else error.description
        )
        return _send(request, envelope(None, False, [{"code": code, "message": message}]), error.code)

    def _body(self, request):
        content = request.content
        content.seek(0)
        return content.read()

    def _json_body(self, request):
        # wrangler sends some JSON bodies as text/plain: the Content-Type is not checked.
        return parse_json_object(self._body(request))

    # Scripts.

    @app.route(ACCOUNT + "/workers/services/<name>", methods=["GET"])
    @checked
    async def service(self, request, name):
        info = (await self._platform.function(name)).info
        script = script_json(info)
        return _ok(
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
        return _ok(request, None)

    async def _upload(self, request, name, deploy, triggered_by="upload"):
        deployment = parse_upload(
            name,
            self._body(request),
            (request.getHeader(b"content-type") or b"").decode("latin-1"),
            self._limits,
            deploy=deploy,
            source=_source(request),
            triggered_by=triggered_by,
        )
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
        metadata = info.version_named(spec.version).metadata
        return _ok(
            request,
            dict(
                script_json(info),
                deployment_id=cf_id(spec.id),
                startup_time_ms=startup,
                compatibility_date=metadata.get("compatibility_date", ""),
            ),
        )

    @app.route(SCRIPT + "/versions", methods=["POST"])
    @checked
    async def upload_version(self, request, name):
        """
        Upload a version without deploying it; it answers at its own hosts.  Like
        Cloudflare, the function must exist.
        """
        await self._platform.function(name)
        spec, startup = await self._upload(request, name, deploy=False)
        state = await self._platform.function(name)
        return _ok(
            request,
            dict(version_json(state.info, state.info.version_named(spec.version)), startup_time_ms=startup),
        )

    # Versions.

    def _find_version(self, info, text):
        wanted = plain_id(text)
        for version in info.versions:
            if version.id == wanted:
                return version
        raise errors.NoSuchVersion(f"{info.name} has no version {text}")

    @app.route(SCRIPT + "/versions", methods=["GET"])
    @checked
    async def versions(self, request, name):
        info = (await self._platform.function(name)).info
        items = [version_json(info, v) for v in reversed(info.versions)]
        return _ok(request, {"items": items})

    @app.route(SCRIPT + "/versions/<version>", methods=["GET"])
    @checked
    async def version(self, request, name, version):
        info = (await self._platform.function(name)).info
        return _ok(request, version_json(info, self._find_version(info, version)))

    @app.route(SCRIPT + "/content/v2", methods=["GET"])
    @checked
    async def content(self, request, name):
        """
        A version's modules, as the multipart body they were uploaded in.
        """
        info = (await self._platform.function(name)).info
        wanted = request.args.get(b"version", [b""])[0].decode("ascii", "replace")
        version = self._find_version(info, wanted) if wanted else info.version_named(info.latest)
        modules = await self._platform.modules(version.id)
        boundary = uuid.uuid4().hex
        body = []
        for module in modules:
            quoted = module.name.replace("\\", "\\\\").replace('"', "%22")
            body += [
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"{quoted}\";"
                f" filename=\"{quoted}\"\r\nContent-Type: {CONTENT_TYPES[module.kind]}\r\n\r\n".encode(),
                module.content,
                b"\r\n",
            ]
        body.append(f"--{boundary}--\r\n".encode())
        request.setHeader(b"content-type", f"multipart/form-data; boundary={boundary}".encode())
        request.setHeader(b"cf-entrypoint", modules[0].name.encode("utf-8"))
        return b"".join(body)

    # Deployments.

    @app.route(SCRIPT + "/deployments", methods=["GET"])
    @checked
    async def deployments(self, request, name):
        history = await self._platform.deployments(name)
        return _ok(request, {"deployments": [deployment_json(d) for d in history]})

    @app.route(SCRIPT + "/deployments", methods=["POST"])
    @checked
    async def deploy(self, request, name):
        """
        Serve the script by the given versions in the given shares (any number of them,
        summing to 100): a deploy, a gradual one, or a rollback.
        """
        body = self._json_body(request)
        strategy = body.get("strategy", "percentage")
        if strategy != "percentage":
            raise errors.InvalidRequest(f"strategy {strategy!r} is not supported; use 'percentage'")
        info = (await self._platform.function(name)).info
        shares = _shares(body.get("versions"), info, self._find_version)
        annotations = body.get("annotations") or {}
        metadata = {"source": _source(request)}
        message = annotations.get("workers/message") if isinstance(annotations, dict) else None
        if isinstance(message, str) and message:
            metadata["message"] = message[:1024]
        deployment_id = await self._platform.deploy_versions(info.name, shares, metadata)
        history = await self._platform.deployments(name)
        current = next(d for d in history if d.id == deployment_id)
        return _ok(request, deployment_json(current))

    # Settings, subdomains, and what wrangler asks for on the way.

    async def _settings(self, name):
        info = (await self._platform.function(name)).info
        latest = info.version_named(info.latest) if info.latest else None
        bindings = [public_binding(b) for b in latest.bindings] if latest else []
        return {"bindings": bindings, "logpush": False, "tail_consumers": None}

    @app.route(SCRIPT + "/settings", methods=["GET"])
    @checked
    async def settings(self, request, name):
        return _ok(request, await self._settings(name))

    @app.route(SCRIPT + "/settings", methods=["PATCH"])
    @checked
    async def patch_settings(self, request, name):
        """
        Replace the deployed version's bindings (C{wrangler secret bulk}): entries with
        only a name and a type keep what the version has; the new version is deployed.
        """
        fields, _ = multipart_parts(
            self._body(request),
            (request.getHeader(b"content-type") or b"").decode("latin-1"),
            self._limits.max_body_bytes,
        )
        settings = parse_json_object(fields.get("settings", "").encode("utf-8"))
        given, keep = parse_bindings(settings.get("bindings"), self._limits, allow_keep=True)

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

        metadata = {"source": _source(request), "triggered_by": "secret"}
        await self._platform.change_bindings(name, change, metadata)
        return _ok(request, await self._settings(name))

    @app.route(SCRIPT + "/script-settings", methods=["GET", "PATCH"])
    @checked
    async def script_settings(self, request, name):
        await self._platform.function(name)
        return _ok(request, {"logpush": False, "tail_consumers": None, "observability": {"enabled": False}})

    @app.route(ACCOUNT + "/workers/subdomain", methods=["GET"])
    @checked
    async def subdomain(self, request):
        return _ok(request, {"subdomain": SUBDOMAIN})

    @app.route(SCRIPT + "/subdomain", methods=["GET", "POST"])
    @checked
    async def script_subdomain(self, request, name):
        await self._platform.function(name)
        return _ok(request, {"enabled": True, "previews_enabled": True})

    @app.route(SCRIPT + "/references", methods=["GET"])
    @checked
    async def references(self, request, name):
        await self._platform.function(name)
        return _ok(
            request,
            {
                "services": {"incoming": [], "outgoing": [], "pages_function": False},
                "durable_objects": [],
                "dispatch_outbounds": [],
            },
        )

    # Tails.

    @app.route(SCRIPT + "/tails", methods=["POST"])
    @checked
    async def create_tail(self, request, name):
        """
        Make a tail of the script, and answer with the WebSocket address that streams it.
        """
        await self._platform.function(name)
        body = self._body(request)
        tail_filter = TailFilter.parse(
            parse_json_object(body) if body.strip() else {}, request.getClientAddress().host
        )
        tail = self._tails.open(name, tail_filter)
        host = request.getHeader(b"host") or b""
        if not _HOST.match(host):
            address = request.getHost()
            host = f"{address.host}:{address.port}".encode("ascii")
        scheme = "wss" if request.isSecure() else "ws"
        return _ok(
            request,
            {
                "id": tail.id,
                "url": f"{scheme}://{host.decode('ascii')}/client/v4/tails/{tail.id}",
                "expires_at": timestamp(tail.expires_at),
            },
        )

    @app.route(SCRIPT + "/tails/<tail_id>", methods=["DELETE"])
    @checked
    async def delete_tail(self, request, name, tail_id):
        self._tails.delete(name, tail_id)
        return _ok(request, None)

    @app.route("/tails/<tail_id>", methods=["GET"])
    def tail_socket(self, request, tail_id):
        """
        A tail's WebSocket.  The tail's id, which only its maker was told, is the credential:
        wrangler sends no token here.
        """
        problem = handshake_problem(request.method, request.requestHeaders)
        if problem is not None:
            raise errors.InvalidRequest(problem)
        if not _TAIL_ID.match(tail_id):
            raise errors.NoSuchTail(f"{tail_id[:40]!r} is not a tail id")
        return _TailUpgrade(self._tails, self._tails.waiting(tail_id), self._clock)

    @app.route(ACCOUNT + "/workers/tails/by-consumer/<name>", methods=["GET"])
    @checked
    async def tail_consumers(self, request, name):
        return _ok(request, [])

    @app.route(ACCOUNT + "/storage/kv/namespaces", methods=["GET"])
    @checked
    async def kv_namespaces(self, request):
        return _ok(request, [])

    # Secrets.

    @app.route(SCRIPT + "/secrets", methods=["GET"])
    @checked
    async def secrets(self, request, name):
        info = (await self._platform.function(name)).info
        latest = info.version_named(info.latest) if info.latest else None
        found = [b for b in latest.bindings if b.type == SECRET_TEXT] if latest else []
        return _ok(request, [{"name": b.name, "type": SECRET_TEXT} for b in found])

    @app.route(SCRIPT + "/secrets", methods=["PUT"])
    @checked
    async def put_secret(self, request, name):
        body = self._json_body(request)
        secret_name = check_env_name(body.get("name"))
        kind = body.get("type", SECRET_TEXT)
        if kind != SECRET_TEXT:
            raise errors.InvalidBinding(f"secret type {kind!r} is not supported; use secret_text")
        [binding], _ = parse_bindings(
            [{"name": secret_name, "type": SECRET_TEXT, "text": body.get("text")}], self._limits
        )

        def change(current):
            return dict(current, **{secret_name: binding})

        metadata = {"source": _source(request), "triggered_by": "secret"}
        await self._platform.change_bindings(name, change, metadata)
        return _ok(request, {"name": secret_name, "type": SECRET_TEXT})

    @app.route(SCRIPT + "/secrets/<secret>", methods=["DELETE"])
    @checked
    async def delete_secret(self, request, name, secret):
        def change(current):
            found = current.get(secret)
            if found is None or found.type != SECRET_TEXT:
                raise errors.NoSuchSecret(f"{name} has no secret {secret}")
            return {key: value for key, value in current.items() if key != secret}

        metadata = {"source": _source(request), "triggered_by": "secret"}
        await self._platform.change_bindings(name, change, metadata)
        return _ok(request, None)

    # Aliases, as the other self-hosted workerd platform exposes them.

    @app.route(SCRIPT + "/aliases", methods=["GET"])
    @checked
    async def aliases(self, request, name):
        info = (await self._platform.function(name)).info
        names = {v.name: v.id for v in info.versions}
        return _ok(
            request,
            [{"name": alias, "version_id": cf_id(names[version])} for alias, version in info.aliases],
        )

    @app.route(SCRIPT + "/aliases/<alias>", methods=["PUT"])
    @checked
    async def put_alias(self, request, name, alias):
        check_label("alias", alias)
        body = self._json_body(request)
        wanted = body.get("version_id")
        if not isinstance(wanted, str):
            raise errors.InvalidRequest("'version_id' is required")
        info = (await self._platform.function(name)).info
        version = self._find_version(info, wanted)
        await self._platform.set_alias(name, alias, version.name)
        return _ok(request, {"name": alias, "version_id": cf_id(version.id)})

    # Accounts and the user, for wrangler whoami and runs without an account id.

    @app.route("/accounts", methods=["GET"])
    async def accounts(self, request):
        self._checker.check(request)
        return _ok(request, [ACCOUNT_INFO])

    @app.route("/memberships", methods=["GET"])
    async def memberships(self, request):
        self._checker.check(request)
        membership = {"id": ACCOUNT_INFO["id"], "account": ACCOUNT_INFO, "status": "accepted", "roles": []}
        return _ok(request, [membership])

    @app.route("/user/tokens/verify", methods=["GET"])
    @app.route("/user", methods=["GET"])
    async def user(self, request):
        self._checker.check(request)
        return _ok(request, {"id": "funcplane", "status": "active", "email": "funcplane"})


class _TailUpgrade(Resource):
    """
    Opens a tail's WebSocket on the admin connection that asked for it.
    """

    isLeaf = True

    def __init__(self, tails, tail, clock):
        super().__init__()
        self._tails = tails
        self._tail = tail
        self._clock = clock

    def render_GET(self, request):
        offered = header_tokens(request.requestHeaders, b"sec-websocket-protocol")
        head = switching_protocols(
            request.getHeader(b"sec-websocket-key"), PROTOCOL if PROTOCOL in offered else None
        )
        socket = TailSocket(self._tails, self._tail, self._clock)
        request.channel.switch_protocol(head, socket)
        request.registerProducer(socket, True)
        return NOT_DONE_YET


def _shares(entries, info, find):
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
        version = find(info, entry["version_id"])
        if version.id in shares:
            raise errors.InvalidRequest(f"version {entry['version_id']} is listed twice")
        shares[version.id] = percentage
    if abs(sum(shares.values()) - 100) > 1e-6:
        raise errors.InvalidRequest(f"the percentages sum to {sum(shares.values()):g}, not 100")
    return list(shares.items())
