"""
The operator's options for static assets (L{funcplane.tap}).
"""

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from funcplane import tap
from funcplane.assets.sessions import AssetLimits


class OptionsTests(SynchronousTestCase):
    def parse(self, *args):
        options = tap.Options()
        options.parseOptions(["--data-dir", "/tmp/fpd", "--workerd", "/bin/true", *args])
        return options

    def test_defaults(self):
        """
        By default a version may have Cloudflare's 20,000 files of up to 25 MiB each.
        """
        limits = tap.settings_from(self.parse()).asset_limits
        self.assertEqual((limits.max_file_bytes, limits.max_files), (25 * 1024 * 1024, 20_000))
        self.assertEqual(limits, AssetLimits())

    def test_given(self):
        """
        --max-asset-file-bytes and --max-asset-files set the limits; a value that is not a
        positive whole number is refused.
        """
        limits = tap.settings_from(self.parse("--max-asset-file-bytes", "1000", "--max-asset-files", "7")).asset_limits
        self.assertEqual((limits.max_file_bytes, limits.max_files), (1000, 7))
        for args in (["--max-asset-files", "0"], ["--max-asset-file-bytes", "x"]):
            self.assertRaises(usage.UsageError, self.parse, *args)
