"""
HTTP/1.1 as the proxy speaks it on both hops: what a request's head says, which headers go
no further than one hop, and the bytes of the heads, chunks and short answers funcplane
writes itself.

Each hop frames the body itself: a request body keeps its Content-Length or is re-chunked
towards the child, and a response body keeps its Content-Length or is chunked (or, for an
HTTP/1.0 client, ended by the close) towards the client. Hop-by-hop headers are dropped both
ways, C{X-Forwarded-*} and C{CF-Connecting-IP} are set by funcplane (see
L{funcplane.edge.forwarding}), and a response gains no header the function did not send
beyond its framing.
"""

from http import HTTPStatus

# How a body is delimited.
NO_BODY = "none"
LENGTH = "length"
CHUNKED = "chunked"
UNTIL_CLOSE = "close"
# A 101 to a WebSocket request: from here on the connection is a tunnel.
UPGRADE = "upgrade"

HOP_BY_HOP = frozenset(
    [
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ]
)
SET_BY_PROXY = frozenset(
    [b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"cf-connecting-ip"]
)
# Each hop frames the body itself; 100-continue is answered by funcplane.
NOT_FORWARDED = SET_BY_PROXY | frozenset([b"content-length", b"expect"])
_NOT_TO_CHILD = HOP_BY_HOP | NOT_FORWARDED
# Claims about the client that only a proxy in front may make: dropped from everyone else's
# requests, as is every header named CF-*.
PROXY_CLAIMS = frozenset([b"true-client-ip", b"x-real-ip", b"forwarded"])
_NOT_FROM_CLIENTS = _NOT_TO_CHILD | PROXY_CLAIMS
CLOUDFLARE_PREFIX = b"cf-"

# A chunked body's framing (its chunk-size lines and their extensions, the line end after
# each chunk's data, its trailer section) may run this many bytes beyond what its data
# allows: 16 bytes a chunk and twice the chunk's data, as Go's net/http allows since
# CVE-2023-39326.  Beyond it: 400 (a request) or a broken-off response (a child's).
FRAMING_SLACK = 4096

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# One chunk of a chunked body: CHUNK % (len(data), data).
CHUNK = b"%x\r\n%s\r\n"
LAST_CHUNK = b"0\r\n\r\n"
UPGRADE_HEADERS = b"Connection: Upgrade\r\nUpgrade: websocket\r\n"


def _tokens(values):
    return {token.strip().lower() for value in values for token in value.split(b",")}


def framing_excess(excess, fed, delivered, chunks):
    """
    The framing bytes of a chunked body beyond its allowance (compare with
    L{FRAMING_SLACK}), after C{fed} more bytes of it were parsed, of which C{delivered} were
    data, in C{chunks} chunks; C{excess} is what it was before.  The parser reports data,
    but neither chunk extensions nor (until each ends) trailers: this counts them.
    """
    excess += fed - 3 * delivered - 16 * chunks
    return excess if excess > 0 else 0


class RequestHead:
    """
    What a request's line and headers say, read once (L{read_head}) when they are complete.

    A value: nothing changes it once built. It is built for every request on the proxy's hot
    path, so it is a plain slotted class rather than a frozen attrs one, whose initialiser
    costs three times as much.

    @ivar method: the method, as bytes (L{None} for a request that could not be read).
    @ivar target: the request target, as bytes.
    @ivar headers: the C{(name, value)} pairs as the client sent them, in order (the list
        the listener collected).
    @ivar http11: whether the request is HTTP/1.1 (else 1.0).
    @ivar keep_alive: whether another request may follow on the connection: HTTP/1.1, no
        C{Connection: close}, and no upgrade (after a request that asks to upgrade, the
        client may already be sending WebSocket frames: nothing more is read as HTTP).
    @ivar host: the value of the one Host header, or L{None} unless there is exactly one.
    @ivar body: how the body is delimited: L{None} (there is none), its length (an
        C{int}), or L{CHUNKED}.
    @ivar upgrade: whether it asks to switch to WebSocket.
    @ivar expect_continue: whether the client waits for C{100 Continue} before its body.
    @ivar malformed: C{(status, message, close)} when funcplane answers the request
        itself, whatever its host, because the head breaks the rules funcplane holds HTTP/1.1
        to; else L{None}.
    """

    __slots__ = (
        "method",
        "target",
        "headers",
        "http11",
        "keep_alive",
        "host",
        "body",
        "upgrade",
        "expect_continue",
        "malformed",
        "_connection",
    )

    def __init__(
        self,
        method,
        target,
        headers,
        http11,
        keep_alive,
        host,
        body,
        upgrade,
        expect_continue,
        malformed,
        connection=None,
    ):
        self.method = method
        self.target = target
        self.headers = headers
        self.http11 = http11
        self.keep_alive = keep_alive
        self.host = host
        self.body = body
        self.upgrade = upgrade
        self.expect_continue = expect_continue
        self.malformed = malformed
        # The values of its Connection headers (which name more hop-by-hop headers), or None.
        self._connection = connection

    def __repr__(self):
        return f"<RequestHead {self.method!r} {self.target!r} host={self.host!r}>"

    def header(self, name):
        """
        The first value of header C{name} (lower-case bytes), or L{None}.
        """
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def forwarded_by(self, proxy, proto, trusted):
        """
        The C{X-Forwarded-For}, C{-Proto}, C{-Host} and C{CF-Connecting-IP} of this
        request when it came through a trusted proxy, at address C{proxy} over C{proto}:
        its claims are kept (the last of each), and its address is added to the For chain.
        The client is the one it names in C{CF-Connecting-IP}, else the one the For chain
        names (L{funcplane.edge.forwarding.TrustedProxies.client} of C{trusted}).
        """
        chain = []
        claimed_proto = claimed_host = claimed_client = None
        for name, value in self.headers:
            name = name.lower()
            if name == b"x-forwarded-for":
                chain.append(value)
            elif name == b"x-forwarded-proto":
                claimed_proto = value
            elif name == b"x-forwarded-host":
                claimed_host = value
            elif name == b"cf-connecting-ip":
                claimed_client = value
        if claimed_client is None:
            claimed_client = trusted.client(chain, proxy)
        chain.append(proxy)
        return (
            b", ".join(chain),
            proto if claimed_proto is None else claimed_proto,
            self.host if claimed_host is None else claimed_host,
            claimed_client,
        )

    def to_child(self, forwarded_for, forwarded_proto, forwarded_host, client, trusted=False):
        """
        This request's head as funcplane sends it to a child: HTTP/1.1, its end-to-end
        headers, C{X-Forwarded-*} as given, C{CF-Connecting-IP: client}, and the framing of
        its body.  Unless it came through a C{trusted} proxy, the claims only a proxy may
        make (L{PROXY_CLAIMS}, C{CF-*}) are dropped.
        """
        drop = _NOT_TO_CHILD if trusted else _NOT_FROM_CLIENTS
        if self._connection is not None:
            drop = drop | _tokens(self._connection)
        head = [self.method, b" ", self.target, b" HTTP/1.1\r\n"]
        for name, value in self.headers:
            name_lower = name.lower()
            # Only the few names that begin with "c" (99) are sliced to look for CF-.
            if name_lower not in drop and (
                trusted or name_lower[0] != 99 or name_lower[:3] != CLOUDFLARE_PREFIX
            ):
                head += (name, b": ", value, b"\r\n")
        head += (
            b"X-Forwarded-For: ",
            forwarded_for,
            b"\r\nX-Forwarded-Proto: ",
            forwarded_proto,
            b"\r\nX-Forwarded-Host: ",
            forwarded_host,
            b"\r\nCF-Connecting-IP: ",
            client,
            b"\r\n",
        )
        if self.upgrade:
            head.append(UPGRADE_HEADERS)
        body = self.body
        if body is CHUNKED:
            head.append(b"Transfer-Encoding: chunked\r\n")
        elif body is not None:
            head.append(b"Content-Length: %d\r\n" % (body,))
        head.append(b"\r\n")
        return b"".join(head)


