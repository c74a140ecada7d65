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
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tradeops import risk
from tradeops.config import settings
from tradeops.event_inbox import dead_letter_counts, handled_count
from tradeops.events import build_event
from tradeops.kafka.producer import publish
from tradeops.model import OrderRequest, Side
from tradeops.schema import require_current
from tradeops.venues.paper import PaperVenue

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


def _positions() -> int:
    return sum(len(PaperVenue(name, settings()).positions()) for name in ("binance", "bybit", "okx"))


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
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _airflow_times(engine: Any, event_id: str) -> dict[str, float | None]:
    """When the asset event was stored, its run queued and started, and the stop task started."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT ae.timestamp AS fired, dr.queued_at AS queued, dr.start_date AS started, dr.id AS run "
                "FROM asset_event ae JOIN dagrun_asset_event x ON x.event_id = ae.id "
                "JOIN dag_run dr ON dr.id = x.dag_run_id WHERE ae.extra LIKE :pattern AND dr.dag_id = :dag"
            ),
            {"pattern": f"%{event_id}%", "dag": STOP_DAG},
        ).first()
        if row is None:
            return {}
        task = conn.execute(
            text(
                "SELECT ti.queued_dttm AS queued, ti.start_date AS started FROM task_instance ti "
                "JOIN dag_run dr ON dr.run_id = ti.run_id AND dr.dag_id = ti.dag_id "
                "WHERE dr.id = :run AND ti.task_id = 'halt_and_flatten'"
            ),
            {"run": row.run},
        ).first()
    return {
        "fired": _ts(row.fired),
        "run_queued": _ts(row.queued),
        "run_started": _ts(row.started),
        "task_queued": _ts(task.queued) if task else None,
        "task_started": _ts(task.started) if task else None,
    }


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _summary(name: str, values: Sequence[float]) -> str:
    return f"| {name} | {statistics.median(values):.2f} | {_percentile(values, 0.95):.2f} | {max(values):.2f} |"


def kill_switch(trials: int) -> int:
    require_current()
    engine = _airflow_db()
    totals: list[float] = []
    stages: dict[str, list[float]] = {k: [] for k in ("kafka+triggerer", "scheduler", "task start", "venue")}
    for trial in range(trials):
        risk.set_state(risk.TradingState.ACTIVE, reason="benchmark trial", changed_by="bench")
        _open_positions(trial)
        alert = build_event("critical-alert", {"reason": f"benchmark trial {trial}", "scope": "bench"})
        start = time.time()
        publish(alert)
        if not _wait(lambda: _positions() == 0, 120):
            print(f"trial {trial}: positions not closed within 120 s", file=sys.stderr)
            return 1
        flat = time.time()
        totals.append(flat - start)
        times = _airflow_times(engine, alert.event_id)
        if times.get("fired") and times.get("run_started") and times.get("task_started"):
            stages["kafka+triggerer"].append(times["fired"] - start)
            stages["scheduler"].append(times["run_started"] - times["fired"])
            stages["task start"].append(times["task_started"] - times["run_started"])
            stages["venue"].append(flat - times["task_started"])
        latest = {k: round(v[-1], 2) for k, v in stages.items() if v}
        print(f"trial {trial + 1:2d}: {flat - start:6.2f} s  {json.dumps(latest)}")
        _wait(functools.partial(_run_done, engine, alert.event_id), 60, 0.2)  # the report task ends the run
    print()
    print(
        f"kill switch, {trials} trials: p50 {statistics.median(totals):.2f} s, "
        f"p95 {_percentile(totals, 0.95):.2f} s, max {max(totals):.2f} s"
    )
    print()
    print("| stage | p50 s | p95 s | max s |")
    print("|---|---|---|---|")
    print(_summary("total: publish -> last position closed", totals))
    for name, values in stages.items():
        if values:
            print(_summary(name, values))
    risk.set_state(risk.TradingState.ACTIVE, reason="benchmark finished", changed_by="bench")
    return 0


def _run_done(engine: Any, event_id: str) -> bool:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT dr.state FROM asset_event ae JOIN dagrun_asset_event x ON x.event_id = ae.id "
                "JOIN dag_run dr ON dr.id = x.dag_run_id WHERE ae.extra LIKE :pattern AND dr.dag_id = :dag"
            ),
            {"pattern": f"%{event_id}%", "dag": STOP_DAG},
        ).first()
    return row is not None and row.state in ("success", "failed")


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
            text("SELECT count(*) AS n, max(timestamp) AS last FROM asset_event WHERE extra LIKE :pattern"),
            {"pattern": f"%{tag} %"},
        ).first()
    return int(row.n), _ts(row.last) or 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    ks = commands.add_parser("kill-switch", help="publish -> last position closed, p50/p95/max")
    ks.add_argument("--trials", type=int, default=20)
    tp = commands.add_parser("throughput", help="burst of valid + malformed events")
    tp.add_argument("--valid", type=int, default=500)
    tp.add_argument("--malformed", type=int, default=50)
    args = parser.parse_args(argv)
    if args.command == "kill-switch":
        return kill_switch(args.trials)
    return throughput(args.valid, args.malformed)


if __name__ == "__main__":
    sys.exit(main())
