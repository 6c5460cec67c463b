"""
The Klein app of the Cloudflare v4 subset, and what its routes share: the paths, the
envelope every answer comes in, the token and account check, and the request body.

Each resource module (C{scripts}, C{versions}, C{deployments}, C{secrets}, C{tails},
C{aliases}, C{accounts}) holds a class whose methods are routes of this one app;
L{funcplane.admin.cloudflare.api.CloudflareAPI} is made of those classes, so Klein binds
every route to the one instance and its collaborators (C{_platform}, C{_checker},
C{_limits}, C{_clock}, C{_tails}).  Endpoint names are the methods' names, so they are
unique across the modules.
"""

import functools
import json
import re

from klein import Klein

from funcplane import errors
from funcplane.admin.parse import parse_json_object
from funcplane.names import check_label

app = Klein()

ACCOUNT = "/accounts/<account>"
SCRIPT = ACCOUNT + "/workers/scripts/<name>"
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9-]{1,64}\Z")


def envelope(result, success=True, errors_=()):
    """
    Cloudflare's envelope around every answer.
    """
    return {"success": success, "errors": list(errors_), "messages": [], "result": result}


def send(request, value, status=200):
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode("utf-8") + b"\n"


def ok(request, result):
    return send(request, envelope(result))


def checked(handler):
    """
    Require the admin token and a well-formed account id, and check the script name when
    the route has one.
    """

    @functools.wraps(handler)
    async def check(self, request, account, **kwargs):
        self._checker.check(request)
        if not _ACCOUNT_ID.match(account):
            raise errors.InvalidRequest(f"account id {account[:80]!r} is not valid")
        if "name" in kwargs:
            check_label("script", kwargs["name"])
        return await handler(self, request, **kwargs)

    return check


def source(request):
    """
    Who made a change, as Cloudflare records it: C{wrangler} or C{api}.
    """
    agent = request.getHeader(b"user-agent") or b""
    return "wrangler" if agent.startswith(b"wrangler") else "api"


def body(request):
    """
    The request's body.  The admin Site (L{funcplane.admin.site.AdminRequest}) has
    already refused one over the size limit.
    """
    content = request.content
    content.seek(0)
    return content.read()


def json_body(request):
    """
    The request's body as a JSON object.  wrangler sends some JSON bodies as
    C{text/plain}: the Content-Type is not checked.
    """
    return parse_json_object(body(request))
