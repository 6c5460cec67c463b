"""
C{wrangler d1 execute --remote --file}: D1's import flow.  C{init} hands out an upload URL
on funcplane's own API, whose last segment is a token of 128 random bits, good for one
upload of one file (named by its MD5) to one database for an hour; the upload answers the
MD5 as its ETag, which wrangler compares; C{ingest} runs the file as one request, so all of
it or none of it is applied (as on Cloudflare: "your DB will return to its original
state"), and answers the outcome at once; C{poll} answers it again.
"""

import hashlib
import re
import secrets

import attrs

from funcplane.d1.sql import statements
from funcplane.errors import InvalidRequest, SQLError, Unauthorized

LIFETIME = 3600.0
_MD5 = re.compile(r"[0-9a-f]{32}\Z")
_TOKEN = re.compile(r"[0-9a-f]{32}\Z")
# Outcomes kept for polls, per registry; the oldest go first.
_KEPT_OUTCOMES = 64


@attrs.frozen
class Pending:
    """
    An upload that C{init} allowed: to which database, of which file, until when, and the
    content once it has arrived.
    """

    database_id: str
    etag: str
    expires: float
    content: bytes | None = None


def check_etag(etag):
    if not isinstance(etag, str) or not _MD5.match(etag):
        raise InvalidRequest("etag must be the MD5 of the file, as 32 lower-case hex digits")
    return etag


class Imports:
    """
    The uploads in progress and the outcomes of those ingested.

    @param reactor: an C{IReactorTime}.
    @param databases: the L{funcplane.d1.registry.Databases}.
    """

    def __init__(self, reactor, databases, lifetime=LIFETIME):
        self._reactor = reactor
        self._databases = databases
        self._lifetime = lifetime
        self._pending = {}
        self._outcomes = {}
        self._counter = 0

    def _expire(self):
        now = self._reactor.seconds()
        for token in [t for t, p in self._pending.items() if p.expires <= now]:
            del self._pending[token]

    def init(self, record, etag):
        """
        Allow one upload of the file of MD5 C{etag} to database C{record}; its token, which
        is also the file's name in the flow.
        """
        self._expire()
        token = secrets.token_hex(16)
        expires = self._reactor.seconds() + self._lifetime
        self._pending[token] = Pending(record.id, check_etag(etag), expires)
        return token

    def upload(self, token, content):
        """
        Take the file of upload C{token}; its MD5 (hex).

        @raise Unauthorized: no upload has that token, or it expired or is done.
        @raise InvalidRequest: the content's MD5 is not the one given to C{init}.
        """
        self._expire()
        pending = self._pending.get(token) if _TOKEN.match(token) else None
        if pending is None or pending.content is not None:
            raise Unauthorized("this upload URL is not valid: it expired or was used")
        digest = hashlib.md5(content).hexdigest()
        if digest != pending.etag:
            raise InvalidRequest(f"the file's MD5 is {digest}, not the {pending.etag} given to init")
        self._pending[token] = attrs.evolve(pending, content=content)
        return digest

    def _bookmark(self):
        self._counter += 1
        return f"{int(self._reactor.seconds() * 1000):012x}-{self._counter:08x}"

    def _keep(self, outcome):
        self._outcomes[outcome["at_bookmark"]] = outcome
        while len(self._outcomes) > _KEPT_OUTCOMES:
            del self._outcomes[next(iter(self._outcomes))]
        return outcome

    async def ingest(self, record, filename, etag):
        """
        Run the uploaded file C{filename} on database C{record} in one transaction; the
        outcome, as D1 answers C{ingest} and C{poll}.
        """
        self._expire()
        pending = self._pending.get(filename) if isinstance(filename, str) else None
        if pending is None or pending.database_id != record.id or pending.etag != etag or pending.content is None:
            raise InvalidRequest(f"no file {str(filename)[:80]!r} was uploaded to this database")
        del self._pending[filename]
        bookmark = self._bookmark()
        try:
            sql = pending.content.decode("utf-8")
        except UnicodeDecodeError:
            return self._keep(_failed(bookmark, "the file is not UTF-8 text"))
        try:
            results = await self._databases.run(record, statements(sql))
        except (SQLError, InvalidRequest) as e:
            return self._keep(_failed(bookmark, str(e)))
        meta = {
            "duration": sum(r["meta"]["duration"] for r in results),
            "rows_read": sum(r["meta"]["rows_read"] for r in results),
            "rows_written": sum(r["meta"]["rows_written"] for r in results),
            "changes": sum(r["meta"]["changes"] for r in results),
            "changed_db": any(r["meta"]["changed_db"] for r in results),
            "size_after": results[-1]["meta"]["size_after"],
            "served_by": "funcplane",
        }
        return self._keep(
            {
                "success": True,
                "type": "import",
                "status": "complete",
                "at_bookmark": bookmark,
                "messages": [f"Processed {len(results)} queries."],
                "errors": [],
                "result": {"num_queries": len(results), "final_bookmark": bookmark, "meta": meta},
            }
        )

    def poll(self, bookmark):
        """
        The outcome of the ingest at C{bookmark}.
        """
        outcome = self._outcomes.get(bookmark) if isinstance(bookmark, str) else None
        if outcome is None:
            return _failed(str(bookmark)[:80], "no import is at that bookmark")
        return outcome


def _failed(bookmark, message):
    return {
        "success": True,
        "type": "import",
        "status": "error",
        "at_bookmark": bookmark,
        "messages": [],
        "errors": [message],
    }
