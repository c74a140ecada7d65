"""Which minute bars an instrument should have on a day: its trading calendar.

Completeness is measured against the instrument's calendar, never against 24/7 time: an NYSE
holiday has no expected bars (not "100 % missing"), an early close ends at 13:00 New York time.
Two calendars: ``24/7`` (crypto: every minute of the UTC day) and ``XNYS`` (the New York Stock
Exchange from ``exchange_calendars``: regular sessions, holidays, early closes). A trading day
is a UTC date for 24/7 and a session date for XNYS (sessions fall inside one UTC date).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

CalendarName = Literal["24/7", "XNYS"]
CALENDARS: tuple[CalendarName, ...] = ("24/7", "XNYS")
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
# exchange_calendars builds a calendar up to about a year ahead by default; ours reaches further.
_XNYS_END = "2030-12-31"


@functools.lru_cache(maxsize=1)
def _xnys() -> Any:
    import exchange_calendars  # heavy (pandas): only when an equity calendar is asked for

    return exchange_calendars.get_calendar("XNYS", start="2015-01-01", end=_XNYS_END)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC day ``[00:00, 24:00)`` of ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + DAY


def is_trading_day(calendar: CalendarName, day: date) -> bool:
    if calendar == "24/7":
        return True
    return bool(_xnys().is_session(day.isoformat()))


def session_bounds(calendar: CalendarName, day: date) -> tuple[datetime, datetime] | None:
    """``(open, close)`` in UTC of the day's session, None when the market is closed all day."""
    if calendar == "24/7":
        return day_bounds(day)
    xnys = _xnys()
    if not xnys.is_session(day.isoformat()):
        return None
    opens = xnys.session_open(day.isoformat()).to_pydatetime()
    closes = xnys.session_close(day.isoformat()).to_pydatetime()
    return opens.astimezone(UTC), closes.astimezone(UTC)


def is_early_close(calendar: CalendarName, day: date) -> bool:
    """True when ``day``'s session closes before the regular time (XNYS: 13:00 New York)."""
    if calendar == "24/7":
        return False
    import pandas as pd

    return pd.Timestamp(day.isoformat()) in _xnys().early_closes


def expected_minutes(calendar: CalendarName, day: date) -> pd.DatetimeIndex:
    """The start of every 1-minute bar the instrument should have on ``day`` (UTC, microseconds)."""
    import pandas as pd

    bounds = session_bounds(calendar, day)
    if bounds is None:
        return pd.DatetimeIndex([], dtype="datetime64[us, UTC]")
    opens, closes = bounds
    return pd.date_range(opens, closes - MINUTE, freq="min", unit="us")


def trading_days_before(calendar: CalendarName, day: date, count: int) -> list[date]:
    """The ``count`` trading days before ``day`` (not including it), oldest first."""
    days: list[date] = []
    cursor = day - DAY
    while len(days) < count:
        if is_trading_day(calendar, cursor):
            days.append(cursor)
        cursor -= DAY
    return days[::-1]


def minutes_in(calendar: CalendarName, days: Sequence[date]) -> pd.DatetimeIndex:
    """Every expected bar start over ``days``, in order."""
    import pandas as pd

    parts = [expected_minutes(calendar, day) for day in days]
    if not parts:
        return pd.DatetimeIndex([], dtype="datetime64[us, UTC]")
    return parts[0].append(parts[1:]) if len(parts) > 1 else parts[0]


def calendar_for(asset_class: str) -> CalendarName:
    """The calendar of a venue's instruments: NYSE sessions for equities, 24/7 for crypto."""
    return "XNYS" if asset_class == "equity" else "24/7"
