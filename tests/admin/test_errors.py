"""
Tests for L{funcplane.admin.errors}: every domain error has a row in each API's table,
and the tables are what the APIs' handlers, and the admin Site's 413, answer with.
"""

import json

from treq.testing import StubTreq
from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from funcplane import errors
from funcplane.admin import errors as tables
from funcplane.admin.api import AdminAPI
from funcplane.admin.auth import TokenChecker, token_hash
from funcplane.admin.cloudflare.api import CloudflareAPI
from funcplane.admin.parse import Limits
from funcplane.admin.site import AdminLimits, admin_site
from funcplane.routing import RouteTable
from tests.fakes import AUTH, TOKEN

DOMAIN_ERRORS = sorted(
    (
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.FuncplaneError)
    ),
    key=lambda kind: kind.__name__,
)
V4_SCRIPT = "http://admin/client/v4/accounts/a/workers/scripts/hello"


def instance(kind):
    """
    An error of class C{kind} saying C{boom}; a L{errors.StartFailed} for a reason that
    has no code of its own.
    """
    if kind is errors.StartFailed:
        return kind("boom", reason="Unlisted")
    return kind("boom")


class ErrorTableTests(SynchronousTestCase):
    """
    The tables themselves.
    """

    def test_every_error_has_a_row(self):
        """
        Each API's table has a row for every domain error class of L{funcplane.errors},
        and for nothing else: a new error cannot be forgotten, a removed one cannot linger.
        """
        self.assertIn(errors.FuncplaneError, DOMAIN_ERRORS)
        for table in [tables.ADMIN_ERRORS, tables.CLOUDFLARE_ERRORS]:
            self.assertEqual(sorted(table, key=lambda kind: kind.__name__), DOMAIN_ERRORS)

    def test_nearest_base(self):
        """
        An error with no row of its own answers as its nearest base class with one.
        """

        class Elsewhere(errors.NoSuchVersion):
            pass

        class Unknown(errors.FuncplaneError):
            pass

        for table in [tables.ADMIN_ERRORS, tables.CLOUDFLARE_ERRORS]:
            self.assertEqual(tables.row(table, Elsewhere("x")), table[errors.NoSuchVersion])
            self.assertEqual(tables.row(table, Unknown("x")), table[errors.FuncplaneError])

    def test_start_failure_codes(self):
        """
        A start failure's code on C{/api} says why the version did not start; a reason with
        no code of its own has L{errors.StartFailed}'s.
        """
        for reason, code in tables.START_FAILURE_CODES.items():
            status, document = tables.admin_error(errors.StartFailed("boom", reason))
            self.assertEqual((status, document["error"]["code"]), (422, code))
        self.assertEqual(
            tables.admin_error(errors.StartFailed("boom", "Unlisted")),
            (422, {"status": "error", "error": {"code": "script_error", "message": "boom"}}),
        )


class _Platform:
    """
    A platform whose every lookup fails with C{self.error}.
    """

    error = None

    def functions(self):
        return fail(self.error)

    def function(self, name):
        return fail(self.error)


class HandlerCase(SynchronousTestCase):
    """
    Both APIs on a platform that fails as told: C{GET /api/functions} and
    C{GET .../scripts/hello/settings} raise C{self.platform.error}.
    """

    def setUp(self):
        self.platform = _Platform()
        checker = TokenChecker(token_hash(TOKEN))
        cloudflare = CloudflareAPI(self.platform, checker, Limits(), Clock(), None)
        self.api = AdminAPI(self.platform, checker, Limits(), "func.local", cloudflare=cloudflare)
        self.client = StubTreq(self.api.resource())

    def call(self, method, url):
        """
        The status, the headers and the decoded JSON of an answer.
        """
        response = self.successResultOf(self.client.request(method, url, headers=AUTH))
        content = self.successResultOf(response.content())
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/json"])
        return response.code, response.headers, json.loads(content)

    def patched(self, name, start):
        """
        Replace table C{name} by one giving each domain error a row of its own, statuses
        from C{start} up, and return it.
        """
        table = {
            kind: (start + i, f"row-{kind.__name__}" if name == "ADMIN_ERRORS" else 90000 + i)
            for i, kind in enumerate(DOMAIN_ERRORS)
        }
        self.patch(tables, name, table)
        return table


