"""
The server side of workerd's C{kvNamespace} binding: the HTTP requests a version's
C{env.NS.get/put/delete/list} become (L{funcplane.runtime.storage} is the channel they
come over), answered from L{funcplane.kv.KV}.

workerd names the namespace nowhere; the channel's config adds the header L{HEADER} with
the namespace's id, and a resource serves only the ids its version binds.  The protocol,
as workerd speaks it:

  - C{GET|PUT|DELETE /<key>?urlencoded=true}: the key percent-encoded in the path
    (decoded without C{+} meaning a space), metadata in C{CF-KV-Metadata} (raw UTF-8
    JSON), C{expiration}, C{expiration_ttl} and C{cache_ttl} in the query;
  - C{GET /?key_count_limit=&prefix=&cursor=}: a list, answered as
    C{{"keys": [{"name", "expiration"?, "metadata"?}], "list_complete", "cursor"?}};
  - C{POST /bulk/get} with C{{"keys", "type"?, "withMetadata"?, "cacheTtl"?}}.

A get of a missing key answers 404 (C{null} in JavaScript).  workerd reads no error body:
an error is its status and Cloudflare's message as the reason phrase, which JavaScript
sees as C{KV GET failed: 400 <message>}.
"""

import json
import math
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from funcplane import errors, kv

HEADER = b"x-fp-namespace"
METADATA = b"CF-KV-Metadata"
BULK_KEYS = 100
BULK_TYPES = ("text", "json")
MIN_CACHE_TTL = 30
REASON_BYTES = 512

_STATUS = (
    (errors.KeyTooLong, 414),
    (errors.ValueTooLarge, 413),
    (errors.InvalidRequest, 400),
    (errors.NoSuchNamespace, 404),
    (errors.NoSuchKey, 404),
)


class Refused(Exception):
    """
    A request answered with C{status} and C{message} (the reason phrase).
    """

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def check_cache_ttl(given):
    """
    Refuse a C{cache_ttl} below Cloudflare's 30 seconds (it is otherwise unused: every read
    is a round trip to the store).
    """
    if given is None:
        return
    try:
        ttl = float(given)
    except (TypeError, ValueError):
        ttl = math.nan
    if math.isnan(ttl) or ttl < MIN_CACHE_TTL:
        raise errors.InvalidRequest(f"Invalid cache_ttl of {given}. Cache TTL must be at least {MIN_CACHE_TTL}.")


def decode_key(raw_path):
    """
    The key of a request path (C{/<key>}, bytes), percent-decoded as UTF-8; C{+} stays.
    """
    try:
        return unquote_to_bytes(raw_path[1:]).decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidRequest("Could not URL-decode key name")


def _arg(request, name):
    values = request.args.get(name)
    return values[0].decode("utf-8", "replace") if values else None


def _metadata_json(text):
    return None if text is None else json.loads(text)


class BoundedRequest(Request):
    """
    A request whose body is kept only up to one value's limit, and after that counted:
    a larger put is refused without keeping it.
    """

    max_body = kv.VALUE_BYTES + 64 * 1024

    def gotLength(self, length):
        self.body_bytes = 0
        super().gotLength(length if length is not None and length <= self.max_body else None)

    def handleContentChunk(self, data):
        self.body_bytes += len(data)
        if self.body_bytes <= self.max_body:
            super().handleContentChunk(data)


