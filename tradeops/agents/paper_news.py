"""The deterministic paper headline feed the local stack publishes for every agent's news symbol.

``headline_at(seed, symbol, slot)`` is a pure function: the same inputs give the same headline, id
included, so publishing a slot again (a restarted feed back-fills its look-back window) changes
nothing for readers, who keep one headline per id. The tone of a slot is drawn with odds set by a
mood per (seed, symbol, UTC day), so some days lean bullish and others bearish, as news does.
``publish_due`` publishes the slots due (every ``paper_feed.every_minutes``, aligned to the epoch);
``run_feed`` is the long-running ``tradeops news feed``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from tradeops.agents.news import Headline, publish_headline

if TYPE_CHECKING:
    from tradeops.agents.settings import AgentsFile
    from tradeops.config import Settings

log = logging.getLogger(__name__)

SOURCE = "paper-feed"
# How long the feed waits before trying again when the broker did not confirm a headline.
RETRY_SECONDS = 5.0

Tone = Literal["bullish", "bearish", "neutral"]

# What a headline calls the instrument behind a news symbol; others are called by their symbol.
NAMES: dict[str, str] = {
    "TSLA": "Tesla",
    "IWM": "Russell 2000 ETF",
    "BTC": "Bitcoin",
    "ETH": "Ether",
    "SOL": "Solana",
    "AAPL": "Apple",
    "SPY": "S&P 500 ETF",
}

TEMPLATES: dict[Tone, tuple[str, ...]] = {
    "bullish": (
        "{name} beats estimates and raises guidance",
        "{name} rallies to record high",
        "Analysts upgrade {name} to outperform",
        "{name} surges on strong demand",
        "{name} jumps as inflows hit a record",
        "{name} climbs after upbeat outlook",
        "{name} extends gains as buyers return",
        "{name} soars after buyback announced",
    ),
    "bearish": (
        "{name} misses estimates; analysts downgrade",
        "{name} slides as sell-off deepens",
        "{name} tumbles after guidance cut",
        "{name} falls on weak demand",
        "Regulators open probe into {name}",
        "{name} plunges as outflows accelerate",
        "{name} sinks after analysts warn of headwinds",
        "{name} slumps as lawsuit weighs",
    ),
    "neutral": (
        "{name} trades flat ahead of key data",
        "{name} little changed in quiet session",
        "What to watch for {name} this week",
        "{name} steady ahead of the Fed decision",
        "{name} ends the day unchanged",
    ),
}

# Odds (bullish, bearish; the rest neutral) in percent, by the day's mood.
_MOODS: tuple[tuple[int, int], ...] = ((60, 15), (15, 60), (30, 30))


def _draw(*parts: object) -> int:
    text = "|".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("slot must be timezone-aware")
    return moment.astimezone(UTC)


def tone_at(seed: int, symbol: str, slot: datetime) -> Tone:
    """The tone of the headline at ``slot``: drawn with the odds of the day's mood."""
    slot = _utc(slot)
    bullish, bearish = _MOODS[_draw(seed, symbol, slot.date().isoformat(), "mood") % len(_MOODS)]
    roll = _draw(seed, symbol, slot.isoformat(), "tone") % 100
    if roll < bullish:
        return "bullish"
    return "bearish" if roll < bullish + bearish else "neutral"


def headline_at(seed: int, symbol: str, slot: datetime) -> Headline:
    """The paper headline about ``symbol`` at ``slot``: a pure function of (seed, symbol, slot)."""
    slot = _utc(slot)
    templates = TEMPLATES[tone_at(seed, symbol, slot)]
    template = templates[_draw(seed, symbol, slot.isoformat(), "template") % len(templates)]
    return Headline(
        id=f"paper-{seed}-{symbol}-{slot:%Y%m%dT%H%M%S}Z",
        symbol=symbol,
        title=template.format(name=NAMES.get(symbol, symbol)),
        source=SOURCE,
        published_at=slot,
    )


def slots_between(start: datetime, end: datetime, every_minutes: int) -> list[datetime]:
    """The slots ``start <= slot <= end``, every ``every_minutes`` counted from the Unix epoch."""
    step = every_minutes * 60
    first = -(-math.ceil(_utc(start).timestamp()) // step) * step  # rounded up to a slot
    last = math.floor(_utc(end).timestamp()) // step * step
    return [datetime.fromtimestamp(stamp, UTC) for stamp in range(first, last + 1, step)]


def publish_due(
    settings: Settings, agents_file: AgentsFile, now: datetime, last: datetime | None = None
) -> datetime | None:
    """Publish every slot after ``last`` (and within ``news.lookback_minutes`` of ``now``) up to
    ``now``, for every agent's news symbol; return the last slot published (``last`` when none was
    due). A ``DeliveryError`` leaves ``last`` where it was: the next call publishes those slots again."""
    every = agents_file.paper_feed.every_minutes
    start = _utc(now) - timedelta(minutes=agents_file.news.lookback_minutes)
    if last is not None:
        start = max(start, _utc(last) + timedelta(seconds=1))
    symbols = sorted({agent.headline_symbol for agent in agents_file.agents.values()})
    slots = slots_between(start, now, every)
    for slot in slots:
        for symbol in symbols:
            publish_headline(headline_at(agents_file.paper_feed.seed, symbol, slot), settings)
    if slots:
        log.info("published paper headlines for %s, %d slot(s) up to %s", ", ".join(symbols), len(slots), slots[-1])
        return slots[-1]
    return last


def next_slot(now: datetime, every_minutes: int) -> datetime:
    """The first slot strictly after ``now``."""
    step = every_minutes * 60
    return datetime.fromtimestamp((math.floor(_utc(now).timestamp()) // step + 1) * step, UTC)


def run_feed(
    settings: Settings,
    agents_file: AgentsFile,
    stop: threading.Event,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Publish the due slots, then sleep until the next one, until ``stop`` is set. A broker that
    does not confirm is logged and tried again after ``RETRY_SECONDS``: the feed keeps running."""
    from tradeops.kafka.producer import DeliveryError

    last: datetime | None = None
    every = agents_file.paper_feed.every_minutes
    log.info("paper news feed: every %d min, seed %d", every, agents_file.paper_feed.seed)
    while not stop.is_set():
        now = clock()
        try:
            last = publish_due(settings, agents_file, now, last)
        except DeliveryError as exc:
            log.warning("paper news feed: %s; trying again in %gs", exc, RETRY_SECONDS)
            stop.wait(RETRY_SECONDS)
            continue
        stop.wait(max((next_slot(now, every) - clock()).total_seconds(), 0.0) + 0.2)
    log.info("paper news feed stopped")
