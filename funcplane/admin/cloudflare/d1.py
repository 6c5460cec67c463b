"""
D1 databases under C{/accounts/<account>/d1/database}, as wrangler 4.86's C{d1} commands
call them: create, list (C{name}, C{page}, C{per_page}), get (by id or by name), delete;
C{/query} (one result per statement, all in one transaction) and C{/raw}; C{/import}
(C{execute --file}: init, the upload to C{/client/v4/d1/imports/<token>}, ingest, poll).
C{export} and C{time_travel} stay refused (L{funcplane.admin.cloudflare.features.D1}).
"""

import json

from funcplane.admin.cloudflare.app import (
    ACCOUNT,
    app,
    body,
    checked,
    envelope,
    json_body,
    ok,
    send,
)
from funcplane.admin.cloudflare.features import D1
from funcplane.d1.sql import statements
from funcplane.errors import InvalidRequest, NotSupported
from funcplane.ids import cf_id
from funcplane.timestamps import timestamp

DATABASES = ACCOUNT + "/d1/database"
DATABASE = DATABASES + "/<database>"
MAX_PER_PAGE = 10000


def database_shape(record, size=None, tables=None):
    """
    A database as Cloudflare shows it.
    """
    shape = {
        "uuid": cf_id(record.id),
        "name": record.name,
        "version": "production",
        "created_at": timestamp(record.created_at),
        "read_replication": {"mode": "disabled"},
        "jurisdiction": None,
    }
    if size is not None:
        shape.update(file_size=size, num_tables=tables)
    return shape


def _whole(request, name, default, least, most):
    raw = request.args.get(name.encode(), [None])[0]
    if raw is None:
        return default
    if not raw.isdigit() or not least <= int(raw) <= most:
        raise InvalidRequest(f"{name} must be a whole number from {least} to {most}")
    return int(raw)


def _queries(document):
    """
    The statements of a C{/query} body: C{{sql, params}}, or a list of them (each run in
    turn, all in one transaction).
    """
    items = document if isinstance(document, list) else [document]
    found = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("sql"), str):
            raise InvalidRequest("the body must be {\"sql\": \"...\", \"params\": [...]}, or a list of them")
        params = item.get("params") or []
        if not isinstance(params, list):
            raise InvalidRequest("params must be a list")
        found.extend(statements(item["sql"], params))
    return found


class D1Routes:
    """
    C{.../d1/database...}: needs C{self._d1} (L{funcplane.d1.registry.Databases}) and
    C{self._d1_imports} (L{funcplane.d1.imports.Imports}); without them, D1 is refused.
    """

    def _registry(self):
        if self._d1 is None:
            raise D1.error()
        return self._d1

    @app.route(DATABASES, methods=["POST"])
    @checked
    async def d1_create(self, request):
        document = json_body(request)
        hint = document.get("primary_location_hint")
        if hint is not None and not isinstance(hint, str):
            raise InvalidRequest("primary_location_hint must be a string")
        if document.get("jurisdiction"):
            raise NotSupported("funcplane's D1 databases have no jurisdiction: it keeps them where it runs")
        record = await self._registry().create(document.get("name"), hint)
        return ok(request, database_shape(record, *await self._d1.info(record)))

    @app.route(DATABASES, methods=["GET"])
    @checked
    async def d1_list(self, request):
        page = _whole(request, "page", 1, 1, 10**9)
        per_page = _whole(request, "per_page", 1000, 1, MAX_PER_PAGE)
        name = request.args.get(b"name", [b""])[0].decode("utf-8", "replace")
        every = await self._registry().every(name)
        shown = every[(page - 1) * per_page : page * per_page]
        result = [database_shape(r, *await self._d1.info(r)) for r in shown]
        info = {"page": page, "per_page": per_page, "count": len(result), "total_count": len(every)}
        return send(request, {**envelope(result), "result_info": info})

    @app.route(DATABASE, methods=["GET"])
    @checked
    async def d1_get(self, request, database):
        record = await self._registry().get(database)
        return ok(request, database_shape(record, *await self._d1.info(record)))

    @app.route(DATABASE, methods=["DELETE"])
    @checked
    async def d1_delete(self, request, database):
        await self._registry().delete(database)
        return ok(request, None)

    async def _run(self, request, database, rows_as):
        record = await self._registry().get(database)
        try:
            document = json.loads(body(request))
        except ValueError:
            raise InvalidRequest("the body must be JSON") from None
        return await self._d1.run(record, _queries(document), rows_as)

    @app.route(DATABASE + "/query", methods=["POST"])
    @checked
    async def d1_query(self, request, database):
        return ok(request, await self._run(request, database, "objects"))

    @app.route(DATABASE + "/raw", methods=["POST"])
    @checked
    async def d1_raw(self, request, database):
        return ok(request, await self._run(request, database, "arrays"))

    @app.route(DATABASE + "/import", methods=["POST"])
    @checked
    async def d1_import(self, request, database):
        record = await self._registry().get(database)
        document = json_body(request)
        action = document.get("action")
        if action == "init":
            token = self._d1_imports.init(record, document.get("etag"))
            scheme = "https" if request.isSecure() else "http"
            host = (request.getHeader(b"host") or b"localhost").decode("latin-1")
            url = f"{scheme}://{host}/client/v4/d1/imports/{token}"
            return ok(request, {"success": True, "upload_url": url, "filename": token})
        if action == "ingest":
            outcome = await self._d1_imports.ingest(record, document.get("filename"), document.get("etag"))
            return ok(request, outcome)
        if action == "poll":
            return ok(request, self._d1_imports.poll(document.get("current_bookmark")))
        raise InvalidRequest(f"action must be init, ingest or poll, not {str(action)[:40]!r}")

    @app.route("/d1/imports/<token>", methods=["PUT"])
    async def d1_upload(self, request, token):
        # No admin token: wrangler PUTs to the URL as given; the URL's token is the check.
        self._registry()
        digest = self._d1_imports.upload(token, body(request))
        request.setHeader(b"etag", f'"{digest}"'.encode("ascii"))
        return ok(request, None)
