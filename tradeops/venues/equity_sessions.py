"""Trading sessions of equity venues: when an order can fill, and when it waits for the open.

Two models, picked by ``paper.equity_sessions``:
- ``always_open``: every minute is regular trading hours (deterministic: the tests' default);
- ``xnys``: the New York Stock Exchange calendar from ``exchange_calendars`` (holidays and early
  closes included). Pre-market runs from 04:00 New York time to the open, after-hours from the
  close for four hours (to 20:00 on a normal day).

The paper venue follows what US brokers do outside regular hours: an order is accepted and
queued, and fills at the first price after the next open. (Extended-hours limit orders are not
modelled: queued orders wait for the regular open.)
"""

from __future__ import annotations

import enum
import functools
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

SessionModelName = Literal["always_open", "xnys"]
NEW_YORK = ZoneInfo("America/New_York")
PRE_MARKET_START = time(4, 0)
AFTER_HOURS_LENGTH = timedelta(hours=4)


class Session(enum.StrEnum):
    REGULAR = "regular"
    PRE_MARKET = "pre_market"
    AFTER_HOURS = "after_hours"
    CLOSED = "closed"


class SessionModel(Protocol):
    def session_at(self, now: datetime) -> Session:
        """The session ``now`` (timezone-aware) falls in."""


class AlwaysOpen:
    """Regular trading hours around the clock."""

    def session_at(self, now: datetime) -> Session:
        return Session.REGULAR

    def __repr__(self) -> str:
        return "AlwaysOpen()"


@functools.lru_cache(maxsize=1)
def _xnys() -> Any:
    import exchange_calendars  # heavy (pandas): imported only when the NYSE model is used

    return exchange_calendars.get_calendar("XNYS")


class NyseSessions:
    """NYSE sessions from the exchange calendar."""

    def session_at(self, now: datetime) -> Session:
        import pandas as pd

        if now.tzinfo is None:
            raise ValueError("session_at needs a timezone-aware datetime")
        calendar = _xnys()
        minute = pd.Timestamp(now.astimezone(UTC)).floor("min")
        if calendar.is_open_on_minute(minute):
            return Session.REGULAR
        day = now.astimezone(NEW_YORK).date()
        if not calendar.is_session(day.isoformat()):
            return Session.CLOSED
        opens = calendar.session_open(day.isoformat()).to_pydatetime()
        closes = calendar.session_close(day.isoformat()).to_pydatetime()
        pre_start = datetime.combine(day, PRE_MARKET_START, tzinfo=NEW_YORK)
        if pre_start <= now < opens:
            return Session.PRE_MARKET
        if closes <= now < closes + AFTER_HOURS_LENGTH:
            return Session.AFTER_HOURS
        return Session.CLOSED

    def __repr__(self) -> str:
        return "NyseSessions()"


ALWAYS_OPEN = AlwaysOpen()


def session_model(name: SessionModelName) -> SessionModel:
    """The session model configured as ``name``."""
    if name == "xnys":
        return NyseSessions()
    return ALWAYS_OPEN


def waits_for_open(model: SessionModel, now: datetime) -> bool:
    """True when an order placed ``now`` is queued for the next regular open instead of filling."""
    return model.session_at(now) is not Session.REGULAR
