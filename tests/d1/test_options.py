"""
The D1 options of C{twistd funcplane}: --d1-statement-timeout and --d1-max-database-mb,
their defaults, their checks, and their way into the registry's limits.
"""

from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from funcplane import tap
from funcplane.d1.sql import Limits
from funcplane.runtime.limits import MiB
from tests.test_tap import fake_workerd


class D1OptionsTests(SynchronousTestCase):
    """
    The options reach L{funcplane.d1.sql.Limits}.
    """

    def parse(self, *args):
        options = tap.Options()
        options.parseOptions(["--workerd", fake_workerd(self), "--data-dir", "/tmp/fpd", *args])
        return options

    def test_defaults(self):
        """
        By default a statement may run 30 s and a database grow to 500 MiB.
        """
        settings = tap.settings_from(self.parse())
        self.assertEqual(settings.d1_limits, Limits(statement_seconds=30.0, max_bytes=500 * MiB))

    def test_given(self):
        """
        The values given reach the service's D1 registry.
        """
        options = self.parse("--d1-statement-timeout", "2.5", "--d1-max-database-mb", "64")
        service = tap.makeService(options, reactor=MemoryReactorClock())
        self.assertEqual(service.d1.limits, Limits(statement_seconds=2.5, max_bytes=64 * MiB))

    def test_invalid(self):
        """
        A timeout that is not a positive number, or a size below 1 MiB, is refused.
        """
        for args in [("--d1-statement-timeout", "0"), ("--d1-max-database-mb", "0"), ("--d1-max-database-mb", "x")]:
            self.assertRaises(UsageError, self.parse, *args)
