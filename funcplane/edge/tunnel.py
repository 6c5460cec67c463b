"""
WebSockets through the proxy: once a child switches protocols for a request that asked it
to, bytes pass as they are, both ways, until either end closes, the socket stays quiet for
too long, or it has been open for as long as one may be.

The exchange of the upgrade request (L{funcplane.edge.exchange.Exchange}) keeps what it held
before the switch: the version's lease, the connection to the child and its backpressure
both ways; it ends when the tunnel does. A L{Tunnel} moves the bytes and keeps the time;
L{Tunnels} counts the WebSockets open to each version and from each client, so that no
version and no client holds more than its share of them.
"""

from funcplane.deadline import Deadline
from funcplane.edge.http1 import UPGRADE_HEADERS
from funcplane.edge.shares import Shares


def switched(reason, headers):
    """
    The head of a child's C{101} as the client gets it: its end-to-end headers (the
    upstream connection left the hop-by-hop ones out), and the upgrade to WebSocket that
    funcplane relays.
    """
    head = [b"HTTP/1.1 101 %s\r\n" % (reason,)]
    for name, value in headers:
        head += (name, b": ", value, b"\r\n")
    head += (UPGRADE_HEADERS, b"\r\n")
    return b"".join(head)


class Tunnels:
    """
    The WebSockets open through funcplane, or asked for and not yet refused by their
    child, counted by version and by client address against their caps (0: none).

    @ivar by_version: the L{Shares} of the versions.
    @ivar by_client: the L{Shares} of the client addresses.
    """

    def __init__(self, per_version, per_client):
        self.by_version = Shares(per_version)
        self.by_client = Shares(per_client)

    def admit(self, version_id, client):
        """
        Count one more WebSocket to C{version_id} from C{client}; or, when that is one
        too many, count nothing and return why (the message of a 503).
        """
        if self.by_version.full(version_id):
            return (
                f"this version has {self.by_version.cap} WebSockets open, as many as it may;"
                " try again when one has closed"
            )
        if self.by_client.full(client):
            return (
                f"your address has {self.by_client.cap} WebSockets open, as many as it may;"
                " close one before opening another"
            )
        self.by_version.add(version_id)
        self.by_client.add(client)
        return None

    def release(self, version_id, client):
        """
        A WebSocket L{admit}ted has ended.
        """
        self.by_version.remove(version_id)
        self.by_client.remove(client)


class Tunnel:
    """
    The bytes of one WebSocket, between the client's connection (a
    L{funcplane.edge.listener.ProxyChannel}) and the child's.

    It exists from the request that asks to upgrade. What the client sends after that
    request is held until the child switches protocols: never sent before, for if the child
    refuses, those bytes must not reach it as a request. It is then relayed. The tunnel's
    three moments are told by its two fields: holding (C{_early} is a list), open
    (C{_upstream} is the child's connection), closed (neither).

    Open, it is closed by C{expired(why)} (the exchange's) once nothing has passed for the
    limits' C{tunnel_idle_seconds}, or once it has been open for C{tunnel_lifetime_seconds}.

    @param clock: an C{IReactorTime}.
    @param limits: the L{funcplane.edge.limits.ProxyLimits}.
    """

    __slots__ = ("_channel", "_upstream", "_early", "_clock", "_limits", "_expired")
    __slots__ += ("_idle", "_lifetime", "_admitted")

    def __init__(self, channel, clock, limits, expired):
        self._channel = channel
        self._upstream = None
        self._early = []
        self._clock = clock
        self._limits = limits
        self._expired = expired
        self._idle = None
        self._lifetime = None
        # (tunnels, version id, client) once counted by L{Tunnels}.
        self._admitted = None

    def admit(self, tunnels, version_id, client):
        """
        Count this WebSocket in C{tunnels} (L{Tunnels}) until it closes; or return why
        it may not be opened.
        """
        refusal = tunnels.admit(version_id, client)
        if refusal is None:
            self._admitted = (tunnels, version_id, client)
        return refusal

    def from_client(self, data):
        """
        Bytes the client sent after its upgrade request.
        """
        upstream = self._upstream
        if upstream is not None:
            self._idle.set(self._limits.tunnel_idle_seconds, self._went_idle)
            upstream.write(data)
        elif self._early is not None:
            self._early.append(data)
            self._channel.buffered(len(data))

    def open(self, upstream, reason, headers):
        """
        The child switched protocols on C{upstream}: pass its C{101} on to the client, and
        what the client sent meanwhile to the child.
        """
        self._upstream = upstream
        limits = self._limits
        self._idle = Deadline(self._clock)
        self._idle.set(limits.tunnel_idle_seconds, self._went_idle)
        self._lifetime = self._clock.callLater(limits.tunnel_lifetime_seconds, self._too_old)
        self._channel.write(switched(reason, headers))
        early, self._early = self._early, None
        if early:
            self._channel.buffered(-sum(map(len, early)))
            upstream.write(b"".join(early))

    def from_child(self, data):
        """
        Bytes from the child after its C{101}.
        """
        if self._upstream is not None:
            self._idle.set(self._limits.tunnel_idle_seconds, self._went_idle)
            self._channel.write(data)

    def _went_idle(self):
        self._expired(f"nothing passed for {self._limits.tunnel_idle_seconds:g} s")

    def _too_old(self):
        self._lifetime = None
        self._expired(
            f"it was open for {self._limits.tunnel_lifetime_seconds:g} s, as long as a"
            " WebSocket may be"
        )

    def close(self):
        """
        Relay nothing more, and let go of what is held.
        """
        self._upstream = None
        early, self._early = self._early, None
        if early:
            self._channel.buffered(-sum(map(len, early)))
        idle, self._idle = self._idle, None
        if idle is not None:
            idle.stop()
        lifetime, self._lifetime = self._lifetime, None
        if lifetime is not None:
            lifetime.cancel()
        admitted, self._admitted = self._admitted, None
        if admitted is not None:
            tunnels, version_id, client = admitted
            tunnels.release(version_id, client)
