"""
What the admin APIs answer when a request fails: for each domain error of
L{funcplane.errors}, the HTTP status and error code of the seed's C{/api}
(L{ADMIN_ERRORS}) and of the Cloudflare v4 subset under C{/client/v4}
(L{CLOUDFLARE_ERRORS}); for werkzeug's routing errors (no such path, no such method),
theirs; and one function per API that registers every Klein C{handle_errors} of its app.

An error answers by its own row, or else by its nearest base class's (in method
resolution order), so the tables' order does not matter.  Every class of
L{funcplane.errors} has a row in both tables; a test sees that none is forgotten.
"""

import json

from werkzeug.exceptions import HTTPException

from funcplane import errors
from funcplane.admin.cloudflare.app import envelope

# Domain error -> (status, code), row for row in the same order for both APIs.
ADMIN_ERRORS = {
    errors.InvalidRequest: (400, "invalid_request"),
    errors.InvalidName: (400, "invalid_name"),
    errors.InvalidEnvironment: (400, "invalid_env"),
    errors.InvalidCron: (400, "invalid_cron"),
    errors.InvalidBinding: (400, "invalid_binding"),
    errors.Unauthorized: (401, "unauthorized"),
    errors.NoSuchFunction: (404, "function_not_found"),
    errors.NoSuchVersion: (404, "version_not_found"),
    errors.NoSuchAlias: (404, "alias_not_found"),
    errors.NoSuchSecret: (404, "secret_not_found"),
    errors.Conflict: (409, "conflict"),
    errors.NotDeployed: (409, "conflict"),
    errors.CodeTooLarge: (413, "code_too_large"),
    errors.RequestTooLarge: (413, "body_too_large"),
    errors.StartFailed: (422, "script_error"),
    errors.AtCapacity: (503, "at_capacity"),
    # Tails are made and ended only through /client/v4: here they would be a bug.
    errors.NoSuchTail: (500, "internal_error"),
    errors.TooManyTails: (500, "internal_error"),
    # Only /client/v4 asks for Cloudflare features funcplane lacks.
    errors.NotSupported: (403, "not_supported"),
    errors.NoSuchDatabase: (404, "database_not_found"),
    errors.DatabaseExists: (409, "conflict"),
    errors.DatabaseInUse: (409, "conflict"),
    errors.SQLError: (400, "sql_error"),
    errors.NoSuchNamespace: (404, "namespace_not_found"),
    errors.NoSuchKey: (404, "key_not_found"),
    errors.NamespaceTaken: (409, "conflict"),
    errors.KeyTooLong: (414, "key_too_long"),
    errors.ValueTooLarge: (413, "value_too_large"),
    errors.FuncplaneError: (500, "internal_error"),
}
CLOUDFLARE_ERRORS = {
    errors.InvalidRequest: (400, 10021),
    errors.InvalidName: (400, 10021),
    errors.InvalidEnvironment: (400, 10021),
    # Cloudflare's "invalid cron string".
    errors.InvalidCron: (400, 10100),
    errors.InvalidBinding: (400, 10057),
    errors.Unauthorized: (401, 10000),
    errors.NoSuchFunction: (404, 10007),
    errors.NoSuchVersion: (404, 10007),
    errors.NoSuchAlias: (404, 10007),
    errors.NoSuchSecret: (404, 10007),
    errors.Conflict: (409, 10021),
    errors.NotDeployed: (409, 10215),
    errors.CodeTooLarge: (413, 10027),
    errors.RequestTooLarge: (413, 10027),
    errors.StartFailed: (400, 10021),
    errors.AtCapacity: (503, 10013),
    errors.NoSuchTail: (404, 10007),
    errors.TooManyTails: (429, 10429),
    # Cloudflare's "not entitled" (the account lacks the feature), unless the error
    # carries Cloudflare's own code for its feature (NotSupported.cloudflare_code).
    errors.NotSupported: (403, 10015),
    # D1's: "database not found" (wrangler acts on 7404), "a database with that name
    # already exists" (7502), and a statement's failure (7500, SQLite's message).
    errors.NoSuchDatabase: (404, 7404),
    errors.DatabaseExists: (400, 7502),
    errors.DatabaseInUse: (409, 7500),
    errors.SQLError: (400, 7500),
    # Workers KV's: "namespace not found", "key not found", "a namespace with this title
    # already exists" (wrangler acts on 10014); the limits answer 414 and 413, as Cloudflare.
    errors.NoSuchNamespace: (404, 10013),
    errors.NoSuchKey: (404, 10009),
    errors.NamespaceTaken: (400, 10014),
    errors.KeyTooLong: (414, 10021),
    errors.ValueTooLarge: (413, 10021),
    errors.FuncplaneError: (503, 10013),
}
# /api only: the code of a version that did not start says why (StartFailed.reason).
START_FAILURE_CODES = {
    "ScriptError": "script_error",
    "StartupTimeout": "startup_timeout",
    "CrashLoop": "crash_loop",
}
# Routing errors: status -> code, and the code of any other status.
ADMIN_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed"}
ADMIN_OTHER_HTTP_ERROR = "http_error"
CLOUDFLARE_HTTP_ERRORS = {404: 7003, 405: 10405}
CLOUDFLARE_OTHER_HTTP_ERROR = 10000  # plus the status


