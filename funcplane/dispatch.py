"""
The site's root: requests for a host under the functions' domain go to the proxy, every
other request to the admin API.
"""

from twisted.web.resource import Resource


class HostDispatch(Resource):
    """
    Chooses the function proxy or the admin API by the request's Host.

    @param routes: provides C{is_function_host(host)}.
    """

    isLeaf = True

    def __init__(self, routes, functions, admin):
        super().__init__()
        self._routes = routes
        self._functions = functions
        self._admin = admin

    def render(self, request):
        hosts = request.requestHeaders.getRawHeaders(b"host", [])
        if any(self._routes.is_function_host(host) for host in hosts):
            return self._functions.render(request)
        return self._admin.render(request)
