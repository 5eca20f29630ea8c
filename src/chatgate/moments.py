"""Times: epoch seconds (what the database stores) and datetimes (what HTTP and the CLI show).

The database holds a double, and a double can hold more than a datetime can: years before 1 or
after 9999 (in UTC: ``0001-01-01T00:00:00+14:00`` is a few hours before year 1), infinities,
and on PostgreSQL NaN. Times a client sends are checked into :data:`EARLIEST`..:data:`LATEST`
at the edge (:func:`checked`), and turning a stored value back into a datetime
(:func:`from_epoch`) is total: whatever a row holds, reading it cannot fail.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST_EPOCH = (EARLIEST - _EPOCH).total_seconds()
# The last whole second: LATEST's microseconds are below a double's resolution at that size (it
# would round up into year 10000).
_LATEST_EPOCH = (LATEST.replace(microsecond=0) - _EPOCH).total_seconds()


def checked(moment: datetime) -> datetime | None:
    """``moment`` in UTC (no zone means UTC), or None when its UTC instant is outside
    EARLIEST..LATEST."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


def from_epoch(epoch: float) -> datetime:
    """The UTC datetime of stored epoch seconds, clamped into EARLIEST..LATEST (NaN: EARLIEST)."""
    clamped = (
        _EARLIEST_EPOCH if math.isnan(epoch) else min(max(epoch, _EARLIEST_EPOCH), _LATEST_EPOCH)
    )
    return _EPOCH + timedelta(seconds=clamped)


def iso(epoch: float | None) -> str | None:
    """Stored epoch seconds as ISO-8601 UTC with a ``Z`` (None stays None)."""
    if epoch is None:
        return None
    return from_epoch(epoch).isoformat().replace("+00:00", "Z")
