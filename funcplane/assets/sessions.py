"""
The asset upload sessions wrangler drives before it uploads a script with assets:

1. C{POST .../scripts/NAME/assets-upload-session} with the manifest (C{{"/path": {hash,
   size}}}) opens a session: its token, and the hashes the store lacks, in buckets.
2. Each bucket comes in C{POST .../workers/assets/upload?base64=true}, authorised by the
   session's token alone (wrangler sends no API token there): each part is named by a hash
   of the session's buckets and holds the file, base64-encoded.  A part is stored only
   once it is proven to be that hash's content; the upload that completes the session is
   answered (201) with a completion token, the others (202) with nothing.
3. The script upload names the completion token (or, when the store lacked nothing, the
   session's own token) in C{metadata.assets.jwt}; it stands for the session's manifest.

Tokens are JWTs (wrangler reads their C{exp}) signed with a key funcplane draws when it
starts, naming a session kept here, in memory: a token is good only for its script, only
until it expires, and not at all after a restart (wrangler then deploys again).
"""

import base64
import binascii
import hashlib
import hmac
import json
import secrets

import attrs

from funcplane.assets.content import extension, hash_with_extension, is_hash
from funcplane.assets.store import write
from funcplane.errors import InvalidRequest, Unauthorized

MiB = 1024 * 1024
UPLOAD = "upload"
COMPLETION = "completion"
_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()


