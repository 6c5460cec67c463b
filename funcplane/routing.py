"""
From a request's Host to the version that serves it.

Under the functions' domain (C{func.local} by default) a host names a function and
optionally one of its versions or aliases:

    hello.func.local        the latest version of hello, or a share of its versions
    v1.hello.func.local     version v1
    test.hello.func.local   the version alias test points to
    3f2a9c1b.hello.func.local   the version whose id starts with 3f2a9c1b (8 or more hex
                            digits; a version or alias name of that form wins)

When a function's own host is split over several versions, each request goes to one of
them in proportion to its share.  A request with a C{Cloudflare-Workers-Version-Key}
header always goes to the same version for the same key; a
C{Cloudflare-Workers-Version-Overrides} header (C{NAME="VERSION-ID"}) picks one of the
deployment's versions outright.

Hosts are compared case-insensitively, with the port and one trailing dot stripped.
"""

import hashlib
import random
import re

from zope.interface import implementer

from funcplane.ids import plain_id
from funcplane.interfaces import IRouteTable


class NotRouted(Exception):
    """
    No version serves the host; the message names what was not found.
    """


class NotAFunctionHost(NotRouted):
    """
    The host is not under the functions' domain at all.
    """


def canonical_host(host):
    """
    C{host} (bytes or str) lower-cased, without its port and one trailing dot.
    """
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        host = host[: end + 1] if end != -1 else host
    elif ":" in host:
        host = host.rpartition(":")[0]
    return host[:-1] if host.endswith(".") else host


def split_host(host, domain):
    """
    C{(function, selector)} for a canonical C{host} under C{domain}, where C{selector} is a
    version or alias name or L{None} for the latest; L{None} when the host is not a function
    host at all.
    """
    suffix = "." + domain
    if not host.endswith(suffix):
        return None
    labels = host[: -len(suffix)].split(".")
    if len(labels) == 1 and labels[0]:
        return labels[0], None
    if len(labels) == 2 and all(labels):
        return labels[1], labels[0]
    return None


VERSION_KEY = b"cloudflare-workers-version-key"
VERSION_OVERRIDES = b"cloudflare-workers-version-overrides"
MIN_ID_PREFIX = 8
_HEX = re.compile(r"[0-9a-f]+\Z")
_OVERRIDE = re.compile(r'\s*([a-z0-9-]+)\s*=\s*"([0-9a-fA-F-]+)"\s*\Z')


def _overridden(function, value):
    """
    The version id C{value} (a C{Cloudflare-Workers-Version-Overrides} header) names for
    C{function}, or L{None}.
    """
    for member in value.decode("ascii", "replace").split(","):
        match = _OVERRIDE.match(member.lower())
        if match and match.group(1) == function:
            return plain_id(match.group(2))
    return None


def _under(host, domain):
    return host == domain or host.endswith("." + domain)


def _by_prefix(routes, selector):
    """
    The one version whose id starts with C{selector}, if it is long enough and hex.
    """
    if len(selector) < MIN_ID_PREFIX or not _HEX.match(selector):
        return None
    found = [version_id for version_id in routes.versions.values() if version_id.startswith(selector)]
    return found[0] if len(found) == 1 else None


@implementer(IRouteTable)
class RouteTable:
    """
    The in-memory route table.  See L{IRouteTable}.

    @param domain: the functions' domain, for example C{func.local}.
    @param random: returns a float in [0, 1), for picking a version of a split.
    """

    def __init__(self, domain, random=random.random):
        self.domain = domain.lower().rstrip(".")
        self._functions = {}
        self._latest = set()
        self._random = random

    def is_function_host(self, host):
        """
        Whether C{host} (raw) is under the functions' domain: such requests go to functions,
        every other one to the admin API.
        """
        return _under(canonical_host(host), self.domain)

    def resolve(self, host, header=None):
        canonical = canonical_host(host)
        if not _under(canonical, self.domain):
            raise NotAFunctionHost(f"{canonical} is not under {self.domain}")
        parts = split_host(canonical, self.domain)
        if parts is None:
            raise NotRouted(f"no function answers at {canonical}")
        function, selector = parts
        routes = self._functions.get(function)
        if routes is None:
            raise NotRouted(f"function {function} not found")
        if selector is None:
            if routes.split:
                return self._pick(routes, header)
            if routes.latest is None and routes.versions:
                # Only uploaded (wrangler versions upload on a new worker): no deployment.
                raise NotRouted(
                    f"function {function} is not deployed: its versions answer at their own"
                    f" hosts (VERSION.{function}.{self.domain}); deploy one with wrangler"
                    f" versions deploy, or POST /api/rollback/{function}"
                )
            if routes.latest is None:
                raise NotRouted(f"function {function} has no versions")
            return routes.latest
        found = (
            routes.versions.get(selector)
            or routes.aliases.get(selector)
            or _by_prefix(routes, selector)
        )
        if found is None:
            raise NotRouted(f"function {function} has no version or alias {selector}")
        return found

    def _pick(self, routes, header):
        """
        One version of the split: the one an override names, the one a version key hashes
        to, or one at random, each in proportion to its share.
        """
        split = routes.split
        if header is not None:
            overrides = header(VERSION_OVERRIDES)
            if overrides is not None:
                wanted = _overridden(routes.function, overrides)
                if any(version_id == wanted for version_id, _ in split):
                    return wanted
            key = header(VERSION_KEY)
        else:
            key = None
        total = sum(share for _, share in split)
        if key is not None:
            digest = hashlib.sha256(routes.function.encode() + b"\0" + key).digest()
            point = int.from_bytes(digest[:8], "big") / 2**64 * total
        else:
            point = self._random() * total
        for version_id, share in split:
            point -= share
            if point < 0:
                return version_id
        return split[-1][0]

    def replace(self, routes):
        self._functions[routes.function] = routes
        self._latest = {r.latest for r in self._functions.values()}

    def is_latest(self, version_id):
        """
        Whether C{version_id} is some function's latest version.
        """
        return version_id in self._latest

    def remove(self, function):
        self._functions.pop(function.lower(), None)
        self._latest = {r.latest for r in self._functions.values()}
