"""Benchmarks of the Kafka -> Airflow event path, against the running local stack (`make run`).

    python scripts/bench_events.py kill-switch --trials 20
    python scripts/bench_events.py throughput --valid 500 --malformed 50

kill-switch: from `publish critical-alert` to the last position closed on the paper venue, with
where the time goes (Kafka, triggerer, scheduler, task start, venue), read from Airflow's
metadata database and the paper venue's fills.
throughput: a burst of valid and malformed events; every valid one must be handled exactly once
(claims), every malformed one must reach the dead-letter topic; events per second.

Prints figures only; it asserts nothing about speed (see docs/benchmarks.md for results).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

from tradeops import risk
from tradeops.config import settings
from tradeops.db import default_db_url
from tradeops.event_inbox import dead_letter_counts, handled_count
from tradeops.events import build_event, topic_for
from tradeops.kafka.producer import publish
from tradeops.model import OrderRequest, Side
from tradeops.schema import require_current
from tradeops.venues.paper import PaperVenue
from tradeops.venues.paper_tables import fills_table, orders_table, positions_table

STOP_DAG = "emergency_stop_loss_saga"


def _airflow_db() -> Any:
    home = Path(os.environ.get("AIRFLOW_HOME", Path(__file__).resolve().parent.parent / ".local" / "airflow"))
    url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    return create_engine(url)


def _wait(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def _open_positions(trial: int) -> None:
    for venue, symbol in (("binance", "BTC/USDT:USDT"), ("bybit", "ETH/USDT:USDT"), ("okx", "BTC/USDT:USDT")):
        amount = Decimal("0.05") if symbol.startswith("BTC") else Decimal("0.5")
        PaperVenue(venue, settings()).place_order(
            OrderRequest(
                venue=venue,
                symbol=symbol,
                side=Side.BUY,
                amount=amount,
                client_order_id=f"bench{int(time.time())}t{trial}{venue[:2]}",
            )
        )


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


# Where the kill switch's time goes: (label, from mark, to mark). A trial's marks come from this
# script's clock (publish), the project database (HALTED, the close fills) and Airflow's metadata
# database (asset event, run, task instance); every clock is this machine's.
TOTAL = ("total: publish -> last position closed", "publish", "flat")
STAGES: tuple[tuple[str, str, str], ...] = (
    ("publish -> HALTED (the first HALTED written, by anyone)", "publish", "halted"),
    ("kafka + triggerer: publish -> asset event stored", "publish", "asset_event"),
    ("scheduler: asset event -> run created", "asset_event", "run_queued"),
    ("scheduler: run created -> run running", "run_queued", "run_started"),
    ("scheduler: run running -> task queued", "run_started", "task_queued"),
    ("executor: task queued -> task started", "task_queued", "task_started"),
    ("task: started -> its HALTED (DAG file import, start-up)", "task_started", "task_halted"),
    ("task: its HALTED -> last position closed (claim, cancel, close, re-check)", "task_halted", "flat"),
)
STOP_TASK = "halt_and_flatten"
# Exit orders of the stop carry ids from tradeops.stoploss.close_order_id: "sl" + 30 hex digits.
CLOSE_ORDER_PATTERN = "sl%"


@functools.cache
def _reader() -> Any:
    """A read-only view of the project database that takes no lock: the project's own engine opens
    every SQLite transaction with BEGIN IMMEDIATE, and polling with it would hold up the stop."""
    return create_engine(default_db_url())


def _open_legs() -> int:
    """Perp positions still open on the paper venue (one query, cheap enough to poll)."""
    with _reader().connect() as conn:
        sizes = conn.execute(select(positions_table.c.size)).scalars().all()
    return sum(1 for size in sizes if size != 0)


def _airflow_marks(engine: Any, event_id: str) -> dict[str, float | None]:
    """When the asset event was stored, its run created and started, the stop task queued and started."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT ae.timestamp AS fired, dr.queued_at AS queued, dr.start_date AS started, dr.id AS run "
                "FROM asset_event ae JOIN dagrun_asset_event x ON x.event_id = ae.id "
                "JOIN dag_run dr ON dr.id = x.dag_run_id "
                "WHERE CAST(ae.extra AS TEXT) LIKE :pattern AND dr.dag_id = :dag"
            ),
            {"pattern": f"%{event_id}%", "dag": STOP_DAG},
        ).first()
        if row is None:
            return {}
        task = conn.execute(
            text(
                "SELECT ti.queued_dttm AS queued, ti.start_date AS started FROM task_instance ti "
                "JOIN dag_run dr ON dr.run_id = ti.run_id AND dr.dag_id = ti.dag_id "
                "WHERE dr.id = :run AND ti.task_id = :task"
            ),
            {"run": row.run, "task": STOP_TASK},
        ).first()
    return {
        "asset_event": _ts(row.fired),
        "run_queued": _ts(row.queued),
        "run_started": _ts(row.started),
        "task_queued": _ts(task.queued) if task else None,
        "task_started": _ts(task.started) if task else None,
    }


