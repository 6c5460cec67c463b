"""
WebSockets through the proxy: once a child switches protocols for a request that asked it
to, bytes pass as they are, both ways, for as long as both ends keep the connection.

The exchange of the upgrade request (L{funcplane.edge.exchange.Exchange}) keeps what it held
before the switch: the version's lease, the connection to the child and its backpressure
both ways; it ends when either side closes. A L{Tunnel} moves the bytes.
"""

from funcplane.edge.http1 import UPGRADE_HEADERS, forwardable


def switched(reason, headers):
    """
    The head of a child's C{101} as the client gets it: its end-to-end headers, and the
    upgrade to WebSocket that funcplane relays.
    """
    head = [b"HTTP/1.1 101 %s\r\n" % (reason,)]
    for name, value in forwardable(headers):
        head += (name, b": ", value, b"\r\n")
    head += (UPGRADE_HEADERS, b"\r\n")
    return b"".join(head)


class Tunnel:
    """
    The bytes of one WebSocket, between the client's connection (a
    L{funcplane.edge.listener.ProxyChannel}) and the child's.

    It exists from the request that asks to upgrade. What the client sends after that
    request is held until the child switches protocols: never sent before, for if the child
    refuses, those bytes must not reach it as a request. It is then relayed. The tunnel's
    three moments are told by its two fields: holding (C{_early} is a list), open
    (C{_upstream} is the child's connection), closed (neither).
    """

    __slots__ = ("_channel", "_upstream", "_early")

    def __init__(self, channel):
        self._channel = channel
        self._upstream = None
        self._early = []

    def from_client(self, data):
        """
        Bytes the client sent after its upgrade request.
        """
        upstream = self._upstream
        if upstream is not None:
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
            self._channel.write(data)

    def close(self):
        """
        Relay nothing more, and let go of what is held.
        """
        self._upstream = None
        early, self._early = self._early, None
        if early:
            self._channel.buffered(-sum(map(len, early)))
