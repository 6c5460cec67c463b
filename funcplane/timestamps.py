"""
Moments as the APIs show them: ISO 8601 in UTC, to the millisecond, with a C{Z}.
"""

from datetime import datetime, timezone


def timestamp(seconds):
    """
    POSIX C{seconds} as C{2026-12-01T09:49:54.123Z}.
    """
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