def read_head(method, target, headers, http11, keep_alive):
    """
    The L{RequestHead} of a request whose line and headers httptools has parsed (its
    strict mode has already refused conflicting lengths, obs-fold and the like): the
    headers are read in one pass.

    @param keep_alive: what httptools says of the connection.
    """
    hosts = 0
    host = length = codings = upgrades = connection = None
    expect_continue = False
    for name, value in headers:
        name = name.lower()
        if name == b"host":
            hosts += 1
            if host is None:
                host = value
        elif name == b"content-length":
            if length is None:
                length = value
        elif name == b"transfer-encoding":
            codings = [value] if codings is None else codings + [value]
        elif name == b"connection":
            connection = [value] if connection is None else connection + [value]
        elif name == b"upgrade":
            upgrades = [value] if upgrades is None else upgrades + [value]
        elif name == b"expect":
            expect_continue = expect_continue or value.lower() == b"100-continue"
    if hosts != 1:
        host = None
    if codings is not None:
        body = CHUNKED
    elif length is not None:
        body = int(length)
    else:
        body = None
    upgrade = (
        http11
        and method == b"GET"
        and upgrades is not None
        and connection is not None
        and b"websocket" in _tokens(upgrades)
        and b"upgrade" in _tokens(connection)
    )
    if host is None:
        malformed = (400, "a request needs exactly one Host header", True)
    elif not (target.startswith(b"/") or (target == b"*" and method == b"OPTIONS")):
        malformed = (400, "the request target must be a path, such as /index.html", False)
    elif codings is not None and [v.strip().lower() for v in codings] != [b"chunked"]:
        malformed = (501, "only the chunked transfer coding is supported", False)
    else:
        malformed = None
    return RequestHead(
        method,
        target,
        headers,
        http11,
        keep_alive and http11 and not upgrade,
        host,
        body,
        upgrade,
        http11 and expect_continue,
        malformed,
        connection,
    )


def unreadable(status, message):
    """
    The L{RequestHead} of a request that could not be read: all that is known is that
    funcplane answers it C{status} and closes the connection.
    """
    return RequestHead(None, b"", [], True, False, None, None, False, False, (status, message, True))


def without_named(headers, connection):
    """
    The C{(name, value)} pairs of C{headers} but those the C{Connection} header values
    C{connection} name (which go no further than one hop).
    """
    drop = _tokens(connection)
    return [(name, value) for name, value in headers if name.lower() not in drop]


def response_head(status, reason, headers, chunked, close):
    """
    The head of a child's response as the client gets it: its status line and end-to-end
    C{headers} (the upstream connection left the hop-by-hop ones out), then
    C{Transfer-Encoding: chunked} when funcplane chunks the body and C{Connection: close}
    when the connection ends after it.
    """
    head = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    for name, value in headers:
        head += (name, b": ", value, b"\r\n")
    if chunked:
        head.append(b"Transfer-Encoding: chunked\r\n")
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    return b"".join(head)


def plain_response(status, message, close, head_only=False):
    """
    A complete response with a short plain-text body.
    """
    body = (message + "\n").encode("utf-8")
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode("ascii")),
        b"Content-Type: text/plain; charset=utf-8\r\n",
        b"Content-Length: %d\r\n" % (len(body),),
    ]
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    if not head_only:
        head.append(body)
    return b"".join(head)