def _project_marks(since: datetime) -> dict[str, float | None]:
    """The first HALTED since ``since``, the stop task's own HALTED, and the last close fill."""
    history = risk.trading_state_history
    with _reader().connect() as conn:
        halts = conn.execute(
            select(history.c.changed_by, history.c.changed_at)
            .where(history.c.state == risk.TradingState.HALTED.value, history.c.changed_at >= since)
            .order_by(history.c.id)
        ).all()
        last_fill = conn.execute(
            select(func.max(fills_table.c.at))
            .select_from(fills_table.join(orders_table, orders_table.c.order_id == fills_table.c.order_id))
            .where(orders_table.c.client_order_id.like(CLOSE_ORDER_PATTERN), fills_table.c.at >= since)
        ).scalar()
    by_task = [at for by, at in halts if by == f"airflow:{STOP_DAG}"]
    return {
        "halted": _ts(halts[0].changed_at) if halts else None,
        "task_halted": _ts(by_task[0]) if by_task else None,
        "flat": _ts(last_fill),
    }


def _burst_events(count: int) -> list[tuple[str, bytes]]:
    """``count`` valid events for the other topics that fire no DAG (below every threshold)."""
    kinds = (
        (
            "market-shock",
            {"symbol": "BTC/USDT", "venue": "binance", "move_pct": "0.5", "window_seconds": 60, "price": "60000"},
        ),
        ("capital-threshold", {"venue": "bybit", "asset": "USDT", "balance": "1000000000", "floor": "1"}),
        (
            "funding-rate-deviation",
            {
                "symbol": "BTC/USDT:USDT",
                "deviation_bps": "1",
                "rates": [
                    {"venue": "binance", "rate": "0.0001", "interval_hours": 8},
                    {"venue": "bybit", "rate": "0.0001", "interval_hours": 8},
                ],
            },
        ),
    )
    events = []
    for number in range(count):
        kind, fields = kinds[number % len(kinds)]
        event = build_event(kind, {**fields, "source": "bench-burst"})
        events.append((topic_for(event.event_type), event.model_dump_json().encode()))
    return events


def _burst_lag() -> int:
    """Messages of the other topics that their watchers have not committed yet (all groups)."""
    from confluent_kafka import Consumer, TopicPartition

    from tradeops.kafka.broker import client_config
    from tradeops.watchers import WATCHERS

    topics = settings().kafka.topics
    lag = 0
    for watcher in WATCHERS.values():
        topic = watcher.topic(topics)
        if topic == topics.risk_alerts:
            continue
        # Never subscribes, so it reads the group's committed offsets without joining the group.
        consumer = Consumer(client_config(**{"group.id": watcher.group_id, "enable.auto.commit": False}))
        try:
            partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
            for position in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=5):
                low, high = consumer.get_watermark_offsets(position, timeout=5)
                lag += high - max(position.offset, low)
        finally:
            consumer.close()
    return lag


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _summary(name: str, values: Sequence[float]) -> str:
    median, p95 = statistics.median(values), _percentile(values, 0.95)
    return f"| {name} | {len(values)} | {median:.2f} | {p95:.2f} | {max(values):.2f} |"


def _run_done(engine: Any, event_id: str) -> bool:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT dr.state FROM asset_event ae JOIN dagrun_asset_event x ON x.event_id = ae.id "
                "JOIN dag_run dr ON dr.id = x.dag_run_id "
                "WHERE CAST(ae.extra AS TEXT) LIKE :pattern AND dr.dag_id = :dag"
            ),
            {"pattern": f"%{event_id}%", "dag": STOP_DAG},
        ).first()
    return row is not None and row.state in ("success", "failed")


