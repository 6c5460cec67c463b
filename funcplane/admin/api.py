"""
The admin API (Klein).  Handlers parse and validate input into value types, call the
platform, and render JSON; every domain error becomes a status and a JSON body by the
table of L{funcplane.admin.errors}, registered on this app once.
"""

import functools
import json

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from funcplane import errors
from funcplane.admin.errors import add_admin_error_handling
from funcplane.admin.follow import LogFollower
from funcplane.admin.schedules import parse_crons, run_json, schedule_json
from funcplane.admin.parse import (
    ALIAS_FIELDS,
    ROLLBACK_FIELDS,
    check_fields,
    parse_deployment,
    parse_json_object,
    required_string,
)
from funcplane.admin.cloudflare.shapes import public_binding
from funcplane.admin.syntax import detect_format, detect_format_later
from funcplane.model import MODULE
from funcplane.names import check_label
from funcplane.timestamps import timestamp


def _json(request, value, status=200):
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode("utf-8") + b"\n"


def admin(handler):
    """
    Require the admin token before C{handler} runs.
    """

    @functools.wraps(handler)
    async def checked(self, request, **kwargs):
        self._checker.check(request)
        return await handler(self, request, **kwargs)

    return checked


class AdminAPI:
    """
    The admin API.

    @param platform: the L{funcplane.platform.Platform}.
    @param checker: has C{check(request)}, which raises L{funcplane.errors.Unauthorized}
        without the admin token (a L{funcplane.admin.auth.TokenChecker}, or the service's
        C{admin-token} part).
    @param limits: the L{funcplane.admin.parse.Limits}.
    @param domain: the functions' domain.
    @param public_port: the port function URLs carry (omitted when 80).
    @param logbook: the L{funcplane.observe.logbook.LogBook} the logs routes read.
    @param clock: an C{IReactorTime}, for the keep-alive comments of followed logs and for
        reading a script's format a slice at a time (without it, at once).
    @param cloudflare: the L{funcplane.admin.cloudflare.api.CloudflareAPI} served under
        C{/client/v4}, or L{None} to serve none.
    @param schedules: the L{funcplane.schedule.scheduler.Scheduler} of cron triggers, or L{None}.
    """

    app = Klein()
    add_admin_error_handling(app)

    def __init__(
        self,
        platform,
        checker,
        limits,
        domain,
        public_port=80,
        logbook=None,
        clock=None,
        cloudflare=None,
        schedules=None,
        kv=None,
    ):
        self._kv = kv
        self._platform = platform
        self._checker = checker
        self._limits = limits
        self._domain = domain
        self._port_suffix = "" if public_port == 80 else f":{public_port}"
        self._logbook = logbook
        self._clock = clock
        self._cloudflare = cloudflare
        self._schedules = schedules

    def resource(self):
        return self.app.resource()

    def _host(self, function, label=None):
        return ".".join(p for p in (label, function, self._domain) if p).lower()

    def _url(self, host):
        return f"http://{host}{self._port_suffix}"

    def _body(self, request):
        # The admin Site (funcplane.admin.site.AdminRequest) refused a body over the limit
        # before it was read; twisted.web has received the whole of this one.
        content = request.content
        content.seek(0)
        return parse_json_object(content.read())

    @app.route("/health", methods=["GET"])
    def health(self, request):
        """
        For load balancers: no token, nothing secret, 200 while funcplane serves.
        """
        request.setHeader(b"cache-control", b"no-store")
        return _json(request, {"status": "ok"})

    @app.route("/client/v4/", branch=True)
    def cloudflare(self, request):
        """
        The Cloudflare v4 API subset that wrangler speaks (L{funcplane.admin.cloudflare.api}).
        """
        if self._cloudflare is None:
            raise errors.FuncplaneError("the Cloudflare API is not enabled")
        return self._cloudflare.resource()

    @app.route("/api/deploy/<name>", methods=["POST"])
    @admin
    async def deploy(self, request, name):
        body = self._body(request)
        detected = await self._detect_format(body)
        deployment = parse_deployment(name, body, self._limits, detected)
        crons = parse_crons(body["crons"]) if body.get("crons") is not None else None
        if self._kv is not None:
            await self._kv.check_bindings(deployment.bindings)
        elif body.get("kv_namespaces"):
            raise errors.InvalidBinding("this funcplane has no Workers KV")
        try:
            version = (await self._platform.deploy(deployment)).version
        except errors.StartFailed as e:
            if detected is None or e.reason != "ScriptError":
                raise
            raise errors.StartFailed(f"{e}\n{_format_hint(detected)}", e.reason) from e
        host = self._host(deployment.function, version)
        answer = {
            "status": "success",
            "funcName": deployment.function,
            "version": version,
            "alias": deployment.alias or "",
            "subdomain": host,
            "accessUrl": self._url(host),
        }
        if crons is not None:
            # The function's, not the version's: they stay as they are unless given.
            _, stored = await self._scheduler().put(deployment.function, crons)
            answer["schedules"] = [schedule_json(s) for s in stored]
        return _json(request, answer)

    def _scheduler(self):
        if self._schedules is None:
            raise errors.FuncplaneError("this funcplane runs no cron triggers")
        return self._schedules

    async def _detect_format(self, body):
        """
        The format of the body's code, read from its syntax, when the body does not say
        (L{None} when it does, or when the code is not a string within the size limit:
        L{parse_deployment} then refuses it or uses what was given).
        """
        code = body.get("code")
        if body.get("format") or not isinstance(code, str):
            return None
        if len(code) > self._limits.max_code_bytes:
            return None
        if self._clock is None:
            return detect_format(code)
        return await detect_format_later(code, self._clock)

    @app.route("/api/deploy/<path:name>", methods=["POST"])
    @app.route("/api/rollback/<path:name>", methods=["POST"])
    @admin
    async def slashed_name(self, request, name):
        """
        A function name with a slash in it (C{../x}, C{a/b}) is a bad name, not a missing
        route.
        """
        check_label("function", name)
        raise errors.InvalidName(f"function name {name!r} is not a DNS label")

    @app.route("/api/rollback/<name>", methods=["POST"])
    @admin
    async def rollback(self, request, name):
        check_label("function", name)
        body = self._body(request)
        check_fields(body, ROLLBACK_FIELDS, "rollback")
        version = check_label("version", required_string(body, "version"))
        alias = body.get("alias") or None
        if alias is not None:
            check_label("alias", alias)
        function, target = await self._platform.rollback(name, version, alias)
        return _json(
            request,
            {
                "status": "success",
                "funcName": function,
                "targetVersion": target,
                "alias": alias or "",
                "accessUrl": self._url(self._host(function, target)),
            },
        )

    def _function_json(self, state):
        info = state.info
        return {
            "name": info.name,
            "createdAt": timestamp(info.created_at),
            "latest": info.latest,
            "url": self._url(self._host(info.name)),
            "versions": [
                {
                    "name": v.info.name,
                    "id": v.info.id,
                    "createdAt": timestamp(v.info.created_at),
                    "state": v.runtime.state,
                    "pid": v.runtime.pid,
                    "lastRequestAt": timestamp(v.runtime.last_request)
                    if v.runtime.last_request is not None
                    else None,
                    "restarts": v.runtime.restarts,
                    "compatibilityDate": v.info.compatibility_date,
                    "compatibilityFlags": list(v.info.compatibility_flags),
                    "bindings": [public_binding(b) for b in v.info.bindings],
                    "url": self._url(self._host(info.name, v.info.name)),
                }
                for v in state.versions
            ],
            "aliases": [
                {"name": alias, "version": version, "url": self._url(self._host(info.name, alias))}
                for alias, version in info.aliases
            ],
        }

    @app.route("/api/functions", methods=["GET"])
    @admin
    async def list_functions(self, request):
        states = await self._platform.functions()
        found = []
        if self._schedules is not None:
            found = await self._schedules.every()
        functions = []
        for state in states:
            shown = self._function_json(state)
            shown["schedules"] = [schedule_json(s) for f, s in found if f == state.info.name]
            functions.append(shown)
        return _json(request, {"status": "success", "functions": functions})

    @app.route("/api/functions/<name>", methods=["GET"])
    @admin
    async def show_function(self, request, name):
        check_label("function", name)
        state = await self._platform.function(name)
        shown = self._function_json(state)
        if self._schedules is not None:
            shown["schedules"] = [schedule_json(s) for s in (await self._schedules.schedules(name))[1]]
        return _json(request, {"status": "success", "function": shown})

    @app.route("/api/functions/<name>/scheduled", methods=["POST"])
    @admin
    async def run_scheduled(self, request, name):
        """
        Run the function's scheduled handler once, now, on the version serving it, for
        C{?cron=} (by default its first cron trigger); answer with the outcome.
        """
        check_label("function", name)
        given = request.args.get(b"cron", [None])[0]
        cron = given.decode("utf-8", "replace") if given is not None else None
        result, lines = await self._scheduler().run_now(name, cron)
        return _json(request, run_json(result, lines))

    @app.route("/api/functions/<name>", methods=["DELETE"])
    @admin
    async def delete_function(self, request, name):
        check_label("function", name)
        await self._platform.delete_function(name)
        return _json(request, {"status": "success", "funcName": name, "deleted": True})

    @app.route("/api/functions/<name>/aliases/<alias>", methods=["PUT"])
    @admin
    async def set_alias(self, request, name, alias):
        check_label("function", name)
        check_label("alias", alias)
        body = self._body(request)
        check_fields(body, ALIAS_FIELDS, "alias")
        version = check_label("version", required_string(body, "version"))
        function, target = await self._platform.set_alias(name, alias, version)
        return _json(
            request,
            {
                "status": "success",
                "funcName": function,
                "alias": alias,
                "version": target,
                "accessUrl": self._url(self._host(function, alias)),
            },
        )

    @app.route("/api/functions/<name>/aliases/<alias>", methods=["DELETE"])
    @admin
    async def delete_alias(self, request, name, alias):
        check_label("function", name)
        check_label("alias", alias)
        await self._platform.delete_alias(name, alias)
        return _json(request, {"status": "success", "funcName": name, "alias": alias, "deleted": True})

    @app.route("/api/functions/<name>/versions/<version>/stop", methods=["POST"])
    @admin
    async def stop_version(self, request, name, version):
        check_label("function", name)
        check_label("version", version)
        await self._platform.stop_version(name, version)
        return _json(
            request, {"status": "success", "funcName": name, "version": version, "state": "stopped"}
        )

    @app.route("/api/functions/<name>/versions/<version>", methods=["DELETE"])
    @admin
    async def delete_version(self, request, name, version):
        check_label("function", name)
        check_label("version", version)
        force = request.args.get(b"force", [b"false"])[0].lower() in (b"1", b"true", b"yes")
        await self._platform.delete_version(name, version, force)
        return _json(
            request, {"status": "success", "funcName": name, "version": version, "deleted": True}
        )

    @app.route("/api/functions/<name>/logs", methods=["GET"])
    @admin
    async def function_logs(self, request, name):
        check_label("function", name)
        return await self._logs(request, name, None)

    @app.route("/api/functions/<name>/versions/<version>/logs", methods=["GET"])
    @admin
    async def version_logs(self, request, name, version):
        check_label("function", name)
        check_label("version", version)
        return await self._logs(request, name, version)

    async def _logs(self, request, name, version):
        limit = _limit(request)
        function, version_ids = await self._platform.log_sources(name, version)
        lines = self._logbook.lines(version_ids, limit)
        follow = request.args.get(b"follow", [b""])[0].lower() in (b"1", b"true", b"yes")
        accept = request.getHeader(b"accept") or b""
        if follow or b"text/event-stream" in accept:
            return await self._follow(request, function, version_ids, lines)
        return _json(
            request,
            {
                "status": "success",
                "funcName": function,
                "lines": [_line_json(entry) for entry in lines],
            },
        )

    async def _follow(self, request, function, version_ids, lines):
        """
        Server-sent events: the kept lines, then each new one as it is printed, until the
        client goes away.  A comment every 15 s keeps idle connections open.  A client
        that stops reading is dropped once a bounded amount waits for it
        (L{funcplane.admin.follow.LogFollower}).
        """
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        # The head at once, even with no line to send yet: a client waits for it.
        request.write(b"")
        # The kept lines are bounded by the log book; new ones go through the follower.
        for entry in lines:
            request.write(_event(entry))
        follower = LogFollower(request, function)
        follower.start()
        gone = Deferred()
        request.notifyFinish().addBoth(lambda _: gone.called or gone.callback(None))
        unfollow = self._logbook.follow(version_ids, lambda entry: follower.send(_event(entry)))
        keep_alive = LoopingCall(follower.send, b": keep-alive\n\n")
        keep_alive.clock = self._clock
        keep_alive.start(FOLLOW_KEEP_ALIVE, now=False)
        try:
            await gone
        finally:
            unfollow()
            keep_alive.stop()
            follower.stop()
        return b""


FOLLOW_KEEP_ALIVE = 15.0
MAX_LINES = 1000


def _limit(request):
    raw = request.args.get(b"limit", [b""])[0]
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LINES:
        raise errors.InvalidRequest(f"limit must be a whole number from 1 to {MAX_LINES}")
    return int(raw)


def _format_hint(detected):
    """
    What to say when a script whose format was guessed did not start: the guess may be
    what went wrong.
    """
    if detected == MODULE:
        return (
            "funcplane read this code as an ES module (it has a top-level import or export);"
            ' if it is a service-worker script, send "format":"service-worker"'
        )
    return (
        "funcplane read this code as a service-worker script (it found no top-level import"
        ' or export statement); if it is an ES module, send "format":"module"'
    )


def _line_json(entry):
    return {
        "seq": entry.seq,
        "time": timestamp(entry.time),
        "version": entry.version,
        "kind": entry.kind,
        "level": entry.level,
        "message": entry.message,
    }


def _event(entry):
    data = json.dumps(_line_json(entry))
    return f"id: {entry.seq}\nevent: log\ndata: {data}\n\n".encode("utf-8")
