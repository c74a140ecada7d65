"""Is the agent's market open at a given minute? The exchange calendar answers.

XNYS comes from ``exchange_calendars`` (regular sessions, holidays, early closes), through the
same calendar object as the market-data pipeline; 24/7 is always open. The answer carries the
reason in words, which the skipped task logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tradeops.market_data.calendars import CalendarName, is_early_close, session_bounds


@dataclass(frozen=True, kw_only=True)
class MarketHours:
    open: bool
    reason: str
    session_open: datetime | None = None
    session_close: datetime | None = None


def _hhmm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M UTC")


def market_hours(calendar: CalendarName, at: datetime) -> MarketHours:
    """Whether ``calendar``'s market is open at ``at`` (aware), and why (not)."""
    if at.tzinfo is None:
        raise ValueError("market_hours needs a timezone-aware datetime")
    if calendar == "24/7":
        return MarketHours(open=True, reason="24/7 market: always open")
    from tradeops.venues.equity_sessions import NEW_YORK

    day = at.astimezone(NEW_YORK).date()
    bounds = session_bounds(calendar, day)
    if bounds is None:
        kind = "weekend" if day.weekday() >= 5 else "holiday"
        return MarketHours(open=False, reason=f"{calendar} is closed all day on {day.isoformat()} ({kind})")
    opens, closes = bounds
    early = " (early close)" if is_early_close(calendar, day) else ""
    if at < opens:
        reason = f"{calendar} opens at {_hhmm(opens)} on {day.isoformat()}; it is {_hhmm(at)}"
    elif at >= closes:
        reason = f"{calendar} closed at {_hhmm(closes)}{early} on {day.isoformat()}; it is {_hhmm(at)}"
    else:
        return MarketHours(
            open=True,
            reason=f"{calendar} is open until {_hhmm(closes)}{early}",
            session_open=opens,
            session_close=closes,
        )
    return MarketHours(open=False, reason=reason, session_open=opens, session_close=closes)