def _kill_switch_trial(engine: Any, trial: int, burst: list[tuple[str, bytes]], producer: Any) -> dict[str, float]:
    """One trial: three perp positions, (a burst on the other topics,) one alert; the marks."""
    risk.set_state(risk.TradingState.ACTIVE, reason="benchmark trial", changed_by="bench")
    _open_positions(trial)
    for topic, value in burst:
        producer.produce(topic, value=value, key=b"bench-burst")
    if burst and producer.flush(30) != 0:
        raise RuntimeError("the broker did not confirm the burst")
    alert = build_event("critical-alert", {"reason": f"benchmark trial {trial}", "scope": "bench"})
    since = datetime.now(UTC)
    publish(alert)
    if not _wait(lambda: _open_legs() == 0, 120, 0.05):
        raise RuntimeError(f"trial {trial}: positions not closed within 120 s")
    polled = time.time()
    _wait(functools.partial(_run_done, engine, alert.event_id), 60, 0.2)  # the report task ends the run
    marks = {"publish": since.timestamp(), **_airflow_marks(engine, alert.event_id), **_project_marks(since)}
    marks["load"] = os.getloadavg()[0]  # other work on the machine (1-minute load average)
    if marks.get("flat") is None:
        marks["flat"] = polled
    if burst:
        if not _wait(lambda: _burst_lag() == 0, 600, 0.5):
            raise RuntimeError(f"trial {trial}: the burst was not consumed within 600 s")
        marks["burst_consumed"] = time.time()
    return {name: value for name, value in marks.items() if value is not None}


def _durations(trials: list[dict[str, float]], stage: tuple[str, str, str]) -> list[float]:
    _label, first, last = stage
    return [marks[last] - marks[first] for marks in trials if first in marks and last in marks]


# Malformed messages for --malformed-before: unreadable, and not claiming to be a critical alert
# (one that did would set HALTED through the fail safe before the alert under test).
MALFORMED = b'{"event_type": "market_shock", "move_pct": '


def kill_switch_malformed(trials: int, warmup: int, malformed: int) -> int:
    """Alternate trials without and with ``malformed`` bad messages on risk-alerts just before the
    alert; print both and the ratio (target: within 2x)."""
    require_current()
    engine = _airflow_db()
    from confluent_kafka import Producer

    from tradeops.kafka.broker import bootstrap_servers

    producer = Producer({"bootstrap.servers": bootstrap_servers(), "acks": "all", "linger.ms": 5})
    topic = settings().kafka.topics.risk_alerts
    clean: list[dict[str, float]] = []
    dirty: list[dict[str, float]] = []
    for trial in range(warmup + 2 * trials):
        with_bad = trial % 2 == 1
        burst = [(topic, MALFORMED)] * malformed if with_bad else []
        try:
            marks = _kill_switch_trial(engine, trial, burst, producer)
        except RuntimeError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        if trial < warmup:
            continue
        (dirty if with_bad else clean).append(marks)
        print(
            f"trial {trial + 1:2d} ({malformed if with_bad else 0} malformed first): "
            f"{marks['flat'] - marks['publish']:6.2f} s, HALTED after {marks.get('halted', 0) - marks['publish']:.3f} s"
        )
    print()
    for name, stage in (("last position closed", TOTAL), ("HALTED", STAGES[0])):
        a, b = _durations(clean, stage), _durations(dirty, stage)
        print(
            f"publish -> {name}: without {statistics.median(a):.3f} / {_percentile(a, 0.95):.3f} s (p50 / p95), "
            f"with {malformed} malformed first {statistics.median(b):.3f} / {_percentile(b, 0.95):.3f} s: "
            f"ratio p50 {statistics.median(b) / statistics.median(a):.2f}, "
            f"p95 {_percentile(b, 0.95) / _percentile(a, 0.95):.2f}"
        )
    risk.set_state(risk.TradingState.ACTIVE, reason="benchmark finished", changed_by="bench")
    return 0


def kill_switch(trials: int, warmup: int, burst_size: int) -> int:
    require_current()
    engine = _airflow_db()
    producer = None
    if burst_size:
        from confluent_kafka import Producer

        from tradeops.kafka.broker import bootstrap_servers

        producer = Producer({"bootstrap.servers": bootstrap_servers(), "acks": "all", "linger.ms": 5})
    results: list[dict[str, float]] = []
    for trial in range(warmup + trials):
        burst = _burst_events(burst_size) if burst_size else []
        try:
            marks = _kill_switch_trial(engine, trial, burst, producer)
        except RuntimeError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        if trial < warmup:
            print(f"warm-up {trial + 1}: {marks['flat'] - marks['publish']:6.2f} s (not counted)")
            continue
        results.append(marks)
        steps = " ".join(f"{d[0]:.2f}" if d else "-" for d in (_durations([marks], s) for s in STAGES))
        print(f"trial {len(results):2d}: {marks['flat'] - marks['publish']:6.2f} s  stages: {steps}")
    _print_kill_switch(results, burst_size)
    risk.set_state(risk.TradingState.ACTIVE, reason="benchmark finished", changed_by="bench")
    return 0


