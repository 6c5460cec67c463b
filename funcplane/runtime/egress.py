"""
What a function's outbound C{fetch()} and C{connect()} may reach.

workerd permits an address when it matches an entry of the network's C{allow} list and none
of its C{deny} list, so deny always wins.  By default a function reaches public addresses
only: loopback, private and link-local ranges, NAT64 prefixes and the host's own interface
addresses are denied.  An operator opens a range with C{--egress-allow CIDR}; that range is
then carved out of every deny entry, so it really becomes reachable.
"""

import ipaddress

import attrs
import ifaddr

# Every IP range that is not the public internet: a superset of what workerd calls
# "private" and "local", written out so that an operator's allowance can be carved out.
NON_PUBLIC = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/96",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)

# workerd's own names for non-IP and non-public destinations.
ALWAYS_DENIED = ("unix", "unix-abstract")
DENIED_CLASSES = ("private", "local")


def host_addresses():
    """
    The IP addresses of this host's interfaces, as single-address networks.  workerd counts
    a host's public address as public; funcplane denies it so that functions cannot reach
    services listening on all interfaces.
    """
    found = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip
            try:
                found.add(ipaddress.ip_network(address.split("%")[0]))
            except ValueError:
                continue
    return tuple(sorted(found, key=lambda n: (n.version, n)))


def _mapped(network):
    """
    The IPv4-mapped IPv6 form of an IPv4 network, so that allowing C{127.0.0.1/32} also
    allows C{::ffff:127.0.0.1}.
    """
    if network.version != 4:
        return None
    return ipaddress.ip_network(
        f"::ffff:{network.network_address}/{96 + network.prefixlen}"
    )


def _subtract(networks, holes):
    result = []
    for network in networks:
        pieces = [network]
        for hole in holes:
            next_pieces = []
            for piece in pieces:
                if piece.version != hole.version or not piece.overlaps(hole):
                    next_pieces.append(piece)
                elif hole.supernet_of(piece):
                    continue
                else:
                    next_pieces.extend(piece.address_exclude(hole))
            pieces = next_pieces
        result.extend(pieces)
    return result


@attrs.frozen
class EgressPolicy:
    """
    The C{allow} and C{deny} lists of a worker's C{internet} network service.

    @ivar allowed: networks an operator opened on top of the public internet.
    @ivar denied_hosts: the host's own addresses, denied unless an operator opened them.
    """

    allowed: tuple = ()
    denied_hosts: tuple = ()

    @classmethod
    def for_host(cls, allowed=()):
        """
        The policy for this machine: its own addresses denied, C{allowed} (CIDR strings)
        opened.
        """
        return cls(
            allowed=tuple(ipaddress.ip_network(cidr, strict=False) for cidr in allowed),
            denied_hosts=host_addresses(),
        )

    def allow_list(self):
        """
        workerd's C{allow} entries.
        """
        return ["public"] + [str(n) for n in self.allowed]

    def deny_list(self):
        """
        workerd's C{deny} entries: everything non-public and the host's addresses, minus the
        operator's allowances.  workerd's own C{private} and C{local} classes are kept too
        when no allowance falls inside them.
        """
        holes = list(self.allowed) + [m for m in map(_mapped, self.allowed) if m]
        denied = _subtract(list(NON_PUBLIC) + list(self.denied_hosts), holes)
        opens_non_public = any(
            allowed.overlaps(n)
            for allowed in self.allowed
            for n in NON_PUBLIC
            if allowed.version == n.version
        )
        classes = () if opens_non_public else DENIED_CLASSES
        unique = sorted(set(denied), key=lambda n: (n.version, n))
        return list(ALWAYS_DENIED) + list(classes) + [str(n) for n in unique]
