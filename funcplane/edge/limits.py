"""
What one client connection may make funcplane hold, and for how long: the listener's
limits (L{funcplane.edge.listener} takes them, and C{tap.py} builds them from the options).
"""

import attrs

MiB = 1024 * 1024


@attrs.frozen
class ProxyLimits:
    """
    What one client connection may make funcplane hold, and for how long.

    @ivar head_bytes: the request line and headers of one request (past it: 431).
    @ivar target_bytes: the request target (past it: 414).
    @ivar body_bytes: one request body, whether its length is declared or it is chunked
        (past it: 413, before the body is read).
    @ivar response_head_bytes: a function's status line and headers, counted as they
        arrive (past it: 502).
    @ivar head_seconds: from a request's first byte (or the connection's opening) to the
        end of its headers (past it: 408 and the connection closes).
    @ivar idle_seconds: a kept-alive connection waiting for its next request is closed.
    @ivar connections_per_ip: open connections from one client address; one more is
        answered 503 and closed (0: no limit).
    @ivar pipeline: requests read ahead of the one being answered.
    @ivar buffered: request body bytes held while they cannot be sent on (the child is
        starting, or the request waits behind another); beyond it, reading pauses.
    @ivar linger_seconds: after funcplane refuses a request whose client may still be
        sending, how long it reads and discards what comes before it closes.
    @ivar linger_bytes: how much it reads and discards meanwhile, at most.
    @ivar tunnel_idle_seconds: a WebSocket through which nothing passed, either way, for
        this long is closed.
    @ivar tunnel_lifetime_seconds: a WebSocket open this long is closed.
    @ivar tunnels_per_version: WebSockets open to one version; one more is answered 503
        (0: no limit).
    @ivar tunnels_per_client: WebSockets open from one client address; one more is
        answered 503 (0: no limit).
    """

    head_bytes: int = 32 * 1024
    target_bytes: int = 8 * 1024
    body_bytes: int = 100 * MiB
    response_head_bytes: int = 64 * 1024
    head_seconds: float = 10.0
    idle_seconds: float = 60.0
    connections_per_ip: int = 256
    pipeline: int = 16
    buffered: int = 64 * 1024
    linger_seconds: float = 10.0
    linger_bytes: int = 100 * MiB
    tunnel_idle_seconds: float = 300.0
    tunnel_lifetime_seconds: float = 3600.0
    tunnels_per_version: int = 1000
    tunnels_per_client: int = 64