def _print_kill_switch(results: list[dict[str, float]], burst_size: int) -> None:
    totals = _durations(results, TOTAL)
    during = f" during a {burst_size}-event burst on the other topics" if burst_size else ""
    print()
    print(
        f"kill switch, {len(results)} trials{during}: p50 {statistics.median(totals):.2f} s, "
        f"p95 {_percentile(totals, 0.95):.2f} s, max {max(totals):.2f} s"
    )
    if burst_size:
        drained = _durations(results, ("", "publish", "burst_consumed"))
        print(f"burst committed by every watcher {statistics.median(drained):.1f} s (median) after the alert")
    loads = sorted(marks["load"] for marks in results)
    print(
        f"1-minute load average during the trials: min {loads[0]:.2f}, median {statistics.median(loads):.2f}, "
        f"max {loads[-1]:.2f} ({os.cpu_count()} cores)"
    )
    print()
    print("| stage | n | p50 s | p95 s | max s |")
    print("|---|---|---|---|---|")
    for stage in (TOTAL, *STAGES):
        values = _durations(results, stage)
        if values:
            print(_summary(stage[0], values))


def throughput(valid: int, malformed: int) -> int:
    from confluent_kafka import Producer

    from tradeops.kafka.broker import bootstrap_servers

    require_current()
    topic = settings().kafka.topics.risk_alerts
    handled_before = handled_count(STOP_DAG)
    dead_before = dead_letter_counts().get(topic, 0)
    producer = Producer({"bootstrap.servers": bootstrap_servers(), "acks": "all", "linger.ms": 5})
    bad_every = max(1, valid // max(1, malformed))
    tag = f"burst-{int(time.time())}"
    start = time.time()
    sent_bad = 0
    for number in range(valid):
        alert = build_event("critical-alert", {"reason": f"{tag} {number}", "scope": "bench"})
        producer.produce(topic, value=alert.model_dump_json().encode(), key=b"bench")
        if sent_bad < malformed and number % bad_every == 0:
            producer.produce(topic, value=b'{"event_type": "critical_alert", "reason": ', key=b"bench")
            sent_bad += 1
    if producer.flush(30) != 0:
        print("the broker did not confirm the burst", file=sys.stderr)
        return 1
    sent = time.time()
    done = _wait(
        lambda: (
            handled_count(STOP_DAG) - handled_before >= valid
            and dead_letter_counts().get(topic, 0) - dead_before >= sent_bad
        ),
        900,
        0.5,
    )
    end = time.time()
    handled = handled_count(STOP_DAG) - handled_before
    dead = dead_letter_counts().get(topic, 0) - dead_before
    print(f"burst of {valid} valid + {sent_bad} malformed events produced in {sent - start:.2f} s")
    print(
        f"handled {handled} of {valid} valid events (claims are unique per event id: none twice), "
        f"dead-lettered {dead} of {sent_bad} malformed"
    )
    fired, last_fired = _asset_events(tag)
    if fired:
        print(
            f"triggerer: {fired} asset events (poll batches) stored, the last {last_fired - start:.1f} s after "
            f"the first send"
        )
    runs, swept = _claims_since(start)
    print(f"{len(runs)} stop-loss runs claimed them; the sweeper had to re-deliver {swept} of them")
    print(
        f"{valid / (end - start):.1f} valid events/s end to end ({end - start:.1f} s from first send to last "
        f"handled){'' if done else '  [TIMED OUT]'}"
    )
    risk.set_state(risk.TradingState.ACTIVE, reason="benchmark finished", changed_by="bench")
    return 0 if done else 1


def _claims_since(start: float) -> tuple[dict[str, int], int]:
    """Events the stop-loss DAG claimed since ``start``: per run, and how many by sweeper replays
    (runs the sweeper triggers are not asset-triggered)."""
    from sqlalchemy import func, select

    from tradeops.db import get_engine, transaction
    from tradeops.event_inbox import handled_events

    since = datetime.fromtimestamp(start, tz=UTC)
    table = handled_events
    query = (
        select(table.c.run_id, func.count())
        .where(table.c.consumer == STOP_DAG, table.c.claimed_at >= since)
        .group_by(table.c.run_id)
    )
    with transaction(get_engine()) as conn:
        runs = {str(run_id): int(count) for run_id, count in conn.execute(query).all()}
    swept = sum(count for run_id, count in runs.items() if not run_id.startswith("asset_triggered"))
    return runs, swept


def _asset_events(tag: str) -> tuple[int, float]:
    """How many asset events the watcher stored for this burst, and when the last one was stored."""
    with _airflow_db().connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) AS n, max(timestamp) AS last FROM asset_event WHERE CAST(extra AS TEXT) LIKE :pattern"
            ),
            {"pattern": f"%{tag} %"},
        ).first()
    return int(row.n), _ts(row.last) or 0.0


