"""
HTTP/1.1 as the proxy speaks it: reading a request's head, the headers that go no further
than one hop, and the heads and answers funcplane writes.
"""

from twisted.trial.unittest import SynchronousTestCase

from funcplane.edge.forwarding import TrustedProxies
from funcplane.edge.http1 import (
    CHUNKED,
    FRAMING_SLACK,
    framing_excess,
    plain_response,
    read_head,
    response_head,
    unreadable,
    without_named,
)


class WithoutNamedTests(SynchronousTestCase):
    def test_named_dropped(self):
        """
        The headers a Connection header names, in any case and however listed, are dropped;
        the others pass in order.
        """
        headers = [(b"x-a", b"1"), (b"X-B", b"2"), (b"X-C", b"3"), (b"Keep", b"4")]
        self.assertEqual(
            without_named(headers, [b"close, X-A", b" x-c "]), [(b"X-B", b"2"), (b"Keep", b"4")]
        )


def head(extra=b"", method=b"GET", target=b"/", http11=True, keep_alive=True):
    """
    The L{RequestHead} of a request with headers C{extra} (C{name: value} lines).
    """
    headers = [tuple(line.split(b": ", 1)) for line in extra.split(b"\r\n") if line]
    return read_head(method, target, headers, http11, keep_alive)


