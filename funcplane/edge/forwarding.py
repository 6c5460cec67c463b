"""
Who is asking: what a function is told of the client behind a request.

funcplane sets C{X-Forwarded-For}, C{-Proto}, C{-Host} and C{CF-Connecting-IP} itself
(L{funcplane.edge.http1.RequestHead.to_child}). A client cannot set them, nor any other
header that claims an address or a fact only a proxy in front would know (C{True-Client-IP},
C{X-Real-IP}, C{Forwarded}, every C{CF-*}): code ported from Cloudflare trusts
C{CF-Connecting-IP}. The load balancers the operator trusts (C{--trusted-proxy}) are the
exception: their claims reach functions, and the client they name is the client.
"""

import ipaddress


def _address(text):
    """
    The IP address C{text} (bytes) spells, or L{None}.
    """
    try:
        return ipaddress.ip_address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


class TrustedProxies:
    """
    The networks of the load balancers in front of funcplane.

    @param networks: CIDR texts (validated by the options).
    """

    def __init__(self, networks=()):
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def trusts(self, peer):
        """
        Whether the client at C{peer} (an address as text) is a trusted proxy.
        """
        if not self._networks:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def client(self, chain, proxy):
        """
        The client behind the trusted proxy at C{proxy} (bytes), from the
        C{X-Forwarded-For} values it sent (C{chain}): the last hop that is not a trusted
        proxy, each trusted one having added the address it was reached from. A hop that is
        no address ends the walk (what is left of it cannot be believed); with no usable
        hop, the proxy itself.
        """
        client = proxy
        hops = [hop.strip() for value in chain for hop in value.split(b",")]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break
            client = hop
            if not any(address in network for network in self._networks):
                break
        return client


def head_to_child(head, channel, trusted):
    """
    The head of request C{head} (a L{funcplane.edge.http1.RequestHead}) as the child gets
    it, with what funcplane says of its client: its own view of the client's connection
    (C{channel}, a L{funcplane.edge.listener.ProxyChannel}), or a trusted proxy's claims.
    """
    peer = channel.forwarded_for
    if channel.trusted:
        return head.to_child(*head.forwarded_by(peer, channel.forwarded_proto, trusted), trusted=True)
    return head.to_child(peer, channel.forwarded_proto, head.host, peer)


def client_of(head, channel, trusted):
    """
    The address of the client that sent C{head} on C{channel}, as C{CF-Connecting-IP}
    gives it (bytes).
    """
    if channel.trusted:
        return head.forwarded_by(channel.forwarded_for, channel.forwarded_proto, trusted)[3]
    return channel.forwarded_for
