"""
Tests for L{funcplane.admin.auth}: the token check, and where the token's hash comes from.
"""

import hashlib
import os
import stat
import tempfile

from twisted.internet.defer import Deferred
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from funcplane.admin.auth import HASH_SETTING, TokenChecker, TokenSource, TokenTooShort, token_hash
from funcplane.errors import Unauthorized
from tests.fakes import memory_store


LONG = "from-env-0123456789abcdef0123456789"


def request_with(**headers):
    request = DummyRequest([b""])
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name.replace("_", "-"), [value])
    return request


class TokenCheckerTests(SynchronousTestCase):
    def test_accepts_both_headers(self):
        """
        The token is accepted as a bearer token (scheme in any case) or as X-Deploy-Token.
        """
        checker = TokenChecker(token_hash("s3cr3t"))
        checker.check(request_with(authorization=b"Bearer s3cr3t"))
        checker.check(request_with(authorization=b"bearer  s3cr3t "))
        checker.check(request_with(x_deploy_token=b"s3cr3t"))

    def test_refuses(self):
        """
        No token, a wrong token, another scheme or an empty bearer are Unauthorized.
        """
        checker = TokenChecker(token_hash("s3cr3t"))
        for request in [request_with(), request_with(authorization=b"Bearer wrong"),
                        request_with(authorization=b"Basic s3cr3t"), request_with(authorization=b"Bearer "),
                        request_with(x_deploy_token=b"s3cr3")]:
            self.assertRaises(Unauthorized, checker.check, request)


class TokenSourceTests(SynchronousTestCase):
    def setUp(self):
        self.store = memory_store(self)
        self.data_dir = tempfile.mkdtemp()

    def expected(self, environ):
        return self.successResultOf(Deferred.fromCoroutine(TokenSource(self.store, self.data_dir, environ).expected_hash()))

    def test_environment(self):
        """
        $FUNCPLANE_ADMIN_TOKEN wins; nothing is written, and the token is never logged.
        """
        with capturedLogs() as events:
            self.assertEqual(self.expected({"FUNCPLANE_ADMIN_TOKEN": LONG}), token_hash(LONG))
        self.assertEqual(os.listdir(self.data_dir), [])
        self.assertNotIn(LONG, repr([e for e in events]))

    def test_short_token_refused(self):
        """
        A $FUNCPLANE_ADMIN_TOKEN shorter than 32 characters stops the start with an error
        that says how long it is, how long it must be and what to do, without the token;
        nothing is stored or written.  One of 32 is accepted.
        """
        short = "tooshort-" + "x" * 22
        source = TokenSource(self.store, self.data_dir, {"FUNCPLANE_ADMIN_TOKEN": short})
        failure = self.failureResultOf(Deferred.fromCoroutine(source.expected_hash()), TokenTooShort)
        message = str(failure.value)
        self.assertIn("$FUNCPLANE_ADMIN_TOKEN has 31 characters; an admin token needs at least 32", message)
        self.assertIn("secrets.token_urlsafe(32)", message)
        self.assertIn(os.path.join(self.data_dir, "admin-token"), message)
        self.assertNotIn("tooshort", message)
        self.assertEqual(os.listdir(self.data_dir), [])
        self.assertIsNone(self.successResultOf(self.store.get_setting(HASH_SETTING)))
        self.assertEqual(self.expected({"FUNCPLANE_ADMIN_TOKEN": "y" * 32}), token_hash("y" * 32))

    def test_generated_once(self):
        """
        Without the variable a token is generated, written 0600 for the operator, and only
        its hash stored; the next start uses the stored hash even if the file is gone.
        """
        with capturedLogs() as events:
            first = self.expected({})
        path = os.path.join(self.data_dir, "admin-token")
        with open(path) as f:
            token = f.read().strip()
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(first, hashlib.sha256(token.encode()).hexdigest())
        self.assertEqual(self.successResultOf(self.store.get_setting(HASH_SETTING)), first)
        self.assertEqual(events[-1]["path"], path)
        self.assertNotIn(token, repr(events))
        os.unlink(path)
        self.assertEqual(self.expected({}), first)
        self.assertFalse(os.path.exists(path))
