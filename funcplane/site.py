"""
The admin API's twisted.web C{Site}, which L{funcplane.proxy.ProxyChannel} hands the
connections to that are not for function hosts.
"""

from twisted.web.resource import Resource
from twisted.web.server import Site

# An admin connection that sends nothing for this long is closed.
ADMIN_IDLE_SECONDS = 60


class AdminRoot(Resource):
    """
    Serves the admin API, and refuses a request naming a function host: the connection
    it came on was handed to the admin API by its first request.

    @param routes: provides C{is_function_host(host)}.
    """

    isLeaf = True

    def __init__(self, routes, admin):
        super().__init__()
        self._routes = routes
        self._admin = admin

    def render(self, request):
        hosts = request.requestHeaders.getRawHeaders(b"host", [])
        if any(self._routes.is_function_host(host) for host in hosts):
            request.setResponseCode(421)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"connection", b"close")
            request.channel.persistent = False
            return b"function hosts are served on connections of their own; reconnect\n"
        return self._admin.render(request)


def admin_site(routes, admin):
    """
    The Site serving C{admin} (a resource) for every host but the functions'.
    """
    site = Site(AdminRoot(routes, admin), timeout=ADMIN_IDLE_SECONDS)
    site.displayTracebacks = False
    return site
