"""
Workers KV's REST API, as wrangler 4.86's C{kv namespace}, C{kv key} and C{kv bulk}
commands call it (and C{wrangler deploy}, which lists namespaces): namespaces under
C{.../storage/kv/namespaces}, their keys, values, metadata and bulk writes.  The rules and
limits are L{funcplane.kv.KV}'s; here requests become its calls, and its answers
Cloudflare's shapes.

A value is answered as the raw bytes, not in the envelope, as Cloudflare does; every other
answer is in the envelope, lists with their C{result_info}.
"""

import base64
import binascii
import json
import math

from funcplane import errors, kv
from funcplane.admin.cloudflare import features
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
from funcplane.admin.cloudflare.upload import multipart_parts
from funcplane.admin.parse import load_json

NAMESPACES = ACCOUNT + "/storage/kv/namespaces"
NAMESPACE = NAMESPACES + "/<namespace_id>"
# What one bulk request may hold, as on Cloudflare; bulk get takes 100 keys.
BULK_KEYS = 10_000
BULK_GET_KEYS = 100
# A value's multipart body: the value, its metadata and the parts' headers.
MULTIPART_BYTES = kv.VALUE_BYTES + 64 * 1024
PER_PAGE = 20
MAX_PER_PAGE = 1000


def _arg(request, name):
    values = request.args.get(name.encode("ascii"))
    return values[0].decode("utf-8", "replace") if values else None


def _int_arg(request, name, default, low, high):
    given = _arg(request, name)
    if given is None:
        return default
    try:
        number = int(given)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise errors.InvalidRequest(f"{name} must be an integer from {low} to {high}, not {given[:40]!r}")
    return number


def _key(key):
    """
    A key name from the path, which werkzeug has percent-decoded once (wrangler sends
    C{encodeURIComponent}'s), so C{%2F} is a slash in the name, and C{%2541} is C{%41}.
    """
    return key


def namespace_json(namespace):
    return {"id": namespace.id, "title": namespace.title, "supports_url_encoding": True}


def _key_json(entry):
    shown = {"name": entry.name}
    if entry.expiration is not None:
        shown["expiration"] = entry.expiration
    if entry.metadata is not None:
        shown["metadata"] = json.loads(entry.metadata)
    return shown


def _title(request):
    return json_body(request).get("title")


def _bulk_entry(now, item):
    if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not isinstance(item.get("value"), str):
        raise errors.InvalidRequest("each bulk item must be an object with a string key and a string value")
    value = item["value"].encode("utf-8")
    if item.get("base64"):
        try:
            value = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise errors.InvalidRequest(f"the value of {item['key'][:80]!r} is not valid base64")
    metadata = item.get("metadata")
    shown = None if metadata is None else json.dumps(metadata, separators=(",", ":"))
    return kv.entry(now, item["key"], value, shown, item.get("expiration"), item.get("expiration_ttl"))


def _bulk_list(request, kind):
    items = load_json(body(request))
    if not isinstance(items, list):
        raise errors.InvalidRequest(f"the body must be a JSON array of {kind}")
    if len(items) > BULK_KEYS:
        raise errors.InvalidRequest(f"a bulk request holds at most {BULK_KEYS} keys, not {len(items)}")
    return items


def _bulk_value(entry, kind):
    if entry is None:
        return None
    text = entry.value.decode("utf-8", "replace")
    if kind == "json":
        try:
            return json.loads(text)
        except ValueError:
            raise errors.InvalidRequest("At least one of the requested keys corresponds to a non-json value")
    return text


def _value_and_metadata(request):
    """
    A put's value and metadata: the raw body, or a multipart body's C{value} and
    C{metadata} parts (wrangler sends one when the key has metadata).
    """
    content_type = (request.getHeader(b"content-type") or b"").decode("latin-1")
    if not content_type.lower().startswith("multipart/form-data"):
        return body(request), None
    fields, files = multipart_parts(body(request), content_type, MULTIPART_BYTES, max_parts=4)
    parts = {name: value.encode("utf-8") for name, value in fields.items()}
    parts.update({name: content for name, _, _, content in files})
    if "value" not in parts:
        raise errors.InvalidRequest("the multipart body has no value part")
    metadata = parts.get("metadata")
    return parts["value"], None if metadata is None else metadata.decode("utf-8", "replace")


