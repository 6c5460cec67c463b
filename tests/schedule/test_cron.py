"""
Tests for L{funcplane.schedule.cron}: Cloudflare's cron syntax, computed by croniter, in UTC.
"""

from datetime import datetime, timezone

from twisted.trial.unittest import SynchronousTestCase

from funcplane.schedule.cron import parse_cron
from funcplane.errors import InvalidCron, InvalidRequest

# Thursday 2026-01-01 00:00 UTC.
NEW_YEAR = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()


def times(expression, count=3, start=NEW_YEAR):
    cron = parse_cron(expression)
    found = []
    for _ in range(count):
        start = cron.next_after(start)
        found.append(datetime.fromtimestamp(start, timezone.utc).strftime("%a %Y-%m-%d %H:%M"))
    return found


class CronTests(SynchronousTestCase):
    def test_every_five_minutes(self):
        """
        C{*/5 * * * *} names every fifth minute, strictly after the time given, in UTC.
        """
        self.assertEqual(
            times("*/5 * * * *"),
            ["Thu 2026-01-01 00:05", "Thu 2026-01-01 00:10", "Thu 2026-01-01 00:15"],
        )

    def test_weekdays_count_from_sunday(self):
        """
        As on Cloudflare (and Quartz), weekday 1 is Sunday and 2-6 is Monday to Friday;
        names mean what they say.
        """
        self.assertEqual(times("0 17 * * 1", 2), ["Sun 2026-01-04 17:00", "Sun 2026-01-11 17:00"])
        self.assertEqual(times("0 17 * * sun", 2), times("0 17 * * 1", 2))
        self.assertEqual(times("10 7 * * 2-6", 5), times("10 7 * * mon-fri", 5))
        self.assertEqual(
            times("10 7 * * 2-6", 3), ["Thu 2026-01-01 07:10", "Fri 2026-01-02 07:10", "Mon 2026-01-05 07:10"]
        )
        self.assertEqual(times("0 0 * * 7", 1), ["Sat 2026-01-03 00:00"])
        self.assertEqual(parse_cron("10 7 * * 2-6").computed, "10 7 * * 1-5")

    def test_last_and_nth_weekday(self):
        """
        C{6L} and C{friL} are the last Friday of the month, C{L} alone is Saturday, and
        C{MON#2} and C{2#2} the second Monday.
        """
        self.assertEqual(times("0 18 * * 6L", 2), ["Fri 2026-01-30 18:00", "Fri 2026-02-27 18:00"])
        self.assertEqual(times("0 18 * * friL", 2), times("0 18 * * 6L", 2))
        self.assertEqual(times("0 0 * * L", 1), ["Sat 2026-01-03 00:00"])
        self.assertEqual(times("0 10 * * MON#2", 2), ["Mon 2026-01-12 10:00", "Mon 2026-02-09 10:00"])
        self.assertEqual(times("0 10 * * 2#2", 2), times("0 10 * * MON#2", 2))

    def test_last_day_and_nearest_weekday(self):
        """
        C{L} in the day of the month is its last day; C{15W} the weekday nearest the 15th
        (Sunday 2026-02-15 gives Monday the 16th).
        """
        self.assertEqual(times("0 0 L * *", 2), ["Sat 2026-01-31 00:00", "Sat 2026-02-28 00:00"])
        self.assertEqual(times("0 0 15W * *", 2), ["Thu 2026-01-15 00:00", "Mon 2026-02-16 00:00"])

    def test_expression_kept_as_given(self):
        """
        The expression is kept as given (what the handler's C{controller.cron} is), only
        without surrounding blanks.
        """
        cron = parse_cron("  0 18 * * friL ")
        self.assertEqual((cron.expression, cron.computed), ("0 18 * * friL", "0 18 * * L5"))

    def assertRefused(self, expression, text):
        with self.assertRaises(InvalidCron) as caught:
            parse_cron(expression)
        self.assertIn(text, str(caught.exception))
        self.assertIsInstance(caught.exception, InvalidRequest)

    def test_refused(self):
        """
        What Cloudflare refuses is refused with the reason: a weekday 0 or 8, a field count
        other than 5 (macros, seconds), characters no field takes, values out of range, a
        date that never comes, a non-string.
        """
        self.assertRefused("0 22 * * 0", "weekday 0 is out of range: weekdays are 1-7 counted from Sunday")
        self.assertRefused("0 22 * * 8", "weekday 8 is out of range")
        self.assertRefused("* * * *", "it has 4 fields; a cron trigger has 5")
        self.assertRefused("@daily", "it has 1 field;")
        self.assertRefused("0 * * * * *", "it has 6 fields")
        self.assertRefused("0 12 ? * *", "the day of month field '?'")
        self.assertRefused("61 * * * *", "out of range")
        self.assertRefused("0 0 31 2 *", "it names no date that exists")
        self.assertRefused("0 0 * * xyz", "'xyz' is not a weekday")
        self.assertRefused("x" * 300, "longer than 256")
        with self.assertRaises(InvalidCron):
            parse_cron(["* * * * *"])

    def test_unsupported_named(self):
        """
        What Cloudflare takes but croniter cannot compute (C{LW}, C{L-3}, C{L-3W}) is
        refused by name, saying what to use instead.
        """
        for expression in ["59 23 LW * *", "0 0 L-3 * *", "0 0 L-3W * *"]:
            self.assertRefused(expression, "funcplane cannot compute")
            self.assertRefused(expression, "use L, or nW")
