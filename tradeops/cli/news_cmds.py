"""``tradeops news feed|publish|show|source``: the agents' headlines (``tradeops.agents.news``)."""

from __future__ import annotations

import argparse
import hashlib
import logging
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING

from tradeops.cli.output import print_json, print_table
from tradeops.errors import EventValidationError

if TYPE_CHECKING:
    from tradeops.agents.sentiment import ScoredHeadline

EXIT_INVALID = 2
EXIT_NOT_DELIVERED = 3


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    news = subparsers.add_parser(
        "news",
        help="the trading agents' headlines: feed | publish | show | source",
        description="Headlines the trading agents score for sentiment. The news source is `news.source` of "
        "config/agents.yaml: `kafka` (the market_news topic, which `tradeops news feed` fills with a "
        "deterministic paper feed) or a NewsSource class.",
    )
    actions = news.add_subparsers(dest="news_command", metavar="ACTION", required=True)
    feed = actions.add_parser(
        "feed",
        help="publish the paper headlines as they fall due (foreground; SIGTERM stops it)",
        description="Publish a deterministic headline for every agent's news symbol every "
        "paper_feed.every_minutes (slots aligned to the epoch), back-filling news.lookback_minutes at "
        "the start, then sleep until the next slot. Publishing a slot again is harmless (same id). A "
        "broker that does not confirm is retried; SIGTERM or SIGINT ends the feed with exit 0.",
    )
    feed.set_defaults(func=_feed)
    publish = actions.add_parser(
        "publish",
        help="publish one headline to the market_news topic",
        description="Validate one headline and publish it (waits for the broker's confirmation). The id "
        "is derived from symbol, source, title and time: the same headline published twice is one.",
    )
    publish.add_argument("--symbol", required=True, help="news symbol, e.g. TSLA, IWM, BTC")
    publish.add_argument("--title", required=True, help="the headline")
    publish.add_argument("--source", default="manual", help="who published it (default: manual)")
    publish.add_argument("--at", type=_aware, default=None, metavar="ISO", help="published at (default: now)")
    publish.set_defaults(func=_publish)
    show = actions.add_parser(
        "show",
        help="the headlines an agent would read now, scored, and their sentiment",
        description="Read the configured news source as an agent run would (news.max_headlines, the newest) "
        "and print each headline's score and weight, then the recency-weighted sentiment.",
    )
    show.add_argument("--symbol", required=True, help="news symbol, e.g. TSLA, IWM, BTC")
    show.add_argument("--minutes", type=int, default=None, help="look back this far (default: news.lookback_minutes)")
    show.add_argument("--json", action="store_true", help="print the sentiment result and headlines as JSON")
    show.set_defaults(func=_show)
    source = actions.add_parser("source", help="print news.source (`kafka` or module:ClassName)")
    source.set_defaults(func=_source)


def _aware(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. {text}Z or {text}+00:00)")
    return moment.astimezone(UTC)


def _feed(args: argparse.Namespace) -> int:
    from tradeops.agents.paper_news import run_feed
    from tradeops.agents.settings import load_agents
    from tradeops.config import settings

    logging.getLogger("tradeops.agents").setLevel(logging.INFO)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run_feed(settings(), load_agents(), stop)
    return 0


def _publish(args: argparse.Namespace) -> int:
    from tradeops.agents.news import Headline, headline_event, publish_headline
    from tradeops.config import settings
    from tradeops.kafka.producer import DeliveryError

    at = args.at or datetime.now(UTC)
    digest = hashlib.sha256("\n".join([args.symbol, args.source, args.title, at.isoformat()]).encode()).hexdigest()
    headline = Headline(
        id=f"manual-{digest[:16]}", symbol=args.symbol, title=args.title, source=args.source, published_at=at
    )
    try:
        headline_event(headline)
    except EventValidationError as exc:
        print(f"tradeops: invalid headline: field '{exc.field}': {exc.reason} (nothing was published)", file=sys.stderr)
        return EXIT_INVALID
    try:
        report = publish_headline(headline, settings())
    except DeliveryError as exc:
        print(f"tradeops: headline {headline.id} NOT delivered: {exc}", file=sys.stderr)
        return EXIT_NOT_DELIVERED
    where = f"topic={report.topic} partition={report.partition} offset={report.offset}"
    print(f"delivered headline id={headline.id} {where}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from tradeops.agents.news import open_news_source
    from tradeops.agents.sentiment import analyze
    from tradeops.agents.settings import load_agents
    from tradeops.config import settings

    config = load_agents().news
    now = datetime.now(UTC)
    since = now - timedelta(minutes=args.minutes or config.lookback_minutes)
    source = open_news_source(config, settings())
    headlines = source.headlines(args.symbol, since=since, until=now, limit=config.max_headlines)
    result = analyze(headlines, now=now, half_life_minutes=config.half_life_minutes)
    if args.json:
        print_json(result.to_dict())
        return 0
    if not headlines:
        print(f"no headlines for {args.symbol} since {since:%Y-%m-%d %H:%M} UTC")
    else:
        sources = {h.id: h.source for h in headlines}
        rows = [_row(scored, sources[scored.id]) for scored in result.headlines]
        print_table(["published (UTC)", "age min", "compound", "weight", "source", "title"], rows)
    print(
        f"\nsentiment {result.score:+.3f}, confidence {result.confidence:.3f} ({len(headlines)} headline(s), "
        f"half-life {config.half_life_minutes:g} min, lexicon {result.lexicon_version})"
    )
    return 0


def _row(scored: ScoredHeadline, source: str) -> list[str]:
    return [
        f"{scored.published_at:%Y-%m-%d %H:%M}",
        f"{scored.age_minutes:.0f}",
        f"{scored.compound:+.3f}",
        f"{scored.weight:.3f}",
        source,
        scored.title,
    ]


def _source(args: argparse.Namespace) -> int:
    from tradeops.agents.settings import load_agents

    print(load_agents().news.source)
    return 0
