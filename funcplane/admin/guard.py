"""
What the admin Site decides about a request once its headers are in, before any byte of
its body is read: whether it may be read at all.

- A function host on a connection that was handed to the admin API: 421 (reconnect).
- C{GET /health} and a tail's WebSocket (C{GET /client/v4/tails/ID}, whose id is its
  credential) need no token.
- Every other request needs the admin token.  A client address that failed too often
  (L{funcplane.admin.throttle.FailureThrottle}) is refused with 429 and C{Retry-After}
  before its token is compared; a request without the right token is refused with 401 in
  the error shape of the API its path names, the failure counted and logged (address and
  path, never the token).

Without this, an anonymous client could make funcplane spool bodies of up to the admin
limit (about 20 MiB) to temporary files, as many as it liked, before the route said 401.
"""

import ipaddress
import json
import re

from twisted.logger import Logger

from funcplane.admin.errors import api_error, site_error
from funcplane.errors import Unauthorized

_PUBLIC = re.compile(rb"(?:/health|/client/v4/tails/[0-9a-f]{32})\Z")
# Asset bucket uploads carry an upload session's token, not the admin token.
_ASSET_UPLOAD = re.compile(rb"/client/v4/accounts/[A-Za-z0-9-]{1,64}/workers/assets/upload\Z")
# A Workers KV value (25 MiB, with its metadata) or bulk write: bigger than a script.
_KV_WRITE = re.compile(
    rb"/client/v4/accounts/[A-Za-z0-9-]{1,64}/storage/kv/namespaces/[^/]+/(values/.+|bulk)\Z"
)
KV_WRITE_BYTES = 100 * 1024 * 1024
# A D1 import's upload carries the token of its URL (L{funcplane.d1.imports}), checked by
# its route, not the admin token: wrangler PUTs to the URL as it was given.
_D1_UPLOAD = re.compile(rb"/client/v4/d1/imports/[0-9a-f]{32}\Z")
MISDIRECTED = b"function hosts are served on connections of their own; reconnect\n"


class AdminGuard:
    """
    Decides, from a request's line and headers, whether the admin Site reads it.

    @param routes: provides C{is_function_host(host)}.
    @param checker: has C{check(request)}, which raises L{Unauthorized} without the admin
        token (the service's C{admin-token} part).
    @param throttle: a L{funcplane.admin.throttle.FailureThrottle}.
    @param trusted_proxies: networks (CIDR text) of load balancers whose
        C{X-Forwarded-For} names the client.
    @param uploads: has C{check(request)}, which raises L{Unauthorized} without an asset
        upload session's token, and C{limits.upload_body_bytes}, the largest body of such
        an upload (L{funcplane.assets.sessions.UploadSessions}); or L{None}.
    """

    log = Logger()

    def __init__(self, routes, checker, throttle, trusted_proxies=(), uploads=None):
        self._routes = routes
        self._checker = checker
        self._uploads = uploads
        self._throttle = throttle
        self._trusted = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_proxies)

    def refusal(self, request, method, target):
        """
        L{None} if C{request} (its headers read, its body not) may be read and served;
        else C{(status, headers, body)} to answer it with.

        @param method: the request's method (bytes).
        @param target: its request target (bytes).
        """
        hosts = request.requestHeaders.getRawHeaders(b"host", [])
        if any(self._routes.is_function_host(host) for host in hosts):
            return 421, [(b"Content-Type", b"text/plain; charset=utf-8")], MISDIRECTED
        path = target.split(b"?", 1)[0]
        if method in (b"GET", b"HEAD") and _PUBLIC.match(path):
            return None
        if method == b"PUT" and _D1_UPLOAD.match(path):
            return None
        client = self.client_address(request)
        wait = self._throttle.retry_after(client)
        if wait is not None:
            status, document = site_error(
                path,
                429,
                f"too many failed authentications from your address; try again in {wait} s",
            )
            return _json(status, document, [(b"Retry-After", b"%d" % wait)])
        checker = self._checker
        if self._uploads is not None and method == b"POST" and _ASSET_UPLOAD.match(path):
            checker = self._uploads
        try:
            checker.check(request)
        except Unauthorized as e:
            return self._failed(client, path, e)
        return None

    def body_limit(self, method, target, default):
        """
        The largest body the request C{method} C{target} may have: C{default}, an asset
        upload's (one bucket of files, base64-encoded), or a KV value's or bulk write's
        (Cloudflare takes 100 MB in one bulk write).
        """
        path = target.split(b"?", 1)[0]
        if self._uploads is not None and method == b"POST" and _ASSET_UPLOAD.match(path):
            return max(default, self._uploads.limits.upload_body_bytes)
        if method == b"PUT" and _KV_WRITE.match(path):
            return max(default, KV_WRITE_BYTES)
        return default

    def _failed(self, client, path, error):
        shown = path.decode("ascii", "backslashreplace")[:200]
        self.log.warn(
            "admin authentication failed for {client} on {path}: {reason}",
            client=client,
            path=shown,
            reason=str(error),
        )
        if self._throttle.failed(client):
            self.log.warn(
                "too many failed admin authentications from {client}: its admin requests are"
                " refused (429) for {seconds} s",
                client=client,
                seconds=self._throttle.retry_after(client),
            )
        status, document = api_error(path, error)
        headers = [(b"WWW-Authenticate", b'Bearer realm="funcplane"')]
        return _json(status, document, headers)

    def client_address(self, request):
        """
        The client's address: the peer's, or, when the peer is a trusted proxy, the last
        address in C{X-Forwarded-For} that is not one of the trusted proxies'.
        """
        peer = getattr(request.channel.transport.getPeer(), "host", "unix")
        if not self._trusts(peer):
            return peer
        claimed = [
            value.strip().decode("ascii", "replace")
            for header in request.requestHeaders.getRawHeaders(b"x-forwarded-for", [])
            for value in header.split(b",")
        ]
        for address in reversed(claimed):
            if not self._trusts(address):
                return address if _is_address(address) else peer
        return peer

    def _trusts(self, address):
        if not self._trusted:
            return False
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._trusted)


def _is_address(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _json(status, document, headers):
    body = json.dumps(document).encode("utf-8")
    return status, [(b"Content-Type", b"application/json")] + headers, body
