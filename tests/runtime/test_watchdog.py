"""
Telling a spinning process from a waiting one.
"""

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane.runtime.watchdog import SpinWatch, cpu_seconds


class SpinWatchTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.readings = []
        self.watch = SpinWatch(self.clock, cpu=self.read, sample=0.5, threshold=0.8)

    def read(self, pid):
        reading = self.readings.pop(0)
        if isinstance(reading, Exception):
            raise reading
        return reading

    def test_share_over_the_sample(self):
        """
        The share is the CPU seconds used over the sample's half second; 0.9 of a CPU is
        spinning, 0.1 is not.
        """
        self.readings = [3.0, 3.45]
        d = self.watch.share(42)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        share = self.successResultOf(d)
        self.assertAlmostEqual(share, 0.9)
        self.assertTrue(self.watch.spinning(share))
        self.assertFalse(self.watch.spinning(0.1))

    def test_gone_process(self):
        """
        A process that exits before or during the sample is not spinning.
        """
        self.readings = [FileNotFoundError()]
        d = self.watch.share(42)
        self.clock.advance(0)
        self.assertIsNone(self.successResultOf(d))
        self.readings = [3.0, ProcessLookupError()]
        d = self.watch.share(42)
        self.clock.advance(0.5)
        self.assertIsNone(self.successResultOf(d))
        self.assertFalse(self.watch.spinning(None))

    def test_reads_proc(self):
        """
        cpu_seconds reads a live process's CPU time from /proc, and raises for a pid that
        does not exist.
        """
        self.assertGreater(cpu_seconds(os.getpid()), 0)
        self.assertRaises(OSError, cpu_seconds, 2**22 + 17)
