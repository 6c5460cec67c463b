"""
The admin API's twisted.web C{Site}, which L{funcplane.edge.listener.ProxyChannel} hands the
connections to that are not for function hosts.
"""

import json

from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from funcplane.admin.errors import admin_error
from funcplane.errors import RequestTooLarge

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


class AdminRequest(Request):
    """
    A request to the admin API whose body may not exceed the site's C{max_body_bytes}:
    a larger one is refused as soon as that is known (from its Content-Length, or as a
    chunked body passes the limit), before it is read any further, with what the admin
    API answers for L{RequestTooLarge} (413), and the connection closes.  The routes
    rely on it: none of them sees a larger body.
    """

    _refused = False
    _received = 0

    def gotLength(self, length):
        limit = self.channel.site.max_body_bytes
        if length is not None and length > limit:
            self._refuse(limit)
        super().gotLength(0 if self._refused else length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        limit = self.channel.site.max_body_bytes
        if self._received > limit:
            self._refuse(limit)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(self, limit):
        self._refused = True
        status, document = admin_error(RequestTooLarge(f"request body is over {limit} bytes"))
        body = json.dumps(document).encode("utf-8")
        self.channel.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, RESPONSES[status], len(body), body)
        )
        self.channel.loseConnection()


class AdminChannel(HTTPChannel):
    """
    An admin connection, which a request may switch to another protocol (a WebSocket).
    After the switch every byte and the connection's end go to that protocol, still through
    this channel and the L{funcplane.edge.listener.ProxyChannel} beneath it, which keep their
    accounting (Twisted's own WebSocket resource does the same, with a private method).
    """

    _switched = None

    def switch_protocol(self, head, protocol):
        """
        Send C{head} (the C{101 Switching Protocols} response) and hand the connection to
        C{protocol}.  The request that asked stays unfinished: nothing more is read as HTTP.
        """
        self.setTimeout(None)
        self.transport.write(head)
        self._switched = protocol
        protocol.makeConnection(self.transport)

    def dataReceived(self, data):
        if self._switched is not None:
            self._switched.dataReceived(data)
        else:
            super().dataReceived(data)

    def connectionLost(self, reason):
        switched, self._switched = self._switched, None
        super().connectionLost(reason)
        if switched is not None:
            switched.connectionLost(reason)


class AdminSite(Site):
    """
    The admin API's Site: L{AdminChannel}s reading L{AdminRequest}s, idle connections closed
    after a minute.
    """

    requestFactory = AdminRequest
    protocol = AdminChannel

    def __init__(self, resource, max_body_bytes):
        super().__init__(resource, timeout=ADMIN_IDLE_SECONDS)
        self.max_body_bytes = max_body_bytes
        self.displayTracebacks = False


def admin_site(routes, admin, max_body_bytes):
    """
    The Site serving C{admin} (a resource) for every host but the functions'.
    """
    return AdminSite(AdminRoot(routes, admin), max_body_bytes)