class KVRoutes:
    """
    C{.../storage/kv/namespaces} and everything under it.
    """

    def _namespaces(self):
        if self._kv is None:
            raise features.KV.error()
        return self._kv

    @app.route(NAMESPACES, methods=["GET"])
    @checked
    async def kv_namespaces(self, request):
        page = _int_arg(request, "page", 1, 1, 1_000_000)
        per_page = _int_arg(request, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
        order = _arg(request, "order") or "id"
        direction = _arg(request, "direction") or "asc"
        if order not in ("id", "title") or direction not in ("asc", "desc"):
            raise errors.InvalidRequest("order is id or title, and direction asc or desc")
        total, found = await self._namespaces().namespaces((page - 1) * per_page, per_page, order, direction == "desc")
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(found),
            "total_count": total,
            "total_pages": math.ceil(total / per_page),
        }
        return send(request, {**envelope([namespace_json(n) for n in found]), "result_info": info})

    @app.route(NAMESPACES, methods=["POST"])
    @checked
    async def kv_create_namespace(self, request):
        made = await self._namespaces().create_namespace(_title(request))
        return ok(request, namespace_json(made))

    @app.route(NAMESPACE, methods=["GET"])
    @checked
    async def kv_namespace(self, request, namespace_id):
        return ok(request, namespace_json(await self._namespaces().namespace(namespace_id)))

    @app.route(NAMESPACE, methods=["PUT"])
    @checked
    async def kv_rename_namespace(self, request, namespace_id):
        renamed = await self._namespaces().rename_namespace(namespace_id, _title(request))
        return ok(request, namespace_json(renamed))

    @app.route(NAMESPACE, methods=["DELETE"])
    @checked
    async def kv_delete_namespace(self, request, namespace_id):
        await self._namespaces().delete_namespace(namespace_id)
        return ok(request, {})

    @app.route(NAMESPACE + "/keys", methods=["GET"])
    @checked
    async def kv_keys(self, request, namespace_id):
        found, cursor = await self._namespaces().keys(
            namespace_id, _arg(request, "prefix"), _arg(request, "cursor"), _arg(request, "limit")
        )
        info = {"count": len(found), "cursor": cursor or ""}
        return send(request, {**envelope([_key_json(e) for e in found]), "result_info": info})

    @app.route(NAMESPACE + "/values/<path:key>", methods=["GET"])
    @checked
    async def kv_value(self, request, namespace_id, key):
        found = await self._namespaces().get(namespace_id, _key(key))
        request.setHeader(b"content-type", b"application/octet-stream")
        if found.expiration is not None:
            request.setHeader(b"expiration", str(found.expiration).encode("ascii"))
        return found.value

    @app.route(NAMESPACE + "/metadata/<path:key>", methods=["GET"])
    @checked
    async def kv_metadata(self, request, namespace_id, key):
        found = await self._namespaces().get(namespace_id, _key(key))
        return ok(request, None if found.metadata is None else json.loads(found.metadata))

    @app.route(NAMESPACE + "/values/<path:key>", methods=["PUT"])
    @checked
    async def kv_put(self, request, namespace_id, key):
        value, metadata = _value_and_metadata(request)
        await self._namespaces().put(
            namespace_id, _key(key), value, metadata, _arg(request, "expiration"), _arg(request, "expiration_ttl")
        )
        return ok(request, {})

    @app.route(NAMESPACE + "/values/<path:key>", methods=["DELETE"])
    @checked
    async def kv_delete(self, request, namespace_id, key):
        await self._namespaces().delete(namespace_id, _key(key))
        return ok(request, {})

    @app.route(NAMESPACE + "/bulk", methods=["PUT"])
    @checked
    async def kv_bulk_put(self, request, namespace_id):
        store = self._namespaces()
        now = store.now()
        entries = [_bulk_entry(now, item) for item in _bulk_list(request, "key-value pairs")]
        count = await store.put_many(namespace_id, entries)
        return ok(request, {"successful_key_count": count, "unsuccessful_keys": []})

    @app.route(NAMESPACE + "/bulk", methods=["DELETE"])
    @app.route(NAMESPACE + "/bulk/delete", methods=["POST"])
    @checked
    async def kv_bulk_delete(self, request, namespace_id):
        names = _bulk_list(request, "key names")
        if not all(isinstance(n, str) for n in names):
            raise errors.InvalidRequest("the body must be a JSON array of key names")
        await self._namespaces().delete_many(namespace_id, names)
        return ok(request, {"successful_key_count": len(names), "unsuccessful_keys": []})

    @app.route(NAMESPACE + "/bulk/get", methods=["POST"])
    @checked
    async def kv_bulk_get(self, request, namespace_id):
        asked = json_body(request)
        names, kind = asked.get("keys"), asked.get("type", "text")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise errors.InvalidRequest("keys must be an array of key names")
        if not names:
            raise errors.InvalidRequest("You must request a minimum of 1 key")
        if len(names) > BULK_GET_KEYS:
            raise errors.InvalidRequest(f"You can request a maximum of {BULK_GET_KEYS} keys")
        if kind not in ("text", "json"):
            raise errors.InvalidRequest(f'"{kind}" is not a valid type. Use "json" or "text"')
        found = await self._namespaces().get_many(namespace_id, names)
        if asked.get("withMetadata"):
            values = {
                n: None if e is None else {
                    "value": _bulk_value(e, kind),
                    "metadata": None if e.metadata is None else json.loads(e.metadata),
                }
                for n, e in found.items()
            }
        else:
            values = {n: _bulk_value(e, kind) for n, e in found.items()}
        return ok(request, {"values": values})
