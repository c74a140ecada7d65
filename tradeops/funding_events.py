"""Funding-rate deviation events published by the hedge.

They are decided by ``tradeops.conditions.funding_deviation`` itself, so a watcher re-checking a
published event always agrees with the hedge that published it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from tradeops.conditions import funding_deviation, funding_deviation_bps
from tradeops.config import Settings
from tradeops.events import FundingRateDeviation, VenueFundingRate, build_event
from tradeops.funding_snapshot import FundingSnapshot, PerpQuote
from tradeops.kafka.producer import DeliveryReport, publish

EVENT_SOURCE = "funding_rate_hedge"


def _draft(symbol: str, quotes: Sequence[PerpQuote]) -> FundingRateDeviation:
    """An unvalidated event carrying only the rates, for the condition to judge."""
    rates = tuple(
        VenueFundingRate.model_construct(venue=q.venue, rate=q.rate, interval_hours=q.interval_hours) for q in quotes
    )
    return FundingRateDeviation.model_construct(symbol=symbol, rates=rates)


def _deviation_event(symbol: str, quotes: Sequence[PerpQuote], settings: Settings) -> FundingRateDeviation | None:
    draft = _draft(symbol, quotes)
    if not funding_deviation(draft, settings).fire:
        return None
    gap, _venue_a, _venue_b = funding_deviation_bps(draft, settings.thresholds.funding_period_hours)
    payload = {
        "symbol": symbol,
        "rates": [{"venue": q.venue, "rate": q.rate, "interval_hours": q.interval_hours} for q in quotes],
        "deviation_bps": gap,
        "source": EVENT_SOURCE,
    }
    return cast(FundingRateDeviation, build_event("funding-rate-deviation", payload))


def deviation_events(snapshot: FundingSnapshot, settings: Settings) -> list[FundingRateDeviation]:
    """A funding-rate-deviation event per symbol whose normalised rates differ beyond the threshold.

    The decision is ``tradeops.conditions.funding_deviation`` on the venues' quoted rates and
    intervals, the same check the event watcher applies. Raises ``EventValidationError`` when a
    venue quotes a rate outside the event schema's bounds (an alert must not vanish silently).
    """
    events: list[FundingRateDeviation] = []
    for symbol in snapshot.symbols:
        quotes = sorted(snapshot.quotes(symbol), key=lambda quote: quote.venue)
        if len(quotes) < 2:
            continue
        event = _deviation_event(symbol, quotes, settings)
        if event is not None:
            events.append(event)
    return events


def publish_deviations(
    snapshot: FundingSnapshot, settings: Settings, *, bootstrap: str | None = None
) -> list[DeliveryReport]:
    """Publish ``deviation_events(snapshot, settings)``; each report means the broker stored it."""
    return [
        publish(event, bootstrap=bootstrap, topics=settings.kafka.topics)
        for event in deviation_events(snapshot, settings)
    ]


__all__ = ["EVENT_SOURCE", "deviation_events", "publish_deviations"]
