"""
Workers KV: the use cases on namespaces and keys (L{KV}), Cloudflare's limits with its
messages (miniflare's, word for word), and the part of the service that purges expired
keys (L{KVPurge}).  The Cloudflare API's routes (L{funcplane.admin.cloudflare.kv}) call
L{KV}; so does the binding inside workerd (L{funcplane.kv_binding}).

Time is the clock's: a key whose expiration is at or before C{clock.seconds()} is never
returned, and is deleted when read, listed, or purged.
"""

import base64
import binascii
import json
import math

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from funcplane import errors, ids
from funcplane.model import KV_NAMESPACE
from funcplane.store.kv import Entry

KEY_BYTES = 512
VALUE_BYTES = 25 * 1024 * 1024
METADATA_BYTES = 1024
MIN_TTL = 60
LIST_LIMIT = 1000
TITLE_CHARACTERS = 512
PURGE_SECONDS = 60.0


def check_key(name):
    """
    Refuse a key name Cloudflare refuses: empty, C{.} or C{..}, over 512 bytes.
    """
    if name == "":
        raise errors.InvalidRequest("Key names must not be empty")
    if name in (".", ".."):
        raise errors.InvalidRequest(f'Illegal key name "{name}". Please use a different name.')
    check_length(name)
    return name


def check_length(name):
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > KEY_BYTES:
        raise errors.KeyTooLong(f"UTF-8 encoded length of {size} exceeds key length limit of {KEY_BYTES}.")
    return name


def check_value(value):
    if len(value) > VALUE_BYTES:
        raise errors.ValueTooLarge(f"Value length of {len(value)} exceeds limit of {VALUE_BYTES}.")
    return value


def check_metadata(text):
    """
    C{text} (JSON, or L{None}) if it is JSON of at most 1,024 bytes.
    """
    if text is None:
        return None
    size = len(text.encode("utf-8"))
    if size > METADATA_BYTES:
        raise errors.ValueTooLarge(f"Metadata length of {size} exceeds limit of {METADATA_BYTES}.")
    try:
        json.loads(text)
    except ValueError:
        raise errors.InvalidRequest("metadata is not valid JSON")
    return text


def _number(given):
    try:
        number = float(given)
    except (TypeError, ValueError):
        return math.nan
    return number


def expiration(now, expiration=None, expiration_ttl=None):
    """
    The expiration (POSIX seconds) that C{expiration} or C{expiration_ttl} (as given: text
    or numbers; C{expiration_ttl} wins when both are) ask for at C{now}, or L{None}.
    """
    now = int(now)
    if expiration_ttl is not None:
        ttl = _number(expiration_ttl)
        if math.isnan(ttl) or ttl <= 0:
            raise errors.InvalidRequest(
                f"Invalid expiration_ttl of {expiration_ttl}. Please specify integer greater than 0."
            )
        if ttl < MIN_TTL:
            raise errors.InvalidRequest(
                f"Invalid expiration_ttl of {expiration_ttl}. Expiration TTL must be at least {MIN_TTL}."
            )
        return now + int(ttl)
    if expiration is None:
        return None
    at = _number(expiration)
    if math.isnan(at) or at <= now:
        raise errors.InvalidRequest(
            f"Invalid expiration of {expiration}. Please specify integer greater than the"
            " current number of seconds since the UNIX epoch."
        )
    if at < now + MIN_TTL:
        raise errors.InvalidRequest(
            f"Invalid expiration of {expiration}. Expiration times must be at least"
            f" {MIN_TTL} seconds in the future."
        )
    return int(at)


def list_limit(given):
    if given is None:
        return LIST_LIMIT
    limit = _number(given)
    if math.isnan(limit) or limit < 1:
        raise errors.InvalidRequest(
            f"Invalid key_count_limit of {given}. Please specify an integer greater than 0."
        )
    if limit > LIST_LIMIT:
        raise errors.InvalidRequest(
            f"Invalid key_count_limit of {given}. Please specify an integer less than {LIST_LIMIT}."
        )
    return int(limit)


def check_title(title):
    if not isinstance(title, str) or not title.strip():
        raise errors.InvalidRequest("the namespace's title must be a non-empty string")
    if len(title) > TITLE_CHARACTERS:
        raise errors.InvalidRequest(f"the namespace's title is over {TITLE_CHARACTERS} characters")
    return title


def cursor_of(name):
    """
    The opaque cursor of a list that stopped at key C{name}.
    """
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")


def after_cursor(cursor):
    """
    The key name a cursor from L{cursor_of} stopped at; L{None} for none (or empty).
    """
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise errors.InvalidRequest(f"Invalid cursor {cursor[:80]!r}")


