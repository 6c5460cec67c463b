"""
Tests for L{funcplane.kv_binding}: workerd's KV protocol, as raw HTTP/1.1 bytes on a
channel, answered from a real L{KV} on an in-memory store.
"""

import json

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from funcplane import kv
from funcplane.kv_binding import BoundedRequest, kv_site
from funcplane.store.kv import SQLiteKV
from tests.fakes import memory_store

NOW = 1_800_000_000
NS = "a" * 32
OTHER = "b" * 32


def request(method, target, body=b"", headers=(), namespace=NS):
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: fake-host"]
    if namespace is not None:
        lines.append(b"X-FP-Namespace: " + namespace.encode())
    lines += list(headers)
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class KVProtocolTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        ids = iter([NS, OTHER])
        self.kv = kv.KV(self.clock, SQLiteKV(memory_store(self)), new_id=lambda: next(ids))
        self.successResultOf(self.kv.create_namespace("bound"))
        self.successResultOf(self.kv.create_namespace("other"))
        self.site = kv_site(self.kv, self.clock)([NS])

    def exchange(self, raw):
        """
        Send C{raw} on a new connection; return C{(status line, headers dict, body)}.
        """
        channel = self.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(raw)
        head, _, body = transport.value().partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(b": ")
            headers[name.lower()] = value
        channel.connectionLost(None)
        return status, headers, body

    def put(self, key_path, body, *headers, query=""):
        return self.exchange(request("PUT", f"/{key_path}?urlencoded=true{query}", body, headers))

    def test_put_get_delete(self):
        """
        A put stores the value and its raw UTF-8 metadata; a get answers them (metadata in
        C{CF-KV-Metadata}, C{CF-Cache-Status: MISS}); a delete removes the key, and a get of
        a missing key answers 404 (null in JavaScript).
        """
        meta = '{"owner":"é"}'.encode()
        self.assertEqual(self.put("k", b"\x00value", b"CF-KV-Metadata: " + meta)[0], b"HTTP/1.1 200 OK")
        status, headers, body = self.exchange(request("GET", "/k?urlencoded=true"))
        self.assertEqual((status, body), (b"HTTP/1.1 200 OK", b"\x00value"))
        self.assertEqual((headers[b"cf-kv-metadata"], headers[b"cf-cache-status"]), (meta, b"MISS"))
        self.assertEqual(self.successResultOf(self.kv.get(NS, "k")).metadata, '{"owner":"é"}')
        self.assertEqual(self.exchange(request("DELETE", "/k?urlencoded=true"))[0], b"HTTP/1.1 200 OK")
        self.assertEqual(self.exchange(request("GET", "/k?urlencoded=true"))[0][:12], b"HTTP/1.1 404")

    def test_key_encoding(self):
        """
        The key is the path percent-decoded as UTF-8, C{+} kept (kj's path encoding); a
        path that is not UTF-8 is refused with Cloudflare's message.
        """
        self.put("a%20key%2F%C3%BC%3F&+=", b"v")
        self.assertEqual(self.successResultOf(self.kv.get(NS, "a key/ü?&+=")).value, b"v")
        self.assertEqual(self.exchange(request("DELETE", "/a%20key%2F%C3%BC%3F%26%2B%3D"))[0], b"HTTP/1.1 200 OK")
        self.failureResultOf(self.kv.get(NS, "a key/ü?&+="))
        self.assertEqual(
            self.exchange(request("GET", "/%FF?urlencoded=true"))[0],
            b"HTTP/1.1 400 Could not URL-decode key name",
        )

    def test_put_limits(self):
        """
        Expiration, metadata and value limits answer Cloudflare's status and message as the
        reason phrase, and store nothing.
        """
        cases = [
            ("&expiration_ttl=10", (), b"400 Invalid expiration_ttl of 10. Expiration TTL must be at least 60."),
            ("&expiration_ttl=x", (), b"400 Invalid expiration_ttl of x. Please specify integer greater than 0."),
            (
                "&expiration=1000",
                (),
                b"400 Invalid expiration of 1000. Please specify integer greater than the current"
                b" number of seconds since the UNIX epoch.",
            ),
            (
                f"&expiration={NOW + 30}",
                (),
                f"400 Invalid expiration of {NOW + 30}. Expiration times must be at least 60 seconds"
                " in the future.".encode(),
            ),
            ("", (b'CF-KV-Metadata: "' + b"m" * 1100 + b'"',), b"413 Metadata length of 1102 exceeds limit of 1024."),
        ]
        for query, headers, expected in cases:
            self.assertEqual(self.put("k", b"v", *headers, query=query)[0], b"HTTP/1.1 " + expected)
        status = self.put("k", b"x" * (kv.VALUE_BYTES + 1))[0]
        self.assertEqual(status, b"HTTP/1.1 413 Value length of 26214401 exceeds limit of 26214400.")
        self.assertEqual(self.exchange(request("GET", "/k?urlencoded=true"))[0][:12], b"HTTP/1.1 404")
        self.put("k", b"v", query="&expiration_ttl=60")
        self.assertEqual(self.successResultOf(self.kv.get(NS, "k")).expiration, NOW + 60)
        self.clock.advance(60)
        self.assertEqual(self.exchange(request("GET", "/k?urlencoded=true"))[0][:12], b"HTTP/1.1 404")

    def test_body_beyond_limit_not_kept(self):
        """
        A body longer than a value can be is counted but not kept, and refused as too large.
        """
        self.patch(kv, "VALUE_BYTES", 5)
        self.patch(BoundedRequest, "max_body", 10)
        status = self.put("k", b"x" * 20)[0]
        self.assertEqual(status, b"HTTP/1.1 413 Value length of 20 exceeds limit of 5.")
        self.assertEqual(self.exchange(request("GET", "/k?urlencoded=true"))[0][:12], b"HTTP/1.1 404")

    def test_cache_ttl(self):
        """
        A cache_ttl under 30 s is refused on a get and a bulk get; 30 and more is accepted.
        """
        self.put("k", b"v")
        self.assertEqual(
            self.exchange(request("GET", "/k?urlencoded=true&cache_ttl=5"))[0],
            b"HTTP/1.1 400 Invalid cache_ttl of 5. Cache TTL must be at least 30.",
        )
        self.assertEqual(self.exchange(request("GET", "/k?urlencoded=true&cache_ttl=30"))[2], b"v")
        body = json.dumps({"keys": ["k"], "cacheTtl": "10"}).encode()
        self.assertEqual(
            self.exchange(request("POST", "/bulk/get", body))[0],
            b"HTTP/1.1 400 Invalid cache_ttl of 10. Cache TTL must be at least 30.",
        )

    def test_list(self):
        """
        A list answers keys with expiration and metadata, pages by limit and cursor, takes
        a form-encoded prefix (C{+} a space), and refuses limits out of range.
        """
        for i in range(3):
            self.put(f"p%20{i}", b"v", b'CF-KV-Metadata: {"i":%d}' % i, query="&expiration_ttl=100" if i == 0 else "")
        self.put("q", b"v")
        status, headers, body = self.exchange(request("GET", "/?key_count_limit=2&prefix=p+"))
        page = json.loads(body)
        self.assertEqual(headers[b"content-type"], b"application/json")
        self.assertEqual(
            page["keys"],
            [{"name": "p 0", "expiration": NOW + 100, "metadata": {"i": 0}}, {"name": "p 1", "metadata": {"i": 1}}],
        )
        self.assertFalse(page["list_complete"])
        rest = json.loads(self.exchange(request("GET", f"/?prefix=p%20&cursor={page['cursor']}"))[2])
        self.assertEqual(rest, {"keys": [{"name": "p 2", "metadata": {"i": 2}}], "list_complete": True})
        everything = json.loads(self.exchange(request("GET", "/"))[2])
        self.assertEqual([k["name"] for k in everything["keys"]], ["p 0", "p 1", "p 2", "q"])
        self.assertEqual(
            self.exchange(request("GET", "/?key_count_limit=1001"))[0],
            b"HTTP/1.1 400 Invalid key_count_limit of 1001. Please specify an integer less than 1000.",
        )
        self.assertEqual(
            self.exchange(request("GET", "/?key_count_limit=0"))[0],
            b"HTTP/1.1 400 Invalid key_count_limit of 0. Please specify an integer greater than 0.",
        )

    def test_list_over_a_thousand(self):
        """
        1,500 keys list in two pages: 1,000, then the 500 left with list_complete.
        """
        entries = [kv.entry(NOW, f"k{i:04d}", b"v") for i in range(1500)]
        self.successResultOf(self.kv.put_many(NS, entries))
        first = json.loads(self.exchange(request("GET", "/"))[2])
        second = json.loads(self.exchange(request("GET", f"/?cursor={first['cursor']}"))[2])
        self.assertEqual((len(first["keys"]), first["list_complete"]), (1000, False))
        self.assertEqual(
            [k["name"] for k in first["keys"] + second["keys"]], [f"k{i:04d}" for i in range(1500)]
        )
        self.assertTrue(second["list_complete"])

    def bulk(self, **body):
        return self.exchange(request("POST", "/bulk/get", json.dumps(body).encode()))

    def test_bulk_get(self):
        """
        A bulk get answers a JSON object of the keys: text, parsed JSON, with metadata, and
        null for a missing key.
        """
        self.put("j", b'{"a":1}', b'CF-KV-Metadata: {"m":true}')
        self.put("t", b"text")
        self.assertEqual(json.loads(self.bulk(keys=["j", "t", "nope"])[2]), {"j": '{"a":1}', "t": "text", "nope": None})
        self.assertEqual(json.loads(self.bulk(keys=["j"], type="json")[2]), {"j": {"a": 1}})
        self.assertEqual(
            json.loads(self.bulk(keys=["j", "nope"], type="json", withMetadata=True)[2]),
            {"j": {"value": {"a": 1}, "metadata": {"m": True}}, "nope": None},
        )

    def test_bulk_get_refusals(self):
        """
        A bulk get of too many or no keys, of a bad type, of a non-JSON value as json, or
        of bad key names is refused with Cloudflare's messages.
        """
        self.put("t", b"text")
        cases = [
            ({"keys": [str(i) for i in range(101)]}, b"400 You can request a maximum of 100 keys"),
            ({"keys": []}, b"400 You must request a minimum of 1 key"),
            ({"keys": ["t"], "type": "stream"}, b'400 "stream" is not a valid type. Use "json" or "text"'),
            ({"keys": ["t"], "type": "json"}, b"400 At least one of the requested keys corresponds to a non-json value"),
            ({"keys": [""]}, b"400 Key names must not be empty"),
            ({"keys": [".."]}, b'400 Illegal key name "..". Please use a different name.'),
            ({"keys": ["k" * 513]}, b"414 UTF-8 encoded length of 513 exceeds key length limit of 512."),
        ]
        for body, expected in cases:
            self.assertEqual(self.bulk(**body)[0], b"HTTP/1.1 " + expected, body)

    def test_bulk_total_size(self):
        """
        A bulk get whose values are over 25 MiB together is refused (413).
        """
        half = b"x" * (kv.VALUE_BYTES // 2 + 1)
        self.successResultOf(self.kv.put_many(NS, [kv.entry(NOW, "a", half), kv.entry(NOW, "b", half)]))
        self.assertEqual(
            self.bulk(keys=["a", "b"])[0], b"HTTP/1.1 413 Total size of request exceeds the limit of 25MB"
        )

    def test_unbound_namespace(self):
        """
        A request for a namespace the version does not bind, or with no namespace header,
        is refused (403) and reaches nothing: the other namespace's key is unread and
        unwritten.
        """
        self.successResultOf(self.kv.put(OTHER, "k", b"secret"))
        for namespace in (OTHER, None, "nope"):
            for method, body in (("GET", b""), ("PUT", b"mine"), ("DELETE", b"")):
                status = self.exchange(request(method, "/k?urlencoded=true", body, namespace=namespace))[0]
                self.assertEqual(status, b"HTTP/1.1 403 namespace not bound", (namespace, method))
        self.assertEqual(self.exchange(request("GET", "/", namespace=OTHER))[0], b"HTTP/1.1 403 namespace not bound")
        self.assertEqual(self.successResultOf(self.kv.get(OTHER, "k")).value, b"secret")

    def test_reason_phrase_one_line(self):
        """
        A message with line breaks reaches the reason phrase on one line.
        """
        status = self.put("k", b"v", query="&expiration_ttl=%0Ax")[0]
        self.assertEqual(status, b"HTTP/1.1 400 Invalid expiration_ttl of  x. Please specify integer greater than 0.")