class AdminHandlerTests(HandlerCase):
    """
    C{/api} answers by L{tables.ADMIN_ERRORS} and L{tables.ADMIN_HTTP_ERRORS}.
    """

    def test_domain_errors(self):
        """
        Each domain error a handler raises is answered with its row's status and code,
        and its message.
        """
        table = self.patched("ADMIN_ERRORS", 450)
        for kind, (status, code) in table.items():
            self.platform.error = instance(kind)
            self.assertEqual(
                self.call("GET", "http://admin/api/functions")[::2],
                (status, {"status": "error", "error": {"code": code, "message": "boom"}}),
                kind,
            )

    def test_start_failure_code(self):
        """
        A start failure's code comes from L{tables.START_FAILURE_CODES} by its reason.
        """
        self.patch(tables, "START_FAILURE_CODES", {"StartupTimeout": "patched_timeout"})
        self.platform.error = errors.StartFailed("hung", "StartupTimeout")
        status, _, answer = self.call("GET", "http://admin/api/functions")
        self.assertEqual((status, answer["error"]["code"]), (422, "patched_timeout"))

    def test_unauthorized_challenge(self):
        """
        A 401 carries the bearer challenge; no other error does.
        """
        self.platform.error = errors.Unauthorized("no token")
        _, headers, _ = self.call("GET", "http://admin/api/functions")
        self.assertEqual(headers.getRawHeaders(b"www-authenticate"), [b'Bearer realm="funcplane"'])
        self.platform.error = errors.NoSuchFunction("none")
        _, headers, _ = self.call("GET", "http://admin/api/functions")
        self.assertIsNone(headers.getRawHeaders(b"www-authenticate"))

    def test_routing_errors(self):
        """
        No such path and no such method are answered with their codes from the table.
        """
        self.patch(tables, "ADMIN_HTTP_ERRORS", {404: "patched_404", 405: "patched_405"})
        for method, path, status in [("GET", "/api/nothing", 404), ("GET", "/api/deploy/hello", 405)]:
            got, _, answer = self.call(method, "http://admin" + path)
            self.assertEqual((got, answer["error"]["code"]), (status, f"patched_{status}"))


class CloudflareHandlerTests(HandlerCase):
    """
    C{/client/v4} answers by L{tables.CLOUDFLARE_ERRORS} and
    L{tables.CLOUDFLARE_HTTP_ERRORS}, in the envelope.
    """

    def test_domain_errors(self):
        """
        Each domain error a handler raises is answered with its row's status and code,
        and its message, in a failed envelope.
        """
        table = self.patched("CLOUDFLARE_ERRORS", 450)
        for kind, (status, code) in table.items():
            self.platform.error = instance(kind)
            self.assertEqual(
                self.call("GET", V4_SCRIPT + "/settings")[::2],
                (
                    status,
                    {
                        "success": False,
                        "errors": [{"code": code, "message": "boom"}],
                        "messages": [],
                        "result": None,
                    },
                ),
                kind,
            )

    def test_routing_errors(self):
        """
        No such path and no such method are answered with their codes from the table,
        naming what is not implemented.
        """
        self.patch(tables, "CLOUDFLARE_HTTP_ERRORS", {404: 1404, 405: 1405})
        for method, url, status in [("GET", V4_SCRIPT + "/nothing", 404), ("POST", V4_SCRIPT, 405)]:
            got, _, answer = self.call(method, url)
            path = url.removeprefix("http://admin")
            self.assertEqual(
                (got, answer["errors"]),
                (status, [{"code": 1000 + status, "message": f"funcplane does not implement {method} {path}"}]),
            )


class _Resource(Resource):
    isLeaf = True

    def render(self, request):
        return b"served"


class SiteErrorTests(SynchronousTestCase):
    """
    The admin Site refuses an oversized body before Klein sees it, with C{/api}'s row.
    """

    def test_too_large_from_table(self):
        """
        The Site's refusal has the status and code of L{errors.RequestTooLarge}'s row.
        """
        self.patch(tables, "ADMIN_ERRORS", {**tables.ADMIN_ERRORS, errors.RequestTooLarge: (400, "patched")})
        site = admin_site(RouteTable("func.local"), _Resource(), TokenChecker(token_hash(TOKEN)), Clock(), AdminLimits(body_bytes=10))
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(
            b"POST /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 11\r\n\r\n"
        )
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertEqual(head.split(b"\r\n")[0], b"HTTP/1.1 400 Bad Request")
        self.assertEqual(
            json.loads(body),
            {"status": "error", "error": {"code": "patched", "message": "request body is over 10 bytes"}},
        )
        self.assertTrue(transport.disconnecting)