class KVProtocol(Resource):
    """
    One version's KV namespaces, as workerd's binding asks for them.

    @param kv: the L{funcplane.kv.KV} use cases.
    @param namespace_ids: the ids the version binds; any other is refused (403).
    """

    isLeaf = True
    log = Logger()

    def __init__(self, kv_, namespace_ids):
        super().__init__()
        self._kv = kv_
        self._bound = frozenset(namespace_ids)

    def render(self, request):
        done = Deferred.fromCoroutine(self._answer(request))
        done.addErrback(lambda f: self.log.failure("a KV binding request failed", f))
        return NOT_DONE_YET

    async def _answer(self, request):
        finished = []
        request.notifyFinish().addBoth(finished.append)
        try:
            status, headers, body = await self._route(request)
        except Refused as refused:
            status, headers, body = refused.status, {}, b""
            reason = str(refused)
        except Exception as e:
            for kind, code in _STATUS:
                if isinstance(e, kind):
                    status, reason = code, str(e)
                    break
            else:
                self.log.failure("a KV binding request failed")
                status, reason = 500, "Internal Error"
            headers, body = {}, b""
        else:
            reason = None
        if finished:
            return
        if reason is None:
            request.setResponseCode(status)
        else:
            phrase = reason.replace("\r", " ").replace("\n", " ").encode("utf-8")[:REASON_BYTES]
            request.setResponseCode(status, phrase)
        for name, value in headers.items():
            request.responseHeaders.setRawHeaders(name, [value])
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()

    async def _route(self, request):
        namespace = (request.requestHeaders.getRawHeaders(HEADER) or [b""])[0].decode("latin-1")
        if namespace not in self._bound:
            raise Refused(403, "namespace not bound")
        method, path = request.method, request.path
        if path == b"/" and method == b"GET":
            return await self._list(request, namespace)
        if path == b"/bulk/get" and method == b"POST":
            return await self._bulk_get(request, namespace)
        if path == b"/" or not path.startswith(b"/"):
            raise Refused(404, "Not Found")
        key = decode_key(path)
        if method == b"GET":
            check_cache_ttl(_arg(request, b"cache_ttl"))
            try:
                found = await self._kv.get(namespace, key)
            except errors.NoSuchKey:
                raise Refused(404, "Not Found")
            headers = {b"CF-Cache-Status": b"MISS"}
            if found.metadata is not None:
                headers[METADATA] = found.metadata.encode("utf-8")
            return 200, headers, found.value
        if method == b"PUT":
            if getattr(request, "body_bytes", 0) > getattr(request, "max_body", math.inf):
                # Not kept (BoundedRequest): over the limit, which says so.
                kv.check_value(_Sized(request.body_bytes))
            raw = request.requestHeaders.getRawHeaders(b"cf-kv-metadata")
            metadata = raw[0].decode("utf-8", "replace") if raw else None
            value = request.content.read()
            await self._kv.put(
                namespace,
                kv.check_key(key),
                value,
                metadata,
                _arg(request, b"expiration"),
                _arg(request, b"expiration_ttl"),
            )
            return 200, {}, b""
        if method == b"DELETE":
            await self._kv.delete(namespace, key)
            return 200, {}, b""
        raise Refused(405, "Method Not Allowed")

    async def _list(self, request, namespace):
        found, cursor = await self._kv.keys(
            namespace,
            _arg(request, b"prefix") or "",
            _arg(request, b"cursor"),
            _arg(request, b"key_count_limit"),
        )
        keys = []
        for entry in found:
            shown = {"name": entry.name}
            if entry.expiration is not None:
                shown["expiration"] = entry.expiration
            if entry.metadata is not None:
                shown["metadata"] = json.loads(entry.metadata)
            keys.append(shown)
        answer = {"keys": keys, "list_complete": cursor is None}
        if cursor is not None:
            answer["cursor"] = cursor
        return 200, {b"Content-Type": b"application/json"}, json.dumps(answer).encode("utf-8")

    async def _bulk_get(self, request, namespace):
        try:
            asked = json.loads(request.content.read())
        except ValueError:
            raise errors.InvalidRequest("the body must be JSON")
        if not isinstance(asked, dict) or not isinstance(asked.get("keys"), list):
            raise errors.InvalidRequest("the body must be a JSON object with 'keys'")
        names = asked["keys"]
        if not all(isinstance(name, str) for name in names):
            raise errors.InvalidRequest("the keys must be strings")
        if len(names) > BULK_KEYS:
            raise errors.InvalidRequest(f"You can request a maximum of {BULK_KEYS} keys")
        if not names:
            raise errors.InvalidRequest("You must request a minimum of 1 key")
        kind = asked.get("type", "text")
        if kind not in BULK_TYPES:
            raise errors.InvalidRequest(f'"{kind}" is not a valid type. Use "json" or "text"')
        check_cache_ttl(asked.get("cacheTtl"))
        found = await self._kv.get_many(namespace, names)
        if sum(len(e.value) for e in found.values() if e is not None) > kv.VALUE_BYTES:
            raise errors.ValueTooLarge("Total size of request exceeds the limit of 25MB")
        values = {}
        for name in names:
            entry = found[name]
            if entry is None:
                values[name] = None
                continue
            value = entry.value.decode("utf-8", "replace")
            if kind == "json":
                try:
                    value = json.loads(value)
                except ValueError:
                    raise errors.InvalidRequest(
                        "At least one of the requested keys corresponds to a non-json value"
                    )
            if asked.get("withMetadata"):
                value = {"value": value, "metadata": _metadata_json(entry.metadata)}
            values[name] = value
        return 200, {b"Content-Type": b"application/json"}, json.dumps(values).encode("utf-8")


class _Sized:
    """
    Something of a length, for L{kv.check_value}'s message about a body not kept.
    """

    def __init__(self, size):
        self._size = size

    def __len__(self):
        return self._size


class KVSite(Site):
    """
    The Site one version's channel serves: its L{KVProtocol}, bodies bounded, no access log.
    """

    noisy = False
    requestFactory = BoundedRequest

    def log(self, request):
        pass

    def startFactory(self):
        # No access log, so no timer keeping its date.
        pass

    def stopFactory(self):
        pass


def kv_site(kv_, reactor):
    """
    C{site(namespace_ids)}: the Site of a version binding those namespaces (what
    L{funcplane.runtime.storage.StorageChannel} is given).
    """
    return lambda namespace_ids: KVSite(KVProtocol(kv_, namespace_ids), reactor=reactor)
