"""
Tests for L{funcplane.admin.cloudflare.kv}: Workers KV's REST API as wrangler 4.86 calls
it, answering Cloudflare's bodies, lists with their C{result_info}, and its errors.
"""

import base64
import json

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from funcplane import kv
from funcplane.admin.api import AdminAPI
from funcplane.admin.cloudflare import features
from funcplane.admin.cloudflare.api import CloudflareAPI
from funcplane.admin.guard import KV_WRITE_BYTES, AdminGuard
from funcplane.admin.parse import Limits
from tests.admin.cloudflare.harness import BASE, CloudflareCase
from tests.fakes import AUTH

NAMESPACES = BASE + "/storage/kv/namespaces"
FIRST = "000000000000000000000000000000a1"
VALUES = f"{NAMESPACES}/{FIRST}/values/"
NOW = 1_800_000_000
BOUNDARY = "----formdata-undici-0123456789"


def multipart(filename=None, **parts):
    """
    A C{multipart/form-data} body of C{parts} (name -> bytes) as wrangler sends a value
    with metadata (the value a file part named C{filename} when it comes from C{--path}),
    and its headers.
    """
    chunks = []
    for name, content in parts.items():
        named = f'; filename="{filename}"' if filename and name == "value" else ""
        chunks.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"{named}\r\n\r\n'.encode())
        chunks.append(content + b"\r\n")
    chunks.append(f"--{BOUNDARY}--\r\n".encode())
    headers = {**AUTH, b"Content-Type": [f"multipart/form-data; boundary={BOUNDARY}".encode()]}
    return b"".join(chunks), headers


class KVCase(CloudflareCase):
    def setUp(self):
        super().setUp()
        self.namespace = self.ok("POST", NAMESPACES, {"title": "cache"})

    def raw(self, method, url, data=None, headers=AUTH):
        """
        The status, headers and bytes of an answer.
        """
        d = self.client.request(method, url, data=data, headers=headers)
        self.client.flush()
        response = self.successResultOf(d)
        return response.code, response.headers, self.successResultOf(self.client.content(response))

    def value(self, key):
        status, _, content = self.raw("GET", VALUES + key)
        self.assertEqual(status, 200, content)
        return content

    def keys(self, query="prefix="):
        status, answer = self.call("GET", f"{NAMESPACES}/{FIRST}/keys?{query}")
        self.assertEqual((status, answer["success"]), (200, True), answer)
        return answer["result"], answer["result_info"]


class NamespaceRouteTests(KVCase):
    """
    C{wrangler kv namespace create/list/rename/delete}.
    """

    def test_create(self):
        """
        A namespace is made with the title given and answered with its id, which reads it.
        """
        self.assertEqual(self.namespace, {"id": FIRST, "title": "cache", "supports_url_encoding": True})
        self.assertEqual(self.ok("GET", f"{NAMESPACES}/{FIRST}"), self.namespace)

    def test_title_taken(self):
        """
        A second namespace of the same title is refused with Cloudflare's code 10014 (which
        wrangler turns into its own advice) and a 4xx status (the SDK needs one).
        """
        self.assertCfError(self.call("POST", NAMESPACES, {"title": "cache"}), 400, 10014, "already exists")
        self.assertCfError(self.call("POST", NAMESPACES, {"title": ""}), 400, 10021, "title")

    def test_list_pages(self):
        """
        The list honours C{page} and C{per_page} (wrangler asks for pages until one is
        empty) and C{order=title}, and says where it is in C{result_info}.
        """
        for title in ["b", "a"]:
            self.ok("POST", NAMESPACES, {"title": title})
        url = NAMESPACES + "?per_page=2&order=title&direction=asc&page="
        _, first = self.call("GET", url + "1")
        self.assertEqual([n["title"] for n in first["result"]], ["a", "b"])
        self.assertEqual(
            first["result_info"], {"page": 1, "per_page": 2, "count": 2, "total_count": 3, "total_pages": 2}
        )
        self.assertEqual([n["title"] for n in self.ok("GET", url + "2")], ["cache"])
        self.assertEqual(self.ok("GET", url + "3"), [])
        self.assertEqual(len(self.ok("GET", NAMESPACES + "?per_page=1000&order=title&direction=asc")), 3)
        self.assertCfError(self.call("GET", NAMESPACES + "?per_page=1001"), 400, 10021, "per_page")

    def test_rename(self):
        """
        A rename answers the namespace with its new title (wrangler prints C{result.title}).
        """
        renamed = self.ok("PUT", f"{NAMESPACES}/{FIRST}", {"title": "new"})
        self.assertEqual(renamed, {"id": FIRST, "title": "new", "supports_url_encoding": True})

    def test_delete(self):
        """
        A deleted namespace is gone, with its keys: reading it is 404, code 10013.
        """
        self.raw("PUT", VALUES + "k", b"v")
        self.assertEqual(self.ok("DELETE", f"{NAMESPACES}/{FIRST}"), {})
        self.assertCfError(self.call("GET", f"{NAMESPACES}/{FIRST}"), 404, 10013)
        self.assertCfError(self.call("GET", VALUES + "k"), 404, 10013)
        self.assertEqual(self.ok("GET", NAMESPACES), [])

    def test_without_kv(self):
        """
        A funcplane without KV refuses its routes with the KV feature's message.
        """
        cloudflare = CloudflareAPI(self.platform, self.checker, Limits(), self.clock, self.tails)
        api = AdminAPI(self.platform, self.checker, Limits(), "func.local", 8081, clock=self.clock, cloudflare=cloudflare)
        self.client = StubTreq(api.resource())
        self.assertCfError(self.call("GET", NAMESPACES), 403, 10015, features.KV.message)


