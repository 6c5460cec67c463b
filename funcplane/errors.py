"""
Domain errors.  Each names one thing that went wrong; what each admin API answers for
them (HTTP status, error code, JSON body) is in one table per API, side by side in
L{funcplane.admin.errors}.
"""


class FuncplaneError(Exception):
    """
    Base of every error funcplane reports to a caller.  C{str(error)} is a message meant
    for the person reading it: it says what was wrong and, where it helps, what to do.
    """


class InvalidRequest(FuncplaneError):
    """
    The request is malformed: bad JSON, a missing or mistyped field.
    """


class InvalidName(InvalidRequest):
    """
    A function, version or alias name is not a DNS label.
    """


class InvalidEnvironment(InvalidRequest):
    """
    Environment variables break a rule: too many, a bad name, a value too long.
    """


class InvalidCron(InvalidRequest):
    """
    A cron trigger's expression is not one Cloudflare takes, or one funcplane can compute
    (L{funcplane.schedule.cron}).
    """


class NoSuchSecret(FuncplaneError):
    """
    The function's deployed version has no secret of that name.
    """


class Conflict(FuncplaneError):
    """
    The request contradicts what exists: a version name taken, an alias that would shadow a
    version, a function name that differs only in case, a version still in use.
    """


class InvalidBinding(InvalidRequest):
    """
    A binding cannot be made: an unsupported type, or an inherited name the deployed
    version does not have.
    """


class NotDeployed(Conflict):
    """
    A secret cannot be changed: the function's latest version is not the only one serving
    it (a traffic split is in place, or a newer version is only uploaded).
    """


class CodeTooLarge(FuncplaneError):
    """
    The function's code is over the size limit.
    """


class RequestTooLarge(FuncplaneError):
    """
    The request body is over the size limit, before any parsing.
    """


class Unauthorized(FuncplaneError):
    """
    No admin token, or the wrong one.
    """


class NoSuchFunction(FuncplaneError):
    """
    No function has that name.
    """


class NoSuchVersion(FuncplaneError):
    """
    The function has no version of that name.
    """


class NoSuchAlias(FuncplaneError):
    """
    The function has no alias of that name.
    """


class StartFailed(FuncplaneError):
    """
    A workerd child did not become ready: the script failed to load, hung at start-up, or
    the runtime could not start.  The message is the runtime's own error text.
    """

    def __init__(self, message, reason="ScriptError"):
        super().__init__(message)
        self.reason = reason


class AtCapacity(FuncplaneError):
    """
    The running budget (C{--max-running}) is spent on versions that are all busy.
    """


class NoSuchTail(FuncplaneError):
    """
    No live tail has that id: it never existed, it ended, or it expired.
    """


class TooManyTails(FuncplaneError):
    """
    The function already has as many live tails as one function may have.
    """


class NotSupported(FuncplaneError):
    """
    The request needs a Cloudflare feature funcplane does not have (KV, D1, R2, queues,
    routes...); the message names it and says what to do instead.

    @ivar cloudflare_code: the code C{/client/v4} answers with, when Cloudflare has one
        of its own for this feature being unavailable; L{None} for the table's.
    """

    def __init__(self, message, cloudflare_code=None):
        super().__init__(message)
        self.cloudflare_code = cloudflare_code


class NoSuchNamespace(FuncplaneError):
    """
    No Workers KV namespace has that id.
    """


class NoSuchKey(FuncplaneError):
    """
    The KV namespace has no such key, or it has expired.
    """


class NamespaceTaken(Conflict):
    """
    Another KV namespace has that title (titles are unique, as on Cloudflare).
    """


class KeyTooLong(InvalidRequest):
    """
    A KV key name is over 512 bytes in UTF-8 (Cloudflare answers 414).
    """


class ValueTooLarge(InvalidRequest):
    """
    A KV value is over 25 MiB, or its metadata over 1,024 bytes (Cloudflare answers 413).
    """


class NoSuchDatabase(FuncplaneError):
    """
    No D1 database has that id (or name).
    """


class DatabaseExists(Conflict):
    """
    A D1 database of that name exists already.
    """


class DatabaseInUse(Conflict):
    """
    A D1 database cannot be deleted: a deployed version binds it.
    """


class SQLError(InvalidRequest):
    """
    A D1 statement failed: SQLite's message and its error name (C{...: SQLITE_ERROR}), as
    D1 reports it.
    """
