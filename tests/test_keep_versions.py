"""
C{--keep-versions}: parsed and checked by L{funcplane.tap.Options}, carried in
L{funcplane.service.Settings}, and given to the platform by the service tree.
"""

from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from funcplane import tap
from funcplane.service import FuncplaneService
from tests.test_tap import fake_workerd


class KeepVersionsOptionTests(SynchronousTestCase):
    """
    The option, from the command line to the platform.
    """

    def settings(self, *args):
        options = tap.Options()
        options.parseOptions(["--workerd", fake_workerd(self), "--data-dir", "/tmp/fpd", *args])
        return tap.settings_from(options)

    def test_default(self):
        """
        By default a function keeps its newest 100 versions, as many as Cloudflare lets
        wrangler roll back to.
        """
        self.assertEqual(self.settings().keep_versions, 100)

    def test_given(self):
        """
        A whole number is kept as given; 0 means every version is kept.
        """
        self.assertEqual(self.settings("--keep-versions", "5").keep_versions, 5)
        self.assertIsNone(self.settings("--keep-versions", "0").keep_versions)

    def test_refused(self):
        """
        Anything but a whole number is refused, saying what is expected.
        """
        for bad in ("-1", "x", "2.5", ""):
            error = self.assertRaises(UsageError, self.settings, "--keep-versions", bad)
            self.assertEqual(
                str(error),
                "--keep-versions must be a whole number of versions to keep (0: keep them all)",
            )

    def test_reaches_the_platform(self):
        """
        The service tree gives the platform the limit and --scale-to-zero.
        """
        settings = self.settings("--keep-versions", "7", "--scale-to-zero")
        service = FuncplaneService(MemoryReactorClock(), settings, environ={})
        self.assertEqual(
            (service.platform._keep_versions, service.platform._scale_to_zero), (7, True)
        )