@attrs.frozen
class AssetLimits:
    """
    What one version's assets may be, and how their upload is cut up.  The defaults are
    Cloudflare's: 25 MiB a file, 20,000 files a version.

    @ivar bucket_bytes: file bytes in one upload request (a larger file goes alone).
    @ivar bucket_files: files in one upload request.
    @ivar session_seconds: how long a session's token, and then its completion token, is
        good for.
    @ivar max_sessions: sessions kept at once; beyond them the oldest is forgotten.
    """

    max_file_bytes: int = 25 * MiB
    max_files: int = 20_000
    max_path_chars: int = 1024
    bucket_bytes: int = 8 * MiB
    bucket_files: int = 500
    session_seconds: float = 3600.0
    max_sessions: int = 32

    @property
    def upload_body_bytes(self):
        """
        The largest upload request body: one bucket, base64-encoded, with its parts'
        headers.
        """
        largest = max(self.max_file_bytes, self.bucket_bytes)
        return 4 * -(-largest // 3) + 1024 * self.bucket_files + 64 * 1024


@attrs.define(eq=False)
class Session:
    """
    One upload session.

    @ivar manifest: C{(path, hash, size)}, sorted by path.
    @ivar wanted: the hashes the session asked for: hash -> C{(size, extensions)} (the
        extensions of its paths, with which its content must hash to it).
    @ivar pending: those of C{wanted} not received yet.
    @ivar completed: when the last of them was received (or the session opened with none
        wanted), else L{None}.
    """

    id: str
    script: str
    manifest: tuple
    wanted: dict
    pending: set
    buckets: list
    opened: float
    completed: float | None = None


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_manifest(document, limits):
    """
    The C{(path, hash, size)} entries, sorted by path, of an upload session's body
    (C{{"manifest": {"/path": {"hash": ..., "size": ...}}}}).

    @raise InvalidRequest: it is malformed or over the limits; the message says which.
    """
    manifest = document.get("manifest") if isinstance(document, dict) else None
    if not isinstance(manifest, dict):
        raise InvalidRequest('the body must be {"manifest": {"/path": {"hash": ..., "size": ...}}}')
    if len(manifest) > limits.max_files:
        raise InvalidRequest(
            f"the assets have {len(manifest)} files; funcplane takes at most {limits.max_files}"
            " a version (--max-asset-files)"
        )
    entries = []
    for path, entry in manifest.items():
        shown = path[:100]
        if not path.startswith("/") or len(path) > limits.max_path_chars or "\0" in path:
            raise InvalidRequest(
                f"asset path {shown!r} must begin with / and have at most"
                f" {limits.max_path_chars} characters, none of them NUL"
            )
        if not isinstance(entry, dict) or not is_hash(entry.get("hash")):
            raise InvalidRequest(f"asset {shown} needs a 'hash' of 32 lower-case hex digits")
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidRequest(f"asset {shown} needs a 'size', a whole number of bytes")
        if size > limits.max_file_bytes:
            raise InvalidRequest(
                f"asset {shown} is {size} bytes; funcplane takes files of at most"
                f" {limits.max_file_bytes} bytes (--max-asset-file-bytes)"
            )
        entries.append((path, entry["hash"], size))
    return tuple(sorted(entries))


def wanted_hashes(manifest, lacking):
    """
    For each hash of C{lacking}: C{(size, extensions)} from C{manifest}'s entries with it.

    @raise InvalidRequest: two paths give one hash different sizes.
    """
    wanted = {}
    for path, digest, size in manifest:
        if digest not in lacking:
            continue
        known, extensions = wanted.get(digest, (size, frozenset()))
        if known != size:
            raise InvalidRequest(f"hash {digest} is given sizes {known} and {size}")
        wanted[digest] = (size, extensions | {extension(path)})
    return wanted


def buckets(manifest, wanted, limits):
    """
    The hashes of C{wanted} in upload requests: in path order, each request at most
    C{bucket_files} files and C{bucket_bytes} bytes (or one larger file).
    """
    found, current, size = [], [], 0
    seen = set()
    for _, digest, length in manifest:
        if digest not in wanted or digest in seen:
            continue
        seen.add(digest)
        if current and (size + length > limits.bucket_bytes or len(current) >= limits.bucket_files):
            found.append(current)
            current, size = [], 0
        current.append(digest)
        size += length
    if current:
        found.append(current)
    return found


def receive(root, parts, wanted):
    """
    Check every part of one upload request, then store them (blocking: it runs in the
    store's thread pool).  Return the hashes received.

    @param parts: C{(name, base64 bytes)} pairs.
    @param wanted: the session's L{Session.wanted}.
    @raise InvalidRequest: a part is not one the session asked for, is not base64, or is
        not the content of the hash it is named by; nothing of the request is stored.
    """
    checked, names = [], set()
    for name, encoded in parts:
        if name not in wanted:
            raise InvalidRequest(
                f"the upload has a part {name[:40]!r}, which is not a hash this upload session"
                " asked for"
            )
        if name in names:
            raise InvalidRequest(f"the upload has the part {name} twice")
        names.add(name)
        size, extensions = wanted[name]
        try:
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"the part {name} is not base64 (upload with ?base64=true)")
        if len(content) != size:
            raise InvalidRequest(
                f"the part {name} has {len(content)} bytes; the manifest says {size}"
            )
        canonical = base64.b64encode(content)
        if not any(hash_with_extension(canonical, ext) == name for ext in extensions):
            raise InvalidRequest(
                f"the part {name} is not the content of that hash (BLAKE3 of its base64 text"
                " and its extension, as wrangler computes it)"
            )
        checked.append((name, content))
    for name, content in checked:
        write(root, name, content)
    return [name for name, _ in checked]


