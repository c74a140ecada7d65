"""ccxt answers into domain values: floats and strings become ``Decimal`` through ``str``, never
``Decimal(float)``; millisecond timestamps become aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tradeops.model import Candle


def dec(value: Any, default: Decimal = Decimal(0)) -> Decimal:
    if value is None or value == "":
        return default
    return value if isinstance(value, Decimal) else Decimal(str(value))


def dec_or_none(value: Any) -> Decimal | None:
    return None if value is None or value == "" else dec(value)


def from_ms(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(value))


def to_ms(value: datetime) -> int:
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def candle(row: list[Any]) -> Candle:
    ts = from_ms(row[0])
    assert ts is not None
    return Candle(ts=ts, open=dec(row[1]), high=dec(row[2]), low=dec(row[3]), close=dec(row[4]), volume=dec(row[5]))