def row(table, error):
    """
    The C{(status, code)} C{table} gives C{error}: its class's row, or its nearest base's.
    """
    for kind in type(error).__mro__:
        if kind in table:
            return table[kind]
    raise LookupError(f"no row for {type(error).__name__}")


def error_document(code, message):
    """
    The JSON body of every C{/api} error.
    """
    return {"status": "error", "error": {"code": code, "message": message}}


def admin_error(error):
    """
    The status and JSON body C{/api} answers for domain error C{error}.  The admin Site
    renders its 413 with this too, before the request reaches Klein.
    """
    status, code = row(ADMIN_ERRORS, error)
    if isinstance(error, errors.StartFailed):
        code = START_FAILURE_CODES.get(error.reason, code)
    return status, error_document(code, str(error))


def cloudflare_error(error):
    """
    The status and envelope C{/client/v4} answers for domain error C{error}.
    """
    status, code = row(CLOUDFLARE_ERRORS, error)
    code = getattr(error, "cloudflare_code", None) or code
    return status, envelope(None, False, [{"code": code, "message": str(error)}])


# What the admin Site answers by itself, before any route, for statuses that are not a
# domain error's: the code in /api's document; /client/v4 gives 10000 plus the status.
SITE_ERRORS = {408: "request_timeout", 429: "too_many_failures"}
CLOUDFLARE_PREFIX = b"/client/v4/"


def _is_cloudflare(path):
    return path.startswith(CLOUDFLARE_PREFIX) or path == CLOUDFLARE_PREFIX[:-1]


def api_error(path, error):
    """
    The status and document the API that C{path} (a request path, bytes) names answers
    for domain error C{error}: for the admin Site, which refuses before any route runs.
    """
    return cloudflare_error(error) if _is_cloudflare(path) else admin_error(error)


def site_error(path, status, message):
    """
    The status and document of a refusal the admin Site makes by itself (a status of
    L{SITE_ERRORS}), in the shape of the API that C{path} names.
    """
    if _is_cloudflare(path):
        code = CLOUDFLARE_OTHER_HTTP_ERROR + status
        return status, envelope(None, False, [{"code": code, "message": message}])
    return status, error_document(SITE_ERRORS[status], message)


def _send(request, status, document):
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(document).encode("utf-8") + b"\n"


def add_admin_error_handling(app):
    """
    Register on C{app} (L{funcplane.admin.api.AdminAPI}'s) every error handler it has.
    """

    @app.handle_errors(errors.FuncplaneError)
    def domain_error(self, request, failure):
        if failure.check(errors.Unauthorized):
            request.setHeader(b"www-authenticate", b'Bearer realm="funcplane"')
        return _send(request, *admin_error(failure.value))

    @app.handle_errors(HTTPException)
    def http_error(self, request, failure):
        error = failure.value
        code = ADMIN_HTTP_ERRORS.get(error.code, ADMIN_OTHER_HTTP_ERROR)
        return _send(request, error.code, error_document(code, error.description or error.name))


def add_cloudflare_error_handling(app):
    """
    Register on C{app} (L{funcplane.admin.cloudflare.api.CloudflareAPI}'s) every error
    handler it has.
    """

    @app.handle_errors(errors.FuncplaneError)
    def domain_error(self, request, failure):
        return _send(request, *cloudflare_error(failure.value))

    @app.handle_errors(HTTPException)
    def http_error(self, request, failure):
        error = failure.value
        code = CLOUDFLARE_HTTP_ERRORS.get(error.code, CLOUDFLARE_OTHER_HTTP_ERROR + error.code)
        message = (
            f"funcplane does not implement {request.method.decode()} {request.path.decode()}"
            if error.code in CLOUDFLARE_HTTP_ERRORS
            else error.description
        )
        return _send(request, error.code, envelope(None, False, [{"code": code, "message": message}]))
