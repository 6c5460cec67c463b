"""
HTTP/1.1 as the proxy speaks it: reading a request's head, the headers that go no further
than one hop, and the heads and answers funcplane writes.
"""

from twisted.trial.unittest import SynchronousTestCase

from funcplane.edge.http1 import (
    CHUNKED,
    forwardable,
    plain_response,
    read_head,
    response_head,
    unreadable,
)


class ForwardableTests(SynchronousTestCase):
    def test_forwardable(self):
        """
        Hop-by-hop headers, those a Connection header names (in any case) and those asked for
        are dropped; the others pass in order.
        """
        headers = [(b"Connection", b"close, X-A"), (b"x-a", b"1"), (b"X-B", b"2"), (b"Upgrade", b"h2")]
        self.assertEqual(forwardable(headers), [(b"X-B", b"2")])
        self.assertEqual(forwardable(headers, frozenset([b"x-b"])), [])


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
            request.to_child(b"192.0.2.1", b"https", b"a"),
            b"PUT /p?q HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\nX-Forwarded-For: 192.0.2.1\r\n"
            b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\nContent-Length: 3\r\n\r\n",
        )
        chunked = head(b"Host: a\r\nTransfer-Encoding: chunked", method=b"POST")
        self.assertTrue(chunked.to_child(b"c", b"http", b"a").endswith(b"Transfer-Encoding: chunked\r\n\r\n"))
        upgrade = head(b"Host: a\r\nConnection: Upgrade\r\nUpgrade: websocket")
        self.assertTrue(
            upgrade.to_child(b"c", b"http", b"a").endswith(
                b"X-Forwarded-Host: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            )
        )

    def test_forwarded_by(self):
        """
        Through a trusted proxy, the last claimed proto and host are kept, and the proxy's
        address ends the For chain; what was not claimed is funcplane's own view.
        """
        claimed = head(
            b"Host: a\r\nX-Forwarded-For: 198.51.100.7\r\nX-Forwarded-For: 10.0.0.1\r\n"
            b"X-Forwarded-Proto: http\r\nX-Forwarded-Proto: https"
        )
        self.assertEqual(
            claimed.forwarded_by(b"203.0.113.9", b"http"),
            (b"198.51.100.7, 10.0.0.1, 203.0.113.9", b"https", b"a"),
        )
        self.assertEqual(head(b"Host: a").forwarded_by(b"203.0.113.9", b"http"), (b"203.0.113.9", b"http", b"a"))

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
        headers as they were, then funcplane's framing and close.
        """
        headers = [(b"X-A", b"1"), (b"Keep-Alive", b"5"), (b"Transfer-Encoding", b"chunked"), (b"X-B", b"2")]
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