class ValueRouteTests(KVCase):
    """
    C{wrangler kv key put/get/delete --remote}, one key at a time.
    """

    def test_put_get_raw(self):
        """
        A raw body is stored as it is, bytes and all, and answered raw, outside the
        envelope.
        """
        self.assertEqual(self.ok("PUT", VALUES + "k", b"\x00\x01\xff"), {})
        status, headers, content = self.raw("GET", VALUES + "k")
        self.assertEqual((status, content), (200, b"\x00\x01\xff"))
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/octet-stream"])

    def test_key_encoding(self):
        """
        A key's name is the path's segment percent-decoded once: C{%2F} is a slash in the
        name, C{%2541} is C{%41}, C{+} stays C{+}.
        """
        for path, name in [("a%2Fb%20c%3F", "a/b c?"), ("%2541", "%41"), ("+plus", "+plus"), ("%C3%A9", "é")]:
            self.ok("PUT", VALUES + path, name.encode())
            self.assertEqual(self.value(path), name.encode())
        listed, _ = self.keys()
        self.assertEqual([k["name"] for k in listed], ["%41", "+plus", "a/b c?", "é"])

    def test_missing(self):
        """
        A key that does not exist is 404 with Cloudflare's code 10009.
        """
        self.assertCfError(self.call("GET", VALUES + "nope"), 404, 10009, "key not found")
        self.assertCfError(self.call("GET", f"{NAMESPACES}/{FIRST}/metadata/nope"), 404, 10009)

    def test_metadata_multipart(self):
        """
        A multipart body's C{value} and C{metadata} parts (wrangler's C{--metadata}) store
        both; the list and the metadata route show the metadata as an object.
        """
        data, headers = multipart(value=b"hello", metadata=b'{"a":1}')
        self.assertEqual(self.ok("PUT", VALUES + "k", data, headers), {})
        self.assertEqual(self.value("k"), b"hello")
        self.assertEqual(self.keys()[0], [{"name": "k", "metadata": {"a": 1}}])
        self.assertEqual(self.ok("GET", f"{NAMESPACES}/{FIRST}/metadata/k"), {"a": 1})
        data, headers = multipart(filename="blob", value=b"\x00\xff", metadata=b"[2]")
        self.ok("PUT", VALUES + "file", data, headers)
        self.assertEqual(self.value("file"), b"\x00\xff")
        self.assertEqual(self.ok("GET", f"{NAMESPACES}/{FIRST}/metadata/file"), [2])
        data, headers = multipart(value=b"v", metadata=b'"' + b"m" * 1100 + b'"')
        self.assertCfError(self.call("PUT", VALUES + "k", data, headers), 413, 10021, "Metadata length of 1102 exceeds limit of 1024.")

    def test_expiration(self):
        """
        C{expiration_ttl} and C{expiration} set when the key expires, shown in the list;
        at that time it is gone; too soon is refused with Cloudflare's message.
        """
        self.ok("PUT", VALUES + "ttl?expiration_ttl=60", b"1")
        self.ok("PUT", VALUES + f"at?expiration={NOW + 120}", b"2")
        self.assertEqual(
            self.keys()[0], [{"name": "at", "expiration": NOW + 120}, {"name": "ttl", "expiration": NOW + 60}]
        )
        self.clock.advance(60)
        self.assertCfError(self.call("GET", VALUES + "ttl"), 404, 10009)
        self.assertEqual(self.value("at"), b"2")
        self.assertCfError(
            self.call("PUT", VALUES + "k?expiration_ttl=30", b"v"), 400, 10021,
            "Invalid expiration_ttl of 30. Expiration TTL must be at least 60.",
        )
        self.assertCfError(
            self.call("PUT", VALUES + f"k?expiration={NOW + 61}", b"v"), 400, 10021,
            "Expiration times must be at least 60 seconds in the future.",
        )

    def test_limits(self):
        """
        A 25 MiB value is stored and read back whole; a byte more is 413; a key over 512
        bytes is 414; C{..} is refused.
        """
        big = bytes(range(256)) * (25 * 1024 * 1024 // 256)
        self.assertEqual(len(big), 26_214_400)
        self.ok("PUT", VALUES + "big", big)
        self.assertEqual(self.value("big"), big)
        self.assertCfError(
            self.call("PUT", VALUES + "big", big + b"x"), 413, 10021, "Value length of 26214401 exceeds limit of 26214400."
        )
        self.assertCfError(
            self.call("PUT", VALUES + "k" * 513, b"v"), 414, 10021,
            "UTF-8 encoded length of 513 exceeds key length limit of 512.",
        )
        self.assertCfError(self.call("PUT", VALUES + "%2E%2E", b"v"), 400, 10021, 'Illegal key name ".."')

    def test_delete(self):
        """
        A deleted key is gone; deleting a missing key succeeds, as on Cloudflare.
        """
        self.ok("PUT", VALUES + "k", b"v")
        self.assertEqual(self.ok("DELETE", VALUES + "k"), {})
        self.assertCfError(self.call("GET", VALUES + "k"), 404, 10009)
        self.assertEqual(self.ok("DELETE", VALUES + "k"), {})


class KeysAndBulkRouteTests(KVCase):
    """
    C{wrangler kv key list --remote} and C{wrangler kv bulk put/delete/get --remote}.
    """

    def bulk(self, items):
        return self.ok("PUT", f"{NAMESPACES}/{FIRST}/bulk", items)

    def test_list_over_1000(self):
        """
        2,500 keys list in pages of 1,000, each with its C{count} and the C{cursor} of the
        next, the last with an empty cursor (where wrangler stops); C{limit} and C{prefix}
        narrow a page.
        """
        self.bulk([{"key": f"k{i:04d}", "value": "v"} for i in range(2500)])
        names, cursor, infos = [], None, []
        while cursor != "":
            page, info = self.keys("prefix=" + (f"&cursor={cursor}" if cursor else ""))
            names += [k["name"] for k in page]
            infos.append(info["count"])
            cursor = info["cursor"]
        self.assertEqual((infos, names), ([1000, 1000, 500], [f"k{i:04d}" for i in range(2500)]))
        page, info = self.keys("prefix=k249&limit=3")
        self.assertEqual([k["name"] for k in page], ["k2490", "k2491", "k2492"])
        self.assertEqual(info["count"], 3)
        self.assertNotEqual(info["cursor"], "")
        self.assertCfError(
            self.call("GET", f"{NAMESPACES}/{FIRST}/keys?limit=1001"), 400, 10021,
            "Invalid key_count_limit of 1001. Please specify an integer less than 1000.",
        )

    def test_bulk_put(self):
        """
        A bulk put writes every item (text, base64 bytes, metadata, expiration_ttl) and
        answers the count; one bad item refuses the whole batch, writing none.
        """
        answer = self.bulk([
            {"key": "text", "value": "héllo"},
            {"key": "bin", "value": base64.b64encode(b"\x00\xff").decode(), "base64": True},
            {"key": "meta", "value": "m", "metadata": {"x": [1]}, "expiration_ttl": 3600},
        ])
        self.assertEqual(answer, {"successful_key_count": 3, "unsuccessful_keys": []})
        self.assertEqual((self.value("text"), self.value("bin")), ("héllo".encode(), b"\x00\xff"))
        self.assertIn({"name": "meta", "expiration": NOW + 3600, "metadata": {"x": [1]}}, self.keys()[0])
        self.assertCfError(
            self.call("PUT", f"{NAMESPACES}/{FIRST}/bulk", [{"key": "new", "value": "v"}, {"key": "", "value": "v"}]),
            400, 10021, "Key names must not be empty",
        )
        self.assertCfError(self.call("GET", VALUES + "new"), 404, 10009)

    def test_bulk_delete(self):
        """
        C{DELETE .../bulk} (what wrangler 4.86 sends) and C{POST .../bulk/delete} (the
        SDK's) delete the keys named.
        """
        self.bulk([{"key": k, "value": "v"} for k in "abcd"])
        self.assertEqual(self.ok("DELETE", f"{NAMESPACES}/{FIRST}/bulk", ["a", "b"])["successful_key_count"], 2)
        self.ok("POST", f"{NAMESPACES}/{FIRST}/bulk/delete", ["c"])
        self.assertEqual(self.keys()[0], [{"name": "d"}])

    def test_bulk_get(self):
        """
        C{kv bulk get} reads C{result.values}: text, or JSON, with metadata when asked,
        L{None} for a missing key.
        """
        self.bulk([{"key": "a", "value": '{"n":1}', "metadata": {"m": 2}}])
        url = f"{NAMESPACES}/{FIRST}/bulk/get"
        self.assertEqual(self.ok("POST", url, {"keys": ["a", "z"]}), {"values": {"a": '{"n":1}', "z": None}})
        self.assertEqual(
            self.ok("POST", url, {"keys": ["a"], "type": "json", "withMetadata": True}),
            {"values": {"a": {"value": {"n": 1}, "metadata": {"m": 2}}}},
        )
        self.assertCfError(self.call("POST", url, {"keys": [str(i) for i in range(101)]}), 400, 10021, "maximum of 100")
        self.assertEqual(json.loads(self.seen[-1])["result"], None)


class BodyLimitTests(SynchronousTestCase):
    """
    The admin Site lets a KV write carry a 25 MiB value (and a bulk write up to 100 MiB).
    """

    def test_kv_writes(self):
        """
        A C{PUT} of a value or a bulk write may have up to C{KV_WRITE_BYTES}; anything else,
        a bulk delete included, keeps the default.
        """
        guard = AdminGuard(None, None, None)
        values = b"/client/v4/accounts/abc/storage/kv/namespaces/" + FIRST.encode() + b"/values/a%2Fb?expiration_ttl=60"
        self.assertEqual(guard.body_limit(b"PUT", values, 1000), KV_WRITE_BYTES)
        self.assertEqual(guard.body_limit(b"PUT", values.replace(b"/values/a%2Fb", b"/bulk"), 1000), KV_WRITE_BYTES)
        self.assertEqual(guard.body_limit(b"DELETE", values.replace(b"/values/a%2Fb", b"/bulk"), 1000), 1000)
        self.assertEqual(guard.body_limit(b"POST", values, 1000), 1000)
        self.assertEqual(guard.body_limit(b"PUT", b"/client/v4/accounts/abc/storage/kv/namespaces/x", 1000), 1000)
        self.assertGreater(KV_WRITE_BYTES, kv.VALUE_BYTES + 64 * 1024)
