import ipaddress

from twisted.trial.unittest import SynchronousTestCase

from funcplane.runtime.egress import EgressPolicy, host_addresses


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
