"""
The runtime's options as C{twistd funcplane} takes them (L{funcplane.tap.Options}), and
where they end up in the service tree: the line cap and the log book's bounds, the
descriptor reserve, and the CPU quota the spin watch judges by.
"""

from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from funcplane import tap
from tests.test_tap import fake_workerd


class RuntimeOptionsTests(SynchronousTestCase):
    def parse(self, *args):
        options = tap.Options()
        options.parseOptions(["--workerd", fake_workerd(self), "--data-dir", "/tmp/fpd", *args])
        return options

    def build(self, *args):
        return tap.makeService(self.parse(*args), reactor=MemoryReactorClock())

    def test_defaults(self):
        """
        By default a line is kept up to 16 KiB, a version's lines up to 1 MiB, all lines up
        to 64 MiB, and 256 descriptors are kept in reserve.
        """
        settings = tap.settings_from(self.parse())
        self.assertEqual(
            (settings.max_log_line_bytes, settings.log_bytes_per_version, settings.log_bytes_total,
             settings.fd_reserve),
            (16384, 1048576, 67108864, 256),
        )

    def test_reach_the_tree(self):
        """
        The options reach the parts that use them: the launcher's line cap, the log
        book's bounds, the supervisor's descriptor reserve; and --child-cpu the spin
        watch's threshold (a share of half a core under --child-cpu 0.5).
        """
        service = self.build("--max-log-line-bytes", "1000", "--log-bytes-per-version", "5000",
                             "--log-bytes-total", "9000", "--fd-reserve", "64", "--child-cpu", "0.5")
        self.assertEqual(service.runtime._choices.max_log_line_bytes, 1000)
        self.assertEqual((service.logbook._bytes_per_version, service.logbook._bytes_total), (5000, 9000))
        self.assertEqual(service.supervisor._admission._descriptors.reserve, 64)
        self.assertAlmostEqual(service.supervisor._verdicts._watch.threshold, 0.4)
        self.assertIsNotNone(service.runtime._open_files)
        self.assertAlmostEqual(self.build().supervisor._verdicts._watch.threshold, 0.8)

    def test_bad_values(self):
        """
        Each bound must be a whole number above its least, and the bounds must nest; the
        error says which and what to do.
        """
        for args, message in [
            (["--max-log-line-bytes", "100"], "--max-log-line-bytes must be a whole number of bytes, at least 256"),
            (["--log-bytes-total", "x"], "--log-bytes-total must be a whole number of bytes, at least 1"),
            (["--fd-reserve", "8"], "--fd-reserve must be a whole number of file descriptors (a spawn alone"
                                    " needs about 8), at least 16"),
            (["--log-bytes-per-version", "1000"], "--log-bytes-per-version 1000 is less than"
                                                  " --max-log-line-bytes 16384: raise --log-bytes-per-version"
                                                  " or lower --max-log-line-bytes"),
            (["--log-bytes-total", "100000"], "--log-bytes-total 100000 is less than --log-bytes-per-version"
                                              " 1048576: raise --log-bytes-total or lower --log-bytes-per-version"),
        ]:
            error = self.assertRaises(UsageError, self.parse, *args)
            self.assertEqual(str(error), message)
