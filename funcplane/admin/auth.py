"""
The admin token.  funcplane keeps only its SHA-256 hash; requests present the token as
C{Authorization: Bearer TOKEN} or C{X-Deploy-Token: TOKEN} and are compared in constant
time.
"""

import hashlib
import hmac
import os
import secrets

from twisted.logger import Logger

from funcplane.errors import Unauthorized

ENVIRONMENT_VARIABLE = "FUNCPLANE_ADMIN_TOKEN"
HASH_SETTING = "admin_token_sha256"
TOKEN_FILE = "admin-token"
# The shortest admin token funcplane accepts; the tokens it generates have 43 characters.
MIN_TOKEN_LENGTH = 32


class TokenTooShort(Exception):
    """
    C{$FUNCPLANE_ADMIN_TOKEN} is shorter than L{MIN_TOKEN_LENGTH}: funcplane does not start.
    """


def token_hash(token):
    """
    The hex SHA-256 of C{token} (str).
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def presented_token(request):
    """
    The token a request carries, or L{None}.
    """
    authorization = request.getHeader(b"authorization")
    if authorization:
        scheme, _, value = authorization.partition(b" ")
        if scheme.lower() == b"bearer" and value.strip():
            return value.strip()
    token = request.getHeader(b"x-deploy-token")
    return token.strip() if token else None


class TokenChecker:
    """
    Checks requests against the admin token's hash.
    """

    def __init__(self, expected_hash):
        self._expected = bytes.fromhex(expected_hash)

    def check(self, request):
        """
        Return nothing if C{request} carries the admin token, else raise L{Unauthorized}.
        """
        token = presented_token(request)
        if token is None:
            raise Unauthorized(
                "this route needs the admin token: send 'Authorization: Bearer TOKEN'"
                " or 'X-Deploy-Token: TOKEN'"
            )
        digest = hashlib.sha256(token).digest()
        if not hmac.compare_digest(digest, self._expected):
            raise Unauthorized("the admin token is not valid")


class TokenSource:
    """
    Decides the admin token's hash at start-up: C{$FUNCPLANE_ADMIN_TOKEN} if set; else the
    hash stored by an earlier start; else a new random token, written once to
    C{DATA_DIR/admin-token} (mode 0600) for the operator to read, its hash stored.
    """

    log = Logger()

    def __init__(self, store, data_dir, environ=os.environ):
        self._store = store
        self._data_dir = data_dir
        self._environ = environ

    async def expected_hash(self):
        given = self._environ.get(ENVIRONMENT_VARIABLE)
        if given:
            if len(given) < MIN_TOKEN_LENGTH:
                raise TokenTooShort(
                    f"${ENVIRONMENT_VARIABLE} has {len(given)} characters; an admin token needs"
                    f" at least {MIN_TOKEN_LENGTH}. Set a longer one (python3 -c 'import"
                    f" secrets; print(secrets.token_urlsafe(32))' makes one), or unset it to"
                    f" use the one funcplane generates (written to"
                    f" {os.path.join(self._data_dir, TOKEN_FILE)} on its first start)"
                )
            self.log.info("admin token taken from ${variable}", variable=ENVIRONMENT_VARIABLE)
            return token_hash(given)
        stored = await self._store.get_setting(HASH_SETTING)
        path = os.path.join(self._data_dir, TOKEN_FILE)
        if stored:
            self.log.info(
                "admin token: the one generated on first start (in {path} unless removed)",
                path=path,
            )
            return stored
        token = secrets.token_urlsafe(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write(token + "\n")
        digest = token_hash(token)
        await self._store.put_setting(HASH_SETTING, digest)
        self.log.info(
            "generated an admin token and wrote it to {path} (mode 0600); send it as"
            " 'Authorization: Bearer TOKEN'",
            path=path,
        )
        return digest
