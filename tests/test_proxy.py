import json

from treq.testing import RequestTraversalAgent, StubTreq
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Cooperator
from twisted.web.test.requesthelper import DummyRequest
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from funcplane.errors import StartFailed
from funcplane.model import FunctionRoutes
from funcplane.proxy import FunctionProxy, forwardable
from funcplane.routing import RouteTable
from twisted.web.http_headers import Headers


class Echo(Resource):
    """
    Stands in for a function: echoes what it received as JSON, and answers with the
    headers the test asks for.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.reply_headers = {}
        self.status = 200
        self.seen = []

    def render(self, request):
        request.defaultContentType = None
        request.responseHeaders.removeHeader(b"server")
        request.responseHeaders.removeHeader(b"date")
        body = request.content.read()
        seen = {
            "method": request.method.decode(),
            "uri": request.uri.decode(),
            "headers": {k.decode().lower(): [v.decode() for v in vs] for k, vs in request.requestHeaders.getAllRawHeaders()},
            "body": body.decode(),
        }
        self.seen.append(seen)
        request.setResponseCode(self.status)
        for name, values in self.reply_headers.items():
            request.responseHeaders.setRawHeaders(name, values)
        return json.dumps(seen).encode()


class _Done:
    def cancel(self):
        pass


def run_now(work):
    """
    A cooperator scheduler that runs work at once, so bodies are written synchronously.
    """
    work()
    return _Done()


class FakeSupervisor:
    def __init__(self):
        self.asked = []
        self.result = None

    def socket_for(self, version_id):
        self.asked.append(version_id)
        return self.result or succeed(f"/run/{version_id}.sock")


class ProxyTests(SynchronousTestCase):
    def setUp(self):
        self.function = Echo()
        self.routes = RouteTable("func.local")
        self.routes.replace(FunctionRoutes("hello", "id2", {"v1": "id1", "v2": "id2"}, {"test": "id1"}))
        self.supervisor = FakeSupervisor()
        self.proxy = FunctionProxy(self.routes, self.supervisor, RequestTraversalAgent(self.function),
                                   Cooperator(scheduler=run_now, started=True))
        self.client = StubTreq(self.proxy)

    def get(self, host, path="/", method="GET", headers=None, data=None):
        headers = dict(headers or {})
        if host is not None:
            headers[b"Host"] = [host]
        d = self.client.request(method, "http://proxy" + path, headers=headers, data=data, allow_redirects=False)
        self.client.flush()
        response = self.successResultOf(d)
        return response, self.successResultOf(self.client.content(response))

    def test_relays_request(self):
        """
        Method, path, query, headers and body reach the version the Host names.
        """
        response, body = self.get(b"V1.hello.func.local:8081", "/a/b?x=1&y=%20", "POST", {b"X-Custom": [b"1", b"2"]}, b"payload")
        seen = json.loads(body)
        self.assertEqual(self.supervisor.asked, ["id1"])
        self.assertEqual((seen["method"], seen["uri"], seen["body"]), ("POST", "/a/b?x=1&y=%20", "payload"))
        self.assertEqual(seen["headers"]["x-custom"], ["1", "2"])
        self.assertEqual(seen["headers"]["host"], ["V1.hello.func.local:8081"])
        self.assertEqual(seen["headers"]["content-length"], ["7"])
        self.assertEqual(response.code, 200)

    def test_routes_latest_and_alias(self):
        """
        The function host reaches latest, the alias host its version.
        """
        self.get(b"hello.func.local")
        self.get(b"test.hello.func.local")
        self.assertEqual(self.supervisor.asked, ["id2", "id1"])

    def test_hop_by_hop_dropped_and_forwarded_set(self):
        """
        Hop-by-hop headers and those Connection names are not forwarded; X-Forwarded-*
        are set by the proxy, not taken from the client.
        """
        _, body = self.get(b"hello.func.local", headers={
            b"Connection": [b"keep-alive, X-Secret"], b"X-Secret": [b"s"], b"Keep-Alive": [b"5"],
            b"TE": [b"trailers"], b"Upgrade": [b"h2c"], b"Proxy-Authorization": [b"Basic x"],
            b"X-Forwarded-For": [b"6.6.6.6"], b"X-Forwarded-Host": [b"evil"]})
        headers = json.loads(body)["headers"]
        for name in ["x-secret", "keep-alive", "te", "upgrade", "proxy-authorization"]:
            self.assertNotIn(name, headers)
        self.assertNotIn("6.6.6.6", headers["x-forwarded-for"][0])
        self.assertEqual(headers["x-forwarded-host"], ["hello.func.local"])
        self.assertEqual(headers["x-forwarded-proto"], ["http"])

    def test_response_relayed_without_additions(self):
        """
        The function's status and headers come back; hop-by-hop ones do not; no
        Content-Type, Server or Date is added.
        """
        self.function.status = 302
        self.function.reply_headers = {b"Location": [b"/elsewhere"], b"X-Fn": [b"a"], b"Trailer": [b"X-T"],
                                       b"Proxy-Authenticate": [b"Basic"]}
        response, body = self.get(b"hello.func.local")
        self.assertEqual(response.code, 302)
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/elsewhere"])
        self.assertEqual(response.headers.getRawHeaders(b"x-fn"), [b"a"])
        self.assertEqual(response.length, len(body))
        for name in [b"trailer", b"proxy-authenticate", b"content-type", b"server", b"date"]:
            self.assertFalse(response.headers.hasHeader(name), name)

    def test_not_found(self):
        """
        Unknown functions and versions get 404 naming what is missing, and nothing starts.
        """
        response, body = self.get(b"v9.hello.func.local")
        self.assertEqual((response.code, body), (404, b"function hello has no version or alias v9\n"))
        response, body = self.get(b"nope.func.local")
        self.assertEqual((response.code, body), (404, b"function nope not found\n"))
        self.assertEqual(self.supervisor.asked, [])

    def test_host_count(self):
        """
        A request with two Host headers is refused.
        """
        request = DummyRequest([b""])
        request.requestHeaders.setRawHeaders(b"host", [b"hello.func.local", b"v1.hello.func.local"])
        body = self.proxy.render(request)
        self.assertEqual((request.responseCode, body), (400, b"a request needs exactly one Host header\n"))
        self.assertEqual(self.supervisor.asked, [])

    def test_start_failure(self):
        """
        A version that cannot start answers 503 with the reason.
        """
        self.supervisor.result = fail(StartFailed("Uncaught Error: boom"))
        response, body = self.get(b"hello.func.local")
        self.assertEqual((response.code, body), (503, b"the function could not start: Uncaught Error: boom\n"))
        self.assertEqual(self.function.seen, [])


class FixedResponse:
    """
    A response as the agent hands it over, with the length it reports.
    """

    phrase = b"Reason"

    def __init__(self, code, headers, length):
        self.code, self.headers, self.length = code, Headers(headers), length

    def deliverBody(self, protocol):
        self.protocol = protocol


class FixedAgent:
    def __init__(self, response):
        self.response = response

    def request(self, method, uri, headers=None, bodyProducer=None):
        return succeed(self.response)


class PlainRequest(DummyRequest):
    def isSecure(self):
        return False


class ResponseLengthTests(SynchronousTestCase):
    """
    Content-Length towards the client follows whether a body follows.
    """

    def respond(self, response, method=b"GET"):
        routes = RouteTable("func.local")
        routes.replace(FunctionRoutes("hello", "id1", {"v1": "id1"}, {}))
        request = PlainRequest([b""])
        request.method = method
        request.requestHeaders.setRawHeaders(b"host", [b"hello.func.local"])
        FunctionProxy(routes, FakeSupervisor(), FixedAgent(response)).render(request)
        return request

    def test_body_length(self):
        """
        A response with a body of known length carries that length.
        """
        request = self.respond(FixedResponse(200, {}, 42))
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-length"), [b"42"])

    def test_head(self):
        """
        A HEAD response keeps the Content-Length the function sent, although no body
        follows.
        """
        request = self.respond(FixedResponse(200, {b"Content-Length": [b"1234"]}, 0), b"HEAD")
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-length"), [b"1234"])

    def test_no_body_codes(self):
        """
        A 204 or a 304 gains no Content-Length.
        """
        for code in (204, 304):
            request = self.respond(FixedResponse(code, {b"ETag": [b'"x"']}, 0))
            self.assertEqual(request.responseCode, code)
            self.assertFalse(request.responseHeaders.hasHeader(b"content-length"), code)
            self.assertEqual(request.responseHeaders.getRawHeaders(b"etag"), [b'"x"'])


class ForwardableTests(SynchronousTestCase):
    def test_connection_tokens(self):
        """
        Headers named by Connection, in any case and spacing, are dropped with the standard
        hop-by-hop set.
        """
        headers = Headers({b"Connection": [b"close,  X-A"], b"x-a": [b"1"], b"X-B": [b"2"], b"Transfer-Encoding": [b"chunked"]})
        self.assertEqual([name.lower() for name, _ in forwardable(headers)], [b"x-b"])
