"""
From a request's Host to the version that serves it.

Under the functions' domain (C{func.local} by default) a host names a function and
optionally one of its versions or aliases:

    hello.func.local        the latest version of hello
    v1.hello.func.local     version v1
    test.hello.func.local   the version alias test points to

Hosts are compared case-insensitively, with the port and one trailing dot stripped.
"""

from zope.interface import implementer

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


def _under(host, domain):
    return host == domain or host.endswith("." + domain)


@implementer(IRouteTable)
class RouteTable:
    """
    The in-memory route table.  See L{IRouteTable}.

    @param domain: the functions' domain, for example C{func.local}.
    """

    def __init__(self, domain):
        self.domain = domain.lower().rstrip(".")
        self._functions = {}
        self._latest = set()

    def is_function_host(self, host):
        """
        Whether C{host} (raw) is under the functions' domain: such requests go to functions,
        every other one to the admin API.
        """
        return _under(canonical_host(host), self.domain)

    def resolve(self, host):
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
            if routes.latest is None:
                raise NotRouted(f"function {function} has no versions")
            return routes.latest
        found = routes.versions.get(selector) or routes.aliases.get(selector)
        if found is None:
            raise NotRouted(f"function {function} has no version or alias {selector}")
        return found

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
