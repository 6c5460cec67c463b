"""
How many failed admin authentications a client address may make: a token bucket per
address, on the injected clock.

Each address may fail C{failures} times at once, and is given one more try every
C{window / failures} seconds.  An address with no try left is refused (429, with the
seconds until its next try) before its token is even compared.  IPv6 addresses count by
their /64, which one client usually holds whole.  At most C{max_addresses} buckets are
kept: past that the one unused longest is forgotten, so many addresses cost bounded
memory (at the price that an attacker with that many addresses gets fresh buckets).
"""

import collections
import ipaddress
import math


class FailureThrottle:
    """
    Failed authentications per client address.

    @param clock: an C{IReactorTime}.
    @param failures: the failures an address may make at once (and per C{window}).
    @param window: the seconds in which an address regains C{failures} tries.
    @param max_addresses: the most addresses remembered.
    """

    def __init__(self, clock, failures=10, window=60.0, max_addresses=10_000):
        self._clock = clock
        self._capacity = float(failures)
        self._rate = failures / window
        self._max = max_addresses
        # key -> (tries left, when they were counted), least recently used first.
        self._buckets = collections.OrderedDict()

    def _tries(self, key):
        found = self._buckets.get(key)
        if found is None:
            return self._capacity
        tries, when = found
        return min(self._capacity, tries + (self._clock.seconds() - when) * self._rate)

    def retry_after(self, address):
        """
        L{None} while C{address} may try to authenticate; else the whole seconds until
        it may again.
        """
        tries = self._tries(_key(address))
        if tries >= 1:
            return None
        return max(1, math.ceil((1 - tries) / self._rate))

    def failed(self, address):
        """
        Count a failed authentication from C{address}; whether it has no try left now.
        """
        key = _key(address)
        tries = self._tries(key) - 1
        self._buckets[key] = (tries, self._clock.seconds())
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return tries < 1

    def addresses(self):
        """
        How many addresses are remembered.
        """
        return len(self._buckets)


def _key(address):
    """
    What C{address} is counted as: itself, or its /64 if it is IPv6 (an IPv4 address
    mapped into IPv6 counts as the IPv4 address).
    """
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
