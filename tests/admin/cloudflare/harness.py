"""
What the tests of the Cloudflare v4 subset run against: the admin API's resource with the
v4 API under C{/client/v4}, on a real store, a real platform and tails, and fake children;
and the helpers to call it and check its envelope.
"""

import json
import uuid

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane.admin.api import AdminAPI
from funcplane.admin.auth import TokenChecker, token_hash
from funcplane.admin.cloudflare.api import CloudflareAPI
from funcplane.admin.parse import Limits
from funcplane.kv import KV
from funcplane.observe.logbook import LogBook
from funcplane.observe.tails import Tails
from funcplane.platform import Platform
from funcplane.routing import RouteTable
from funcplane.runtime.supervisor import Supervisor
from funcplane.store.kv import SQLiteKV
from tests.admin.cloudflare.test_upload import CONTENT_TYPE, body, metadata, module
from tests.fakes import AUTH, FakeLauncher, TOKEN, memory_store

BASE = "http://127.0.0.1:8081/client/v4/accounts/0123456789abcdef0123456789abcdef"
SCRIPT = BASE + "/workers/scripts/hello"
INDEX = module("index.js", "export default { fetch() { return new Response('hi') } }")
UPLOAD = {b"Content-Type": [CONTENT_TYPE.encode()], **AUTH}


def vid(i):
    """
    The i-th version id: distinct in its first 8 hex digits, as random ones are.
    """
    return f"{i:08x}" + "a" * 24


def cf(i):
    """
    The i-th version id as the v4 API shows it, a UUID.
    """
    return str(uuid.UUID(hex=vid(i)))


class CloudflareCase(SynchronousTestCase):
    """
    A funcplane whose version ids are L{vid}s, whose generated version names are
    C{gen1}, C{gen2}, ..., and whose tail ids count up from C{0...01}.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.store = memory_store(self)
        self.launcher = FakeLauncher(auto_ready=True)
        self.supervisor = Supervisor(Clock(), self.launcher, self.store.version_spec)
        self.routes = RouteTable("func.local")
        self.logbook = LogBook(self.clock)
        tail_ids = iter(f"{i:032x}" for i in range(1, 100))
        self.tails = Tails(self.clock, self.logbook, "func.local", new_id=lambda: next(tail_ids))
        ids = iter(vid(i) for i in range(1, 100))
        names = iter(f"gen{i}" for i in range(1, 100))
        self.platform = Platform(
            self.clock, self.store, self.supervisor, self.routes,
            new_id=lambda: next(ids), new_version_name=lambda: next(names),
            new_deployment_id=lambda: uuid.uuid4().hex, tails=self.tails,
        )
        checker = self.checker = TokenChecker(token_hash(TOKEN))
        limits = Limits(max_code_bytes=10_000)
        namespace_ids = iter(f"{i:032x}" for i in range(0xA1, 0xFFFF))
        self.kv = KV(self.clock, SQLiteKV(self.store), new_id=lambda: next(namespace_ids))
        cloudflare = CloudflareAPI(self.platform, checker, limits, self.clock, self.tails, kv=self.kv)
        self.api = AdminAPI(
            self.platform, checker, limits, "func.local", 8081, clock=self.clock, cloudflare=cloudflare, kv=self.kv
        )
        self.client = StubTreq(self.api.resource())
        self.seen = []

    def call(self, method, url, data=None, headers=AUTH):
        """
        The status and the decoded JSON of an answer; every answer's bytes are kept in
        C{self.seen}.
        """
        if isinstance(data, (dict, list)):
            data = json.dumps(data).encode()
        d = self.client.request(method, url, data=data, headers=headers)
        self.client.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(self.client.content(response))
        self.seen.append(content)
        return response.code, json.loads(content)

    def ok(self, method, url, data=None, headers=AUTH):
        """
        The C{result} of an answer that must be a success: 200, with no errors and no
        messages.
        """
        status, answer = self.call(method, url, data, headers)
        self.assertEqual((status, answer["success"], answer["errors"], answer["messages"]), (200, True, [], []), answer)
        return answer["result"]

    def assertCfError(self, result, status, code, text=""):
        self.assertEqual(result[0], status, result)
        self.assertEqual((result[1]["success"], result[1]["result"]), (False, None))
        self.assertEqual(result[1]["errors"][0]["code"], code, result)
        self.assertIn(text, result[1]["errors"][0]["message"])

    def upload(self, *parts, url=SCRIPT, method="PUT"):
        return self.ok(method, url, body(*parts), UPLOAD)

    def deployed(self):
        """
        Deploy the first version of C{hello}, with a plain-text binding GREETING.
        """
        return self.upload(metadata(bindings=[{"name": "GREETING", "type": "plain_text", "text": "hi"}]), INDEX)
