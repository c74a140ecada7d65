"""Event conditions: which valid events should start which DAG. Thresholds come from config.

A condition looks at one validated event and answers with a ``Decision``: fire (with a short
reason an operator can read in the asset event) or not. Conditions never raise on a valid event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations

from tradeops.config import Settings
from tradeops.events import CapitalThreshold, CriticalAlert, Event, FundingRateDeviation, MarketShock

BPS = Decimal(10_000)


@dataclass(frozen=True)
class Decision:
    fire: bool
    reason: str


def normalised_rate(rate: Decimal, interval_hours: int, period_hours: int) -> Decimal:
    """A funding rate quoted per ``interval_hours`` expressed per ``period_hours``."""
    return rate * Decimal(period_hours) / Decimal(interval_hours)


def funding_deviation_bps(event: FundingRateDeviation, period_hours: int) -> tuple[Decimal, str, str]:
    """The largest pairwise gap between the venues' normalised rates, in bps, and the two venues."""
    best = (Decimal(-1), "", "")
    for a, b in combinations(event.rates, 2):
        gap = abs(
            normalised_rate(a.rate, a.interval_hours, period_hours)
            - normalised_rate(b.rate, b.interval_hours, period_hours)
        )
        if gap * BPS > best[0]:
            best = (gap * BPS, a.venue, b.venue)
    return best


def market_shock(event: Event, settings: Settings) -> Decision:
    """|move| >= the market-shock threshold (5 % by default)."""
    if not isinstance(event, MarketShock):
        return Decision(False, "not a market shock")
    threshold = settings.thresholds.market_shock_pct
    move = abs(event.move_pct)
    return Decision(move >= threshold, f"{event.symbol} moved {event.move_pct}% (threshold {threshold}%)")


def extreme_shock(event: Event, settings: Settings) -> Decision:
    """|move| >= the extreme-shock threshold: the emergency stop flattens everything."""
    if not isinstance(event, MarketShock):
        return Decision(False, "not a market shock")
    threshold = settings.thresholds.extreme_shock_pct
    return Decision(
        abs(event.move_pct) >= threshold, f"{event.symbol} moved {event.move_pct}% (extreme at {threshold}%)"
    )


def capital_below_floor(event: Event, settings: Settings) -> Decision:
    """A venue balance under its floor: the configured floor when there is one, else the event's."""
    if not isinstance(event, CapitalThreshold):
        return Decision(False, "not a capital event")
    floor = settings.capital.floors.get(event.venue, {}).get(event.asset, event.floor)
    return Decision(event.balance < floor, f"{event.venue} {event.asset} balance {event.balance} vs floor {floor}")


def funding_deviation(event: Event, settings: Settings) -> Decision:
    """Funding rates differ by more than the threshold once normalised to one period.

    The gap is recomputed from the quoted rates and intervals; the event's own
    ``deviation_bps`` is not trusted.
    """
    if not isinstance(event, FundingRateDeviation):
        return Decision(False, "not a funding-rate event")
    period = settings.thresholds.funding_period_hours
    threshold = settings.thresholds.funding_deviation_bps
    gap, a, b = funding_deviation_bps(event, period)
    return Decision(
        gap > threshold,
        f"{event.symbol}: {a} vs {b} differ by {gap.quantize(Decimal('0.01'))} bps per {period} h "
        f"(threshold {threshold} bps)",
    )


def critical_alert(event: Event, settings: Settings) -> Decision:
    if not isinstance(event, CriticalAlert):
        return Decision(False, "not a critical alert")
    return Decision(True, f"critical alert ({event.scope or 'global'}): {event.reason}")


Condition = Callable[[Event, Settings], Decision]

CONDITIONS: dict[str, Condition] = {
    "market_shock": market_shock,
    "extreme_shock": extreme_shock,
    "capital_below_floor": capital_below_floor,
    "funding_deviation": funding_deviation,
    "critical_alert": critical_alert,
}


def condition(name: str) -> Condition:
    try:
        return CONDITIONS[name]
    except KeyError:
        raise ValueError(f"unknown event condition '{name}'; known: {sorted(CONDITIONS)}") from None
