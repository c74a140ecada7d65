"""``tradeops kafka watchers | dead-letters | stale``: what the Kafka watchers are doing and what
they refused, from the project database."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

# A watcher whose heartbeat is older than this many heartbeat intervals is reported as silent.
SILENT_AFTER_HEARTBEATS = 3


def register_actions(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    watchers = actions.add_parser(
        "watchers",
        help="show each watcher: heartbeat, last message, lag, broker up/down, counters (exit 1 if one is unwell)",
        description=(
            "One line per Kafka watcher, as it last recorded itself (every kafka.watch.heartbeat_seconds): "
            "its heartbeat age, the last message it read, its consumer lag, whether it reaches the broker, "
            "what it fired, dead-lettered, found stale or in conflict, and its last error. Exit 1 when a "
            "watcher is silent (no heartbeat for 3 intervals), cannot reach the broker, or never ran."
        ),
    )
    watchers.add_argument("--json", action="store_true", help="print JSON")
    watchers.set_defaults(func=_watchers)
    letters = actions.add_parser(
        "dead-letters",
        help="list the latest dead-lettered messages with their reason",
        description="The latest messages the watchers refused: source position, field, reason, and where "
        "the copy is in the dead-letter topic (truncated copies say so).",
    )
    letters.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    letters.add_argument("--topic", action="append", default=None, help="only this source topic (repeatable)")
    letters.add_argument("--json", action="store_true", help="print JSON")
    letters.set_defaults(func=_dead_letters)
    stale = actions.add_parser(
        "stale",
        help="list the latest stale events (older than kafka.watch.max_event_age_seconds: never fired)",
        description="Events a watcher or the sweeper read too late to act on: type, id, age, position.",
    )
    stale.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    stale.add_argument("--json", action="store_true", help="print JSON")
    stale.set_defaults(func=_stale)


def _age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = (now - then).total_seconds()
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def watcher_problems(health: Any, now: datetime, heartbeat_seconds: float) -> list[str]:
    """Why ``health`` (a WatcherHealth, or None when the watcher never ran) needs a look."""
    if health is None:
        return ["never recorded a heartbeat (is the triggerer running and its DAG unpaused?)"]
    problems = []
    silent = (now - health.heartbeat_at).total_seconds()
    if silent > SILENT_AFTER_HEARTBEATS * heartbeat_seconds:
        problems.append(f"silent for {silent:.0f}s (triggerer down or watcher stopped)")
    if health.broker_state == "down":
        since = health.broker_down_since.isoformat(timespec="seconds") if health.broker_down_since else "?"
        problems.append(f"broker unreachable since {since}")
    return problems


def _watchers(args: argparse.Namespace) -> int:
    from tradeops.cli.output import print_json, print_table
    from tradeops.config import settings
    from tradeops.kafka.watch_store import watcher_healths
    from tradeops.schema import require_current
    from tradeops.watchers import WATCHERS

    require_current()
    now = datetime.now(UTC)
    every = settings().kafka.watch.heartbeat_seconds
    recorded = {h.watcher: h for h in watcher_healths()}
    rows = []
    unwell = False
    for name in sorted(set(WATCHERS) | set(recorded)):
        health = recorded.get(name)
        problems = watcher_problems(health, now, every)
        unwell = unwell or bool(problems)
        rows.append((name, health, problems))
    if args.json:
        print_json([{"watcher": n, "health": h.__dict__ if h else None, "problems": p} for n, h, p in rows])
        return 1 if unwell else 0
    print_table(
        [
            "watcher",
            "status",
            "broker",
            "heartbeat",
            "last message",
            "lag",
            "read",
            "fired",
            "dead",
            "stale",
            "conflicts",
        ],
        [
            (
                name,
                "ok" if not problems else "PROBLEM",
                h.broker_state if h else "-",
                _age(h.heartbeat_at, now) if h else "never",
                _age(h.last_message_at, now) if h else "-",
                "?" if h is None or h.lag is None else h.lag,
                h.messages if h else "-",
                h.fired if h else "-",
                h.dead_lettered if h else "-",
                h.stale if h else "-",
                h.conflicts if h else "-",
            )
            for name, h, problems in rows
        ],
    )
    for name, h, problems in rows:
        for problem in problems:
            print(f"{name}: {problem}")
        if h is not None and h.last_error:
            print(f"{name}: last error: {h.last_error}")
    return 1 if unwell else 0


def _dead_letters(args: argparse.Namespace) -> int:
    from tradeops.cli.output import print_json, print_table
    from tradeops.event_inbox import recent_dead_letters
    from tradeops.schema import require_current

    require_current()
    letters = recent_dead_letters(limit=args.limit, topics=args.topic)
    if args.json:
        print_json([letter.__dict__ for letter in letters])
        return 0
    print_table(
        ["at", "source", "field", "reason", "copy", "watcher"],
        [
            (
                letter.at.isoformat(timespec="seconds"),
                f"{letter.topic}[{letter.partition}]@{letter.offset}",
                letter.field,
                letter.reason[:100],
                _copy(letter),
                letter.watcher,
            )
            for letter in letters
        ],
    )
    return 0


def _copy(letter: Any) -> str:
    if letter.status != "stored":
        return f"{letter.status} (not confirmed yet)"
    where = f"[{letter.dlq_partition}]@{letter.dlq_offset}" if letter.dlq_partition is not None else "stored"
    return f"{where} truncated from {letter.size} B" if letter.truncated else where


def _stale(args: argparse.Namespace) -> int:
    from tradeops.cli.output import print_json, print_table
    from tradeops.kafka.watch_store import recent_stale
    from tradeops.schema import require_current

    require_current()
    events = recent_stale(limit=args.limit)
    if args.json:
        print_json([event.__dict__ for event in events])
        return 0
    print_table(
        ["at", "watcher", "event type", "event id", "age", "source"],
        [
            (
                e.at.isoformat(timespec="seconds") if e.at else "",
                e.watcher,
                e.event_type,
                e.event_id,
                f"{e.age_seconds:.0f}s",
                f"{e.topic}[{e.partition}]@{e.offset}",
            )
            for e in events
        ],
    )
    return 0