class UploadSessions:
    """
    The open upload sessions and the tokens that name them.

    @param clock: an C{IReactorTime}: tokens expire by its C{seconds()}.
    @param store: the L{funcplane.assets.store.AssetStore}.
    @param limits: the L{AssetLimits}.
    @param key: the tokens' signing key (by default, 32 random bytes).
    """

    def __init__(self, clock, store, limits=AssetLimits(), key=None):
        self._clock = clock
        self._store = store
        self.limits = limits
        self._key = key if key is not None else secrets.token_bytes(32)
        self._sessions = {}
        self.received = 0

    def _token(self, session, kind, expires):
        payload = {"sid": session.id, "sub": session.script, "kind": kind, "exp": int(expires)}
        signed = f"{_HEADER}.{_b64url(json.dumps(payload, separators=(',', ':')).encode())}"
        signature = hmac.new(self._key, signed.encode("ascii"), hashlib.sha256).digest()
        return f"{signed}.{_b64url(signature)}"

    def _session(self, token, kinds):
        """
        The live session C{token} names, with its kind, or L{None}.
        """
        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 1024:
            return None
        signed, _, signature = token.rpartition(".")
        expected = hmac.new(self._key, signed.encode("ascii", "replace"), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_unb64url(signature), expected):
                return None
            payload = json.loads(_unb64url(signed.split(".")[1]))
        except (ValueError, TypeError, binascii.Error):
            return None
        session = self._sessions.get(payload.get("sid"))
        if session is None or payload.get("kind") not in kinds:
            return None
        if payload.get("exp", 0) <= self._clock.seconds():
            return None
        return session, payload["kind"]

    def _forget_old(self):
        now, ttl = self._clock.seconds(), self.limits.session_seconds
        for sid, session in list(self._sessions.items()):
            if max(session.opened, session.completed or 0) + ttl <= now:
                del self._sessions[sid]
        while len(self._sessions) >= self.limits.max_sessions:
            oldest = min(self._sessions.values(), key=lambda s: s.opened)
            del self._sessions[oldest.id]

    async def open(self, script, document):
        """
        Open a session for C{script}'s manifest C{document}; return what wrangler is
        answered: C{{"jwt", "buckets"}}.
        """
        manifest = parse_manifest(document, self.limits)
        lacking = await self._store.missing({digest for _, digest, _ in manifest})
        wanted = wanted_hashes(manifest, lacking)
        self._forget_old()
        now = self._clock.seconds()
        session = Session(
            id=secrets.token_urlsafe(24),
            script=script,
            manifest=manifest,
            wanted=wanted,
            pending=set(wanted),
            buckets=buckets(manifest, wanted, self.limits),
            opened=now,
            completed=None if wanted else now,
        )
        self._sessions[session.id] = session
        token = self._token(session, UPLOAD, now + self.limits.session_seconds)
        return {"jwt": token, "buckets": session.buckets}

    def check(self, request):
        """
        Raise L{Unauthorized} unless C{request} carries an upload session's token (the
        admin Site asks before it reads the body).
        """
        self.session_of(request)

    def session_of(self, request):
        """
        The L{Session} whose token C{request} carries as its bearer token.

        @raise Unauthorized: it carries none that is good.
        """
        header = (request.getHeader(b"authorization") or b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        found = self._session(token.strip(), (UPLOAD,)) if scheme.lower() == "bearer" else None
        if found is None:
            raise Unauthorized(
                "the asset upload token is missing, invalid or expired; run wrangler deploy"
                " again"
            )
        return found[0]

    async def upload(self, session, parts_of, body):
        """
        Receive one upload request of C{session}: C{parts_of(body)} (run off the reactor
        thread, with the checks and the writes) gives its C{(name, base64 bytes)} parts.
        Return C{(status, result)}: 201 and the completion token once the session has every
        file, else 202 and C{{}}.
        """

        def work():
            return receive(self._store.path, parts_of(body), session.wanted)

        received = await self._store.run(work)
        self.received += len(received)
        session.pending.difference_update(received)
        if session.pending:
            return 202, {}
        now = self._clock.seconds()
        if session.completed is None:
            session.completed = now
        return 201, {"jwt": self._token(session, COMPLETION, session.completed + self.limits.session_seconds)}

    def redeem(self, token, script):
        """
        The manifest (C{(path, hash, size)}, sorted by path) that C{token}, a completion
        token or the token of a session that lacked nothing, stands for.

        @raise InvalidRequest: it stands for none, or for another script's.
        """
        found = self._session(token, (UPLOAD, COMPLETION))
        if found is None or found[0].completed is None:
            raise InvalidRequest(
                "the assets' completion token is invalid or expired (funcplane keeps upload"
                " sessions for an hour, and not across a restart); run wrangler deploy again"
            )
        session = found[0]
        if session.script != script:
            raise InvalidRequest(
                f"the assets were uploaded for {session.script}, not {script}; run wrangler"
                " deploy again"
            )
        return session.manifest
