"""
The edge's options (lingering after a refusal, WebSockets' time and caps): parsed and
validated by L{funcplane.tap.Options}, and carried into the listener's L{ProxyLimits}.
"""

import os

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from funcplane import tap
from funcplane.edge.limits import ProxyLimits


class EdgeOptionsTests(SynchronousTestCase):
    """
    Each edge option has a safe default, refuses what is not a number it can use, and
    reaches the limits every connection is held to.
    """

    def limits(self, *args):
        workerd = self.mktemp()
        with open(workerd, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(workerd, 0o755)
        options = tap.Options()
        options.parseOptions(["--workerd", os.path.abspath(workerd), "--data-dir", "/tmp/fpd", *args])
        return tap.settings_from(options).proxy_limits

    def test_defaults(self):
        """
        By default a refused client is read for 10 s and 100 MiB; a WebSocket closes after
        5 minutes of silence or an hour; a version holds 1,000 WebSockets, an address 64.
        """
        limits = self.limits()
        self.assertEqual(
            (limits.linger_seconds, limits.linger_bytes, limits.tunnel_idle_seconds,
             limits.tunnel_lifetime_seconds, limits.tunnels_per_version, limits.tunnels_per_client),
            (10.0, 100 * 1024 * 1024, 300.0, 3600.0, 1000, 64),
        )
        self.assertEqual(limits, ProxyLimits())

    def test_given(self):
        """
        Each option sets its limit; 0 lifts a cap.
        """
        limits = self.limits(
            "--linger-timeout", "2.5", "--linger-bytes", "1000", "--websocket-idle-timeout", "30",
            "--websocket-lifetime", "600", "--max-websockets-per-version", "0", "--max-websockets-per-ip", "3",
        )
        self.assertEqual(
            (limits.linger_seconds, limits.linger_bytes, limits.tunnel_idle_seconds,
             limits.tunnel_lifetime_seconds, limits.tunnels_per_version, limits.tunnels_per_client),
            (2.5, 1000, 30.0, 600.0, 0, 3),
        )

    def test_refused(self):
        """
        Times must be positive numbers of seconds, sizes and caps whole numbers; the error
        names the option.
        """
        for option, value in [
            ("--linger-timeout", "0"), ("--websocket-idle-timeout", "-1"), ("--websocket-lifetime", "soon"),
            ("--linger-bytes", "1e6"), ("--max-websockets-per-version", "-1"), ("--max-websockets-per-ip", "x"),
        ]:
            error = self.assertRaises(UsageError, self.limits, option, value)
            self.assertIn(option, str(error))
