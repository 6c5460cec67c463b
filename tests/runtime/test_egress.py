"""
What functions may reach: the egress policy and the deny list the config carries.
"""

import ipaddress

from twisted.trial.unittest import SynchronousTestCase

from funcplane.runtime.config import ConfigBuilder, RuntimeSettings
from funcplane.runtime.egress import EgressPolicy, host_addresses
from tests.fakes import spec
from tests.runtime.test_config import SCHEMA


def covers(deny, address):
    address = ipaddress.ip_address(address)
    return any(
        address in ipaddress.ip_network(entry) for entry in deny if entry[0].isdigit() or ":" in entry
    )


class EgressPolicyTests(SynchronousTestCase):
    def test_default_denies_everything_non_public(self):
        """
        By default only public addresses are allowed; workerd's private and local classes,
        unix sockets, loopback, private ranges, metadata and NAT64 are all denied, and so is
        each host address.
        """
        policy = EgressPolicy(denied_hosts=(ipaddress.ip_network("192.0.2.2/32"),))
        self.assertEqual(policy.allow_list(), ["public"])
        deny = policy.deny_list()
        for entry in ["unix", "unix-abstract", "private", "local"]:
            self.assertIn(entry, deny)
        for address in ["127.0.0.1", "127.1.2.3", "10.1.1.1", "169.254.169.254", "100.64.0.1",
                        "0.0.0.0", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "fc00::1", "192.0.2.2"]:
            self.assertTrue(covers(deny, address), address)
        self.assertFalse(covers(deny, "1.2.3.4"))

    def test_allowance_is_carved_out(self):
        """
        An allowed network is added to allow and removed from every deny entry (its mapped
        IPv6 form too), while its neighbours stay denied; workerd's classes, which cannot be
        carved, are dropped.
        """
        policy = EgressPolicy(
            allowed=(ipaddress.ip_network("127.0.0.1/32"),),
            denied_hosts=(ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("192.0.2.2/32")),
        )
        self.assertEqual(policy.allow_list(), ["public", "127.0.0.1/32"])
        deny = policy.deny_list()
        self.assertNotIn("local", deny)
        self.assertNotIn("private", deny)
        self.assertIn("unix", deny)
        self.assertFalse(covers(deny, "127.0.0.1"))
        self.assertFalse(covers(deny, "::ffff:127.0.0.1"))
        for address in ["127.0.0.2", "127.0.0.0", "10.0.0.1", "::1", "192.0.2.2"]:
            self.assertTrue(covers(deny, address), address)

    def test_public_allowance_keeps_classes(self):
        """
        Allowing a public network leaves the private and local classes denied.
        """
        deny = EgressPolicy(allowed=(ipaddress.ip_network("8.8.8.0/24"),)).deny_list()
        self.assertIn("private", deny)
        self.assertIn("local", deny)

    def test_host_addresses(self):
        """
        This host's loopback address is among its addresses.
        """
        self.assertIn(ipaddress.ip_network("127.0.0.1/32"), host_addresses())


# One address in each range that is not globally reachable (the IANA special-purpose
# registries, and the IPv6 forms that embed an IPv4 address), with what it is.
NOT_GLOBAL = [
    ("0.1.2.3", "this network"),
    ("10.9.9.9", "private use"),
    ("100.64.0.1", "shared address space"),
    ("127.0.0.2", "loopback"),
    ("169.254.169.254", "link local (metadata)"),
    ("172.31.255.254", "private use"),
    ("192.0.0.170", "NAT64 discovery"),
    ("192.0.0.9", "PCP anycast, within IETF protocol assignments"),
    ("192.0.2.5", "TEST-NET-1"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("192.168.1.1", "private use"),
    ("198.18.0.1", "benchmarking"),
    ("198.51.100.7", "TEST-NET-2"),
    ("203.0.113.5", "TEST-NET-3"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "limited broadcast"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:0:7f00:1", "IPv4-translated loopback (workerd tried it)"),
    ("::7f00:1", "IPv4-compatible loopback"),
    ("64:ff9b::7f00:1", "NAT64 of loopback"),
    ("64:ff9b:1::a00:1", "local-use translation"),
    ("100::1", "discard only"),
    ("100:0:0:1::1", "dummy prefix"),
    ("2001::7f00:1", "Teredo"),
    ("2001:2::1", "benchmarking"),
    ("2001:10::1", "ORCHID"),
    ("2001:db8::1", "documentation"),
    ("2002:7f00:1::1", "6to4 of loopback (workerd tried it)"),
    ("2002:a00:1::1", "6to4 of 10.0.0.1"),
    ("3fff::1", "documentation"),
    ("5f00::1", "segment routing SIDs"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fe80::1", "link local"),
    ("fec0::1", "site local"),
    ("ff02::1", "multicast"),
    ("4000::1", "reserved by the IETF"),
    ("e000::1", "reserved by the IETF"),
]

GLOBAL = ["1.1.1.1", "8.8.8.8", "192.31.196.1", "192.175.48.1", "2606:4700:4700::1111",
          "2a00:1450:4001::1", "2620:4f:8000::1", "2001:4860:4860::8888"]


def config_network(policy):
    """
    The allow and deny lists of the internet service in the config a version gets.
    """
    builder = ConfigBuilder(RuntimeSettings(egress=policy), SCHEMA)
    [internet] = [s for s in builder.read(builder.build(spec()))["services"] if s["name"] == "internet"]
    return internet["network"]["allow"], internet["network"]["deny"]


class SpecialPurposeTests(SynchronousTestCase):
    """
    The deny list of the generated config covers every range of the IANA special-purpose
    registries that is not globally reachable; nothing here sends a packet.
    """

    def test_not_globally_reachable_denied(self):
        """
        The config every child gets denies an address of each range that is not globally
        reachable, 6to4 (2002::/16) and IPv4-translated (::ffff:0:0:0/96) among them, and
        none of a few public ones.
        """
        allow, deny = config_network(EgressPolicy())
        self.assertEqual(allow, ["public"])
        missed = [(address, what) for address, what in NOT_GLOBAL if not covers(deny, address)]
        self.assertEqual(missed, [])
        self.assertEqual([address for address in GLOBAL if covers(deny, address)], [])

    def test_allowances_still_carved_out(self):
        """
        An operator's --egress-allow opens its range even where several deny entries
        overlap it (NAT64 lies in three): the range and nothing beside it.
        """
        policy = EgressPolicy(allowed=tuple(ipaddress.ip_network(n) for n in ["64:ff9b::/96", "10.1.0.0/16"]))
        allow, deny = config_network(policy)
        self.assertEqual(allow, ["public", "64:ff9b::/96", "10.1.0.0/16"])
        for address in ["64:ff9b::808:808", "64:ff9b::7f00:1", "10.1.2.3", "::ffff:10.1.2.3"]:
            self.assertFalse(covers(deny, address), address)
        for address in ["64:ff9b:1::1", "64:ff9b::1:0:0:0", "10.2.0.1", "::ffff:10.2.0.1", "2002:a01:203::1", "::1"]:
            self.assertTrue(covers(deny, address), address)
