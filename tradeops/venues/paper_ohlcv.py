"""Deterministic hourly OHLCV history for paper markets.

Each hour's return, wicks and volume come from a random generator seeded with
``(paper.seed, symbol, hour since the epoch)``, so the shape of the history is the same in every
process and run. The walk is laid backwards from the current mark price: the candle of the
current hour closes exactly at the mark, earlier candles follow the seeded returns.
Same seed, symbol, hour and mark give identical candles.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradeops.model import Candle

HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SIGNIFICANT_DIGITS = 8


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_rng(seed: int, symbol: str, ts: datetime) -> random.Random:
    # A str seed is hashed with SHA-512: stable across processes, unlike hash().
    return random.Random(f"{seed}|{symbol}|{(ts - EPOCH) // HOUR}")


def _draw(seed: int, symbol: str, ts: datetime, volatility: float) -> tuple[float, float, float, float]:
    """(return, upper wick, lower wick, volume factor) of the candle starting at ``ts``."""
    rng = _hour_rng(seed, symbol, ts)
    ret = max(-0.5, min(0.5, rng.gauss(0.0, volatility)))
    return (
        ret,
        abs(rng.gauss(0.0, volatility / 2)),
        abs(rng.gauss(0.0, volatility / 2)),
        rng.lognormvariate(0.0, 0.5),
    )


def _quantizer(reference: Decimal) -> Decimal:
    return Decimal(1).scaleb(reference.adjusted() - _SIGNIFICANT_DIGITS + 1)


def generate(
    *, seed: int, symbol: str, mark: Decimal, now: datetime, days: int, volatility_bps: Decimal
) -> list[Candle]:
    """``days * 24`` hourly candles, oldest first, the last one starting at the current hour."""
    volatility = float(volatility_bps) / 10_000
    end = floor_hour(now)
    starts = [end - HOUR * back for back in range(days * 24 - 1, -1, -1)]
    draws = [_draw(seed, symbol, ts, volatility) for ts in starts]
    closes = [0.0] * len(starts)
    closes[-1] = float(mark)
    for i in range(len(starts) - 1, 0, -1):
        closes[i - 1] = closes[i] / (1 + draws[i][0])
    first_open = closes[0] / (1 + draws[0][0])
    price_q = _quantizer(mark)
    volume_base = Decimal(1_000_000) / mark  # about a million quote units an hour

    def q(value: float) -> Decimal:
        return Decimal(repr(value)).quantize(price_q)

    candles: list[Candle] = []
    previous_close = q(first_open)
    for i, ts in enumerate(starts):
        _ret, up, down, volume = draws[i]
        close = mark if i == len(starts) - 1 else q(closes[i])
        high = max(previous_close, close, q(max(float(previous_close), float(close)) * (1 + up)))
        low = min(previous_close, close, q(min(float(previous_close), float(close)) * (1 - down)))
        amount = (volume_base * Decimal(repr(volume))).quantize(_quantizer(volume_base))
        candles.append(Candle(ts=ts, open=previous_close, high=high, low=low, close=close, volume=amount))
        previous_close = close
    return candles


def select_window(candles: list[Candle], since: datetime | None, limit: int | None) -> list[Candle]:
    """ccxt semantics: the first ``limit`` from ``since`` (inclusive), else the last ``limit``."""
    if since is not None:
        candles = [c for c in candles if c.ts >= since]
        return candles if limit is None else candles[:limit]
    return candles if limit is None else candles[len(candles) - limit :]
