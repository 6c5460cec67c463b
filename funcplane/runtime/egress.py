"""
What a function's outbound C{fetch()} and C{connect()} may reach.

workerd permits an address when it matches an entry of the network's C{allow} list and none
of its C{deny} list, so deny always wins.  By default a function reaches public addresses
only: every range that is not globally reachable (loopback, private, link-local,
documentation, the IPv6 forms that embed an IPv4 address such as NAT64 and 6to4; see
L{NON_PUBLIC_RANGES}) and the host's own interface addresses are denied.  An operator
opens a range with C{--egress-allow CIDR}; that range is then carved out of every deny
entry, so it really becomes reachable.
"""

import ipaddress

import attrs
import ifaddr

# Every IP range that is not the public internet, written out so that an operator's
# allowance can be carved out of it: each entry of the IANA IPv4 and IPv6 Special-Purpose
# Address Registries that is not globally reachable (RFC 6890, RFC 8190), each range that
# embeds an IPv4 address in IPv6 (through which a function could reach a private IPv4
# address), and the address space that is not unicast on the internet at all.  An entry
# whose block holds a few globally reachable addresses (192.0.0.0/24, 2001::/23) is denied
# whole: those are anycast relays and routing services that functions have no use for.
NON_PUBLIC_RANGES = (
    # IPv4 Special-Purpose Address Registry
    ("0.0.0.0/8", "this network (RFC 791)"),
    ("10.0.0.0/8", "private use (RFC 1918)"),
    ("100.64.0.0/10", "shared address space, carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link local, cloud metadata (RFC 3927)"),
    ("172.16.0.0/12", "private use (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments, NAT64 discovery (RFC 6890, RFC 7050)"),
    ("192.0.2.0/24", "documentation, TEST-NET-1 (RFC 5737)"),
    ("192.88.99.0/24", "6to4 relay anycast, deprecated (RFC 7526)"),
    ("192.168.0.0/16", "private use (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation, TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation, TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved, limited broadcast (RFC 1112, RFC 919)"),
    # IPv6 Special-Purpose Address Registry
    ("::/128", "unspecified (RFC 4291)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("::ffff:0:0/96", "IPv4-mapped (RFC 4291)"),
    ("64:ff9b::/96", "IPv4-IPv6 translation, NAT64: reaches any IPv4 address (RFC 6052)"),
    ("64:ff9b:1::/48", "IPv4-IPv6 translation, local use (RFC 8215)"),
    ("100::/64", "discard only (RFC 6666)"),
    ("100:0:0:1::/64", "dummy prefix (RFC 9780)"),
    ("2001::/23", "IETF protocol assignments, Teredo 2001::/32 among them (RFC 2928, RFC 4380)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2002::/16", "6to4: reaches any IPv4 address through a relay (RFC 3056)"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("5f00::/16", "segment routing SIDs (RFC 9602)"),
    ("fc00::/7", "unique local (RFC 4193)"),
    ("fe80::/10", "link-local unicast (RFC 4291)"),
    # Beyond the registry
    ("::/96", "IPv4-compatible, deprecated (RFC 4291)"),
    ("::ffff:0:0:0/96", "IPv4-translated (RFC 2765)"),
    ("fec0::/10", "site-local, deprecated (RFC 3879)"),
    ("ff00::/8", "multicast (RFC 4291)"),
    # The IPv6 Address Space registry: only 2000::/3 is global unicast; the rest is
    # reserved by the IETF or special (and holds most of the IPv6 entries above).
    ("::/3", "not global unicast (RFC 4291)"),
    ("4000::/2", "not global unicast (RFC 4291)"),
    ("8000::/1", "not global unicast (RFC 4291)"),
)
NON_PUBLIC = tuple(ipaddress.ip_network(cidr) for cidr, _ in NON_PUBLIC_RANGES)

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