class RequestHeadTests(SynchronousTestCase):
    """
    A request's head is read once, in one pass over its headers, into the facts the
    exchange relays it by.
    """

    def test_facts(self):
        """
        The host, the body's framing and the client's expectations are read from the
        headers, whatever their case.
        """
        plain = head(b"HOST: a.func.local\r\nX-A: 1")
        self.assertEqual(
            (plain.host, plain.body, plain.keep_alive, plain.upgrade, plain.expect_continue, plain.malformed),
            (b"a.func.local", None, True, False, False, None),
        )
        posted = head(b"Host: a\r\nContent-Length: 12\r\nExpect: 100-Continue", method=b"POST")
        self.assertEqual((posted.body, posted.expect_continue), (12, True))
        self.assertEqual(head(b"Host: a\r\nTransfer-Encoding: chunked").body, CHUNKED)
        self.assertEqual(plain.header(b"x-a"), b"1")
        self.assertIsNone(plain.header(b"x-b"))

    def test_upgrade(self):
        """
        Only an HTTP/1.1 GET that names websocket in Upgrade and upgrade in Connection asks
        to upgrade; after it, nothing more on the connection is read as HTTP.
        """
        asks = b"Host: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket"
        upgrade = head(asks)
        self.assertEqual((upgrade.upgrade, upgrade.keep_alive), (True, False))
        self.assertFalse(head(asks, method=b"POST").upgrade)
        self.assertFalse(head(asks, http11=False).upgrade)
        self.assertFalse(head(b"Host: a\r\nUpgrade: websocket").upgrade)
        self.assertFalse(head(b"Host: a\r\nConnection: upgrade\r\nUpgrade: h2c").upgrade)

    def test_keep_alive(self):
        """
        An HTTP/1.0 client, or one httptools says wants the connection closed, gets no
        further request read; an HTTP/1.0 client is never sent 100 Continue.
        """
        self.assertFalse(head(b"Host: a", http11=False).keep_alive)
        self.assertFalse(head(b"Host: a", keep_alive=False).keep_alive)
        self.assertFalse(head(b"Host: a\r\nExpect: 100-continue", http11=False).expect_continue)

    def test_malformed(self):
        """
        A head funcplane answers itself says so, with the status, the message and whether
        the connection closes after it; a missing or doubled Host is found first.
        """
        self.assertEqual(head(b"X-A: 1").malformed, (400, "a request needs exactly one Host header", True))
        self.assertIsNone(head(b"Host: a\r\nHost: b").host)
        self.assertEqual(head(b"Host: a\r\nHost: b", target=b"x").malformed[0], 400)
        self.assertEqual(
            head(b"Host: a", target=b"http://a/").malformed,
            (400, "the request target must be a path, such as /index.html", False),
        )
        self.assertIsNone(head(b"Host: a", method=b"OPTIONS", target=b"*").malformed)
        self.assertEqual(head(b"Host: a", method=b"GET", target=b"*").malformed[0], 400)
        coded = (501, "only the chunked transfer coding is supported", False)
        self.assertEqual(head(b"Host: a\r\nTransfer-Encoding: gzip, chunked").malformed, coded)
        self.assertEqual(
            head(b"Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked").malformed, coded
        )

    def test_to_child(self):
        """
        Towards a child a request is HTTP/1.1, keeps its end-to-end headers in order, loses
        the hop-by-hop ones and those its Connection header names, Expect and the client's
        X-Forwarded claims, and carries funcplane's own X-Forwarded headers and framing.
        """
        request = head(
            b"Host: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: h\r\nX-A: 1\r\nExpect: 100-continue\r\n"
            b"X-Forwarded-For: 10.0.0.1\r\nContent-Length: 3\r\nTE: trailers\r\nX-B: 2",
            method=b"PUT",
            target=b"/p?q",
            http11=False,
        )
        self.assertEqual(
            request.to_child(b"192.0.2.1", b"https", b"a", b"192.0.2.1"),
            b"PUT /p?q HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\nX-Forwarded-For: 192.0.2.1\r\n"
            b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\nCF-Connecting-IP: 192.0.2.1\r\n"
            b"Content-Length: 3\r\n\r\n",
        )
        chunked = head(b"Host: a\r\nTransfer-Encoding: chunked", method=b"POST")
        self.assertTrue(
            chunked.to_child(b"c", b"http", b"a", b"c").endswith(b"Transfer-Encoding: chunked\r\n\r\n")
        )
        upgrade = head(b"Host: a\r\nConnection: Upgrade\r\nUpgrade: websocket")
        self.assertTrue(
            upgrade.to_child(b"c", b"http", b"a", b"c").endswith(
                b"CF-Connecting-IP: c\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            )
        )

    def test_client_claims_dropped(self):
        """
        A client's claims about itself, or about what a proxy in front would know
        (CF-Connecting-IP, True-Client-IP, X-Real-IP, Forwarded and every CF-* header, in
        any case), never reach a child; funcplane's own CF-Connecting-IP does, once.
        Headers that only begin like them pass.
        """
        request = head(
            b"Host: a\r\nCF-Connecting-IP: 6.6.6.6\r\ncf-connecting-ip: 6.6.6.7\r\n"
            b"True-Client-IP: 6.6.6.8\r\nX-Real-IP: 6.6.6.9\r\nForwarded: for=6.6.6.10\r\n"
            b"CF-Ray: 1-LHR\r\nCf-IPCountry: XX\r\nCF-Visitor: {}\r\nCFX: kept\r\n"
            b"X-CF-Kept: k\r\nForwarded-Kept: f"
        )
        self.assertEqual(
            request.to_child(b"192.0.2.1", b"http", b"a", b"192.0.2.1"),
            b"GET / HTTP/1.1\r\nHost: a\r\nCFX: kept\r\nX-CF-Kept: k\r\nForwarded-Kept: f\r\n"
            b"X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n"
            b"CF-Connecting-IP: 192.0.2.1\r\n\r\n",
        )

    def test_proxy_claims_kept(self):
        """
        From a trusted proxy, its claims pass (CF-Ray, X-Real-IP, Forwarded...), but
        CF-Connecting-IP only as funcplane sets it.
        """
        request = head(
            b"Host: a\r\nCF-Connecting-IP: 198.51.100.7\r\nCF-Ray: 1-LHR\r\nX-Real-IP: 198.51.100.7\r\n"
            b"Forwarded: for=198.51.100.7"
        )
        self.assertEqual(
            request.to_child(b"198.51.100.7, 10.0.0.2", b"https", b"a", b"198.51.100.7", trusted=True),
            b"GET / HTTP/1.1\r\nHost: a\r\nCF-Ray: 1-LHR\r\nX-Real-IP: 198.51.100.7\r\n"
            b"Forwarded: for=198.51.100.7\r\nX-Forwarded-For: 198.51.100.7, 10.0.0.2\r\n"
            b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\nCF-Connecting-IP: 198.51.100.7\r\n\r\n",
        )

    def test_forwarded_by(self):
        """
        Through a trusted proxy, the last claimed proto and host are kept, and the proxy's
        address ends the For chain; the client is the one its CF-Connecting-IP names, else
        the last untrusted hop of the chain; what was not claimed is funcplane's own view.
        """
        trusted = TrustedProxies(["10.0.0.0/8", "203.0.113.0/24"])
        claimed = head(
            b"Host: a\r\nX-Forwarded-For: 198.51.100.7\r\nX-Forwarded-For: 10.0.0.1\r\n"
            b"X-Forwarded-Proto: http\r\nX-Forwarded-Proto: https"
        )
        self.assertEqual(
            claimed.forwarded_by(b"203.0.113.9", b"http", trusted),
            (b"198.51.100.7, 10.0.0.1, 203.0.113.9", b"https", b"a", b"198.51.100.7"),
        )
        named = head(b"Host: a\r\nX-Forwarded-For: 198.51.100.7\r\nCF-Connecting-IP: 192.0.2.5")
        self.assertEqual(named.forwarded_by(b"203.0.113.9", b"http", trusted)[3], b"192.0.2.5")
        self.assertEqual(
            head(b"Host: a").forwarded_by(b"203.0.113.9", b"http", trusted),
            (b"203.0.113.9", b"http", b"a", b"203.0.113.9"),
        )

    def test_unreadable(self):
        """
        A request that could not be read is answered with what was wrong, and closes.
        """
        request = unreadable(408, "too slow")
        self.assertEqual(
            (request.method, request.body, request.keep_alive, request.upgrade, request.malformed),
            (None, None, False, False, (408, "too slow", True)),
        )


class ResponseHeadTests(SynchronousTestCase):
    def test_response_head(self):
        """
        A child's response head reaches the client with its status line and end-to-end
        headers as they were (the upstream connection has left out the hop-by-hop ones),
        then funcplane's framing and close.
        """
        headers = [(b"X-A", b"1"), (b"X-B", b"2")]
        self.assertEqual(
            response_head(200, b"Fine", headers, chunked=True, close=True),
            b"HTTP/1.1 200 Fine\r\nX-A: 1\r\nX-B: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        self.assertEqual(
            response_head(404, b"Not Found", [(b"Content-Length", b"0")], chunked=False, close=False),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        )

    def test_plain_response(self):
        """
        funcplane's own answers are short plain text, with their length; the answer to a
        HEAD keeps the length and leaves the body out.
        """
        self.assertEqual(
            plain_response(404, "no such thing", close=False),
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: 14\r\n\r\nno such thing\n",
        )
        self.assertEqual(
            plain_response(503, "busy", close=True, head_only=True),
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: 5\r\nConnection: close\r\n\r\n",
        )


class TrustedProxiesTests(SynchronousTestCase):
    """
    Behind trusted proxies, the client is the last hop of X-Forwarded-For that is not one
    of them.
    """

    def setUp(self):
        self.trusted = TrustedProxies(["10.0.0.0/8", "2001:db8::/32"])

    def test_trusts(self):
        """
        An address is trusted when a trusted network holds it; anything else, and any
        address when no network is trusted, is not.
        """
        self.assertEqual(
            [self.trusted.trusts(a) for a in ["10.1.2.3", "2001:db8::1", "192.0.2.1", "unix", ""]],
            [True, True, False, False, False],
        )
        self.assertFalse(TrustedProxies().trusts("10.1.2.3"))

    def test_client(self):
        """
        The chain is walked from its end, over every value and comma: trusted hops are
        passed, the first untrusted one is the client; a chain of trusted hops only names
        its first; no chain names the proxy itself.
        """
        client = self.trusted.client
        proxy = b"10.0.0.1"
        self.assertEqual(client([b"6.6.6.6, 198.51.100.7", b"10.2.0.1 ,10.3.0.1"], proxy), b"198.51.100.7")
        self.assertEqual(client([b"10.9.0.1, 2001:db8::5"], proxy), b"10.9.0.1")
        self.assertEqual(client([b"2001:db8::5, 2001:db9::7"], proxy), b"2001:db9::7")
        self.assertEqual(client([], proxy), proxy)

    def test_garbage_ends_the_walk(self):
        """
        A hop that is no address cannot be believed, nor anything before it: the last
        trusted hop after it is the client, or the proxy when there is none.
        """
        client = self.trusted.client
        proxy = b"10.0.0.1"
        self.assertEqual(client([b"198.51.100.7, evil\xff, 10.2.0.1"], proxy), b"10.2.0.1")
        self.assertEqual(client([b"198.51.100.7, 1.2.3.4:80"], proxy), proxy)
        self.assertEqual(client([b""], proxy), proxy)


class FramingTests(SynchronousTestCase):
    """
    A chunked body's framing may run only L{FRAMING_SLACK} bytes beyond what its data
    allows (16 bytes a chunk, twice its data).
    """

    def test_allowance(self):
        """
        Plain chunks, however small, never build up an excess; extensions and trailers
        do, byte for byte, and data pays an excess back down to zero, never below.
        """
        one_byte_chunks = b"1\r\nx\r\n" * 1000
        self.assertEqual(framing_excess(0, len(one_byte_chunks), 1000, 1000), 0)
        extended = b"1;" + b"e" * 5000 + b"\r\nx\r\n"
        excess = framing_excess(0, len(extended), 1, 1)
        self.assertEqual(excess, len(extended) - 3 - 16)
        self.assertGreater(excess, FRAMING_SLACK)
        self.assertEqual(framing_excess(100, 100, 0, 0), 200)
        self.assertEqual(framing_excess(100, 1000, 900, 1), 0)
