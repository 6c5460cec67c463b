"""
The reverse proxy for function hosts: resolve the Host to a version, make sure its child
runs, and relay the request to it over a pooled HTTP/1.1 connection on its unix socket.
Response bodies stream back with backpressure; hop-by-hop headers are dropped both ways and
the response gains no header the function did not send.
"""

from twisted.internet import task
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http import NO_BODY_CODES, PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgentEndpointFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from funcplane.errors import NoSuchVersion, StartFailed
from funcplane.routing import NotRouted

HOP_BY_HOP = frozenset(
    [
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ]
)
SET_BY_PROXY = frozenset([b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"])
# Each hop frames the body itself: the agent upstream, Twisted's server towards the client.
FRAMING = frozenset([b"content-length", b"transfer-encoding"])

# workerd closes idle keep-alive connections after 15 s; give ours up before that.
POOL_IDLE_SECONDS = 10
POOL_CONNECTIONS_PER_VERSION = 64


def forwardable(headers, also_drop=frozenset()):
    """
    C{(name, values)} of C{headers} (a L{twisted.web.http_headers.Headers}) without the
    hop-by-hop ones, those its C{Connection} header names, and C{also_drop}.
    """
    drop = set(HOP_BY_HOP) | also_drop
    for value in headers.getRawHeaders(b"connection", []):
        drop.update(token.strip().lower() for token in value.split(b","))
    for name, values in headers.getAllRawHeaders():
        if name.lower() not in drop:
            yield name, values


@implementer(IAgentEndpointFactory)
class VersionEndpoints:
    """
    Connects to the child whose version id is the request URI's host.

    @param socket_path: maps a version id (str) to its socket path.
    """

    def __init__(self, reactor, socket_path):
        self._reactor = reactor
        self._socket_path = socket_path

    def endpointForURI(self, uri):
        return UNIXClientEndpoint(self._reactor, self._socket_path(uri.host.decode("ascii")))


def version_pool(reactor):
    """
    The keep-alive connection pool to the children.
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = POOL_CONNECTIONS_PER_VERSION
    pool.cachedConnectionTimeout = POOL_IDLE_SECONDS
    return pool


def version_agent(reactor, socket_path, pool):
    """
    An Agent that reaches versions by id over C{pool}'s keep-alive connections.
    """
    return Agent.usingEndpointFactory(reactor, VersionEndpoints(reactor, socket_path), pool)


class _BodyRelay(Protocol):
    """
    Writes a function's response body to the client as it arrives, pausing the function's
    connection while the client cannot keep up.
    """

    def __init__(self, request, exchange):
        self._request = request
        self._exchange = exchange

    def connectionMade(self):
        self._exchange.upstream = self.transport
        self._request.registerProducer(self.transport, True)

    def dataReceived(self, data):
        if not self._exchange.client_gone:
            self._request.write(data)

    def connectionLost(self, reason):
        self._exchange.upstream = None
        if self._exchange.client_gone:
            return
        self._request.unregisterProducer()
        if reason.check(ResponseDone, PotentialDataLoss):
            self._request.finish()
        else:
            # The body broke off: close the client's connection so it cannot take a
            # truncated body for a whole one.
            self._request.channel.loseConnection()


class _Exchange:
    """
    The state of one proxied request.
    """

    def __init__(self):
        self.client_gone = False
        self.upstream = None
        self.pending = None

    def client_disconnected(self, _):
        self.client_gone = True
        if self.pending is not None:
            self.pending.cancel()
        if self.upstream is not None:
            self.upstream.stopProducing()


class FunctionProxy(Resource):
    """
    The resource every function host is served by.

    @param routes: an L{funcplane.interfaces.IRouteTable}.
    @param supervisor: provides C{socket_for(version_id)}.
    @param agent: an C{IAgent} whose URI host is a version id (see L{version_agent}).
    @param cooperator: schedules the writing of request bodies upstream.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, routes, supervisor, agent, cooperator=task):
        super().__init__()
        self._routes = routes
        self._supervisor = supervisor
        self._agent = agent
        self._cooperator = cooperator

    def render(self, request):
        request.defaultContentType = None
        request.responseHeaders.removeHeader(b"server")
        request.responseHeaders.removeHeader(b"date")
        hosts = request.requestHeaders.getRawHeaders(b"host", [])
        if len(hosts) != 1:
            return _plain(request, 400, "a request needs exactly one Host header")
        try:
            version_id = self._routes.resolve(hosts[0])
        except NotRouted as e:
            return _plain(request, 404, str(e))

        exchange = _Exchange()
        request.notifyFinish().addErrback(exchange.client_disconnected)
        d = self._supervisor.socket_for(version_id)
        d.addCallback(lambda _: self._forward(request, version_id, hosts[0]))
        d.addCallback(self._respond, request, exchange)
        d.addErrback(self._failed, request, exchange)
        exchange.pending = d
        return NOT_DONE_YET

    def _forward(self, request, version_id, host):
        upstream = Headers(dict(forwardable(request.requestHeaders, SET_BY_PROXY | FRAMING)))
        upstream.setRawHeaders(b"x-forwarded-for", [_client_ip(request)])
        upstream.setRawHeaders(b"x-forwarded-proto", [b"https" if request.isSecure() else b"http"])
        upstream.setRawHeaders(b"x-forwarded-host", [host])
        body = None
        if request.requestHeaders.hasHeader(b"content-length") or request.requestHeaders.hasHeader(
            b"transfer-encoding"
        ):
            body = FileBodyProducer(request.content, cooperator=self._cooperator)
        return self._agent.request(
            request.method, b"http://" + version_id.encode("ascii") + request.uri, upstream, body
        )

    def _respond(self, response, request, exchange):
        exchange.pending = None
        if exchange.client_gone:
            response.deliverBody(Protocol())
            return
        request.setResponseCode(response.code, response.phrase)
        body_follows = request.method != b"HEAD" and response.code not in NO_BODY_CODES
        if body_follows:
            # The agent keeps Content-Length out of response.headers and reports it as
            # response.length; Twisted's server re-frames what it does not know.
            for name, values in forwardable(response.headers, FRAMING):
                request.responseHeaders.setRawHeaders(name, values)
            if response.length is not UNKNOWN_LENGTH:
                request.responseHeaders.setRawHeaders(b"content-length", [b"%d" % response.length])
        else:
            # No body: a HEAD's Content-Length describes the GET's body and passes as the
            # function sent it; a 204 or 304 gains none.
            for name, values in forwardable(response.headers):
                request.responseHeaders.setRawHeaders(name, values)
        response.deliverBody(_BodyRelay(request, exchange))

    def _failed(self, failure, request, exchange):
        exchange.pending = None
        if exchange.client_gone:
            return
        if failure.check(NoSuchVersion):
            status, message = 404, str(failure.value)
        elif failure.check(StartFailed):
            status, message = 503, f"the function could not start: {failure.value}"
        else:
            self.log.failure("proxying to a function failed", failure)
            status, message = 502, "the function did not answer"
        request.write(_plain(request, status, message))
        request.finish()


def _client_ip(request):
    address = request.getClientAddress()
    return getattr(address, "host", "unix").encode("ascii")


def _plain(request, status, message):
    """
    Set C{status} and return C{message} as a plain-text body.
    """
    request.setResponseCode(status)
    request.responseHeaders.setRawHeaders(b"content-type", [b"text/plain; charset=utf-8"])
    return (message + "\n").encode("utf-8")