def _role(cmdline: list[str]) -> str | None:
    """Which part of the stack a process is, from its command line (None: not ours to count)."""
    line = " ".join(cmdline)
    if "kafka.Kafka" in line:
        return "kafka broker"
    if "airflow" not in line:
        return None
    for word, role in (
        ("scheduler", "scheduler"),
        ("triggerer", "triggerer"),
        ("dag-processor", "dag-processor"),
        ("api_server", "api-server"),
        ("LocalExecutor", "executor workers"),
        ("standalone", "standalone"),
    ):
        if word in line:
            return role
    return "tasks and other airflow processes"


def _stack_processes() -> list[Any]:
    """``airflow standalone`` (its pid file under ``AIRFLOW_HOME``) with every descendant, and the broker."""
    import psutil

    from tradeops.kafka.broker import kafka_dir

    home = Path(os.environ.get("AIRFLOW_HOME", Path(__file__).resolve().parent.parent / ".local" / "airflow"))
    processes = []
    for pid_file in (home / "standalone.pid", kafka_dir() / "broker.pid"):
        try:
            root = psutil.Process(int(pid_file.read_text().strip()))
            processes += [root, *root.children(recursive=True)]
        except (OSError, ValueError, psutil.NoSuchProcess):
            print(f"no process for {pid_file}", file=sys.stderr)
    return processes


def idle_cpu(seconds: float) -> int:
    """CPU used by each part of the local stack over ``seconds``, in % of one core."""
    import psutil

    before: dict[Any, tuple[str, float]] = {}
    for proc in _stack_processes():
        try:
            times = proc.cpu_times()
            before[proc] = (_role(proc.cmdline()) or "other", times.user + times.system)
        except psutil.NoSuchProcess:
            continue
    time.sleep(seconds)
    used: dict[str, float] = {}
    for proc, (role, start) in before.items():
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        used[role] = used.get(role, 0.0) + times.user + times.system - start
    print(f"CPU over {seconds:.0f} s, in % of one core (the processes running at the start)")
    print()
    print("| process | CPU % |")
    print("|---|---|")
    for role, value in sorted(used.items(), key=lambda item: -item[1]):
        print(f"| {role} | {100 * value / seconds:.1f} |")
    print(f"| all | {100 * sum(used.values()) / seconds:.1f} |")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    ks = commands.add_parser("kill-switch", help="publish -> last position closed, p50/p95/max")
    ks.add_argument("--trials", type=int, default=20)
    ks.add_argument("--warmup", type=int, default=1, help="trials run first and not counted")
    ks.add_argument("--burst", type=int, default=0, help="events produced to the other topics before each alert")
    ks.add_argument(
        "--malformed-before",
        type=int,
        default=0,
        help="alternate trials without and with this many malformed messages on risk-alerts just before the alert",
    )
    tp = commands.add_parser("throughput", help="burst of valid + malformed events")
    tp.add_argument("--valid", type=int, default=500)
    tp.add_argument("--malformed", type=int, default=50)
    cpu = commands.add_parser("idle-cpu", help="CPU of each process of the local stack while it idles")
    cpu.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args(argv)
    if args.command == "kill-switch" and args.malformed_before:
        return kill_switch_malformed(args.trials, args.warmup, args.malformed_before)
    if args.command == "kill-switch":
        return kill_switch(args.trials, args.warmup, args.burst)
    if args.command == "idle-cpu":
        return idle_cpu(args.seconds)
    return throughput(args.valid, args.malformed)


if __name__ == "__main__":
    sys.exit(main())