def entry(now, name, value, metadata=None, expires=None, expires_ttl=None):
    """
    An L{Entry} to write, every limit checked.
    """
    check_key(name)
    check_value(value)
    return Entry(name, check_metadata(metadata), expiration(now, expires, expires_ttl), value)


class KV:
    """
    The KV use cases.  Each returns a Deferred (or is a coroutine) of the store's answer;
    input over a limit raises at once, before the store is asked.

    @param clock: an C{IReactorTime}; its C{seconds()} decide what has expired.
    @param store: a L{funcplane.store.kv.SQLiteKV}.
    @param new_id: makes a namespace's id (32 hex digits).
    @param bindings: C{bindings(namespace_id)} -> a Deferred of the
        C{"function:version BINDING"} descriptions of the deployed versions that bind it; a
        namespace with any is not deleted.  By default the store's C{bound_by}.
    """

    def __init__(self, clock, store, new_id=ids.new_id, bindings=None):
        self._clock = clock
        self._store = store
        self._new_id = new_id
        self._bindings = bindings if bindings is not None else store.bound_by

    def now(self):
        return self._clock.seconds()

    def create_namespace(self, title):
        return self._store.create_namespace(self._new_id(), check_title(title), self.now())

    def namespace(self, namespace_id):
        return self._store.namespace(namespace_id)

    def namespaces(self, offset, limit, order="id", descending=False):
        return self._store.namespaces(offset, limit, order, descending)

    def rename_namespace(self, namespace_id, title):
        return self._store.rename_namespace(namespace_id, check_title(title))

    async def delete_namespace(self, namespace_id):
        await self._store.namespace(namespace_id)
        bound = tuple(await self._bindings(namespace_id))
        if bound:
            raise errors.Conflict(
                f"namespace {namespace_id} is bound by {', '.join(bound)}: deploy those"
                " versions without the binding first"
            )
        await self._store.delete_namespace(namespace_id)

    async def check_bindings(self, bindings):
        """
        Refuse C{bindings} (L{funcplane.model.Binding}s) if one names a KV namespace that
        does not exist: every namespace id a version binds is then funcplane's own.
        """
        for binding in bindings:
            if binding.type != KV_NAMESPACE:
                continue
            try:
                await self._store.namespace(binding.value)
            except errors.NoSuchNamespace:
                raise errors.InvalidBinding(
                    f"KV namespace '{binding.value[:64]}' is not valid: binding {binding.name}"
                    " names no namespace of this account (wrangler kv namespace list shows them)"
                )

    def get(self, namespace_id, name):
        return self._store.get(namespace_id, check_length(name), self.now())

    def get_many(self, namespace_id, names):
        return self._store.get_many(namespace_id, [check_key(n) for n in names], self.now())

    async def keys(self, namespace_id, prefix="", cursor=None, limit=None):
        """
        C{(entries, cursor)}: a page of keys, and the cursor of the next (L{None}: the
        list is complete).
        """
        limit = list_limit(limit)
        check_length(prefix or "")
        found, more = await self._store.keys(namespace_id, prefix or "", after_cursor(cursor), limit, self.now())
        return found, (cursor_of(found[-1].name) if more else None)

    def put(self, namespace_id, name, value, metadata=None, expires=None, expires_ttl=None):
        written = entry(self.now(), name, value, metadata, expires, expires_ttl)
        return self._store.put(namespace_id, [written])

    def put_many(self, namespace_id, entries):
        return self._store.put(namespace_id, entries)

    def delete(self, namespace_id, name):
        return self._store.delete(namespace_id, [check_length(name)])

    def delete_many(self, namespace_id, names):
        return self._store.delete(namespace_id, [check_length(n) for n in names])

    def purge(self):
        return self._store.purge(self.now())


class KVPurge(Service):
    """
    Deletes the expired keys of every namespace every C{interval} seconds, so that keys
    nobody reads again do not stay on disk.  A failed purge is logged, and the next runs.
    """

    log = Logger()

    def __init__(self, clock, kv, interval=PURGE_SECONDS):
        self._kv = kv
        self._interval = interval
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock
        self._done = None

    def startService(self):
        super().startService()
        self._done = self._loop.start(self._interval, now=False)

    def stopService(self):
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        return self._done

    def _tick(self):
        d = self._kv.purge()
        d.addCallback(self._purged)
        d.addErrback(lambda f: self.log.failure("purging expired KV keys failed", f))
        return d

    def _purged(self, count):
        if count:
            self.log.info("purged {count} expired KV keys", count=count)
