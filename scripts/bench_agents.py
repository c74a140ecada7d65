"""What one trading-agent run costs on the running local stack (`make run`), and what the three
agents on their schedules take of the machine.

    python scripts/bench_agents.py --agent btc --runs 5 --idle 30 [--trade]

Each run is triggered with `airflow dags trigger` and followed in Airflow's metadata database
until it ends. Measured per run: task processes (task instances that ran), wall time (run start
to end), CPU seconds of the whole machine above the idle stack's own rate (measured first, for
--idle seconds) less what the `airflow dags trigger` command itself used, peak extra memory in
use while it ran. Then, from each agent's cron schedule over
a weekday, the runs per day and in the busiest hour, and the share of the machine's cores the
three agents take. Prints figures only; asserts nothing (results in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
from sqlalchemy import create_engine, text

from tradeops.agents.settings import AgentConfig, agents, dag_id
from tradeops.config import settings
from tradeops.schema import require_current

DONE = {"success", "failed"}
# --trade: published before each run so its sentiment is strongly bullish and it buys (paper only).
BULLISH = (
    "{name} rallies to a record high as buyers pile in",
    "{name} beats estimates and raises guidance",
    "Analysts upgrade {name}; shares surge",
    "{name} jumps on strong demand",
)


def _airflow_db() -> Any:
    home = Path(os.environ.get("AIRFLOW_HOME", Path(__file__).resolve().parent.parent / ".local" / "airflow"))
    url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    return create_engine(url)


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _trigger(dag: str, run_id: str) -> float:
    """Trigger the run; returns the CPU seconds the `airflow dags trigger` process itself used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        ["airflow", "dags", "trigger", dag, "--run-id", run_id], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        sys.exit(f"airflow dags trigger failed: {result.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _run_state(engine: Any, dag: str, run_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT state, start_date, end_date FROM dag_run WHERE dag_id = :d AND run_id = :r"),
            {"d": dag, "r": run_id},
        ).first()


def _tasks(engine: Any, dag: str, run_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT task_id, map_index, state, start_date, end_date FROM task_instance "
                    "WHERE dag_id = :d AND run_id = :r ORDER BY start_date"
                ),
                {"d": dag, "r": run_id},
            )
        )


def _seconds(start: Any, end: Any) -> float:
    if isinstance(start, str):
        start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)
    return (end - start).total_seconds()


def _publish_bullish(symbol: str) -> None:
    from tradeops.agents.news import Headline, publish_headline
    from tradeops.config import settings

    now = datetime.now(UTC)
    for number, title in enumerate(BULLISH * 3):  # enough to outweigh the paper feed's own headlines
        headline = Headline(
            id=f"bench-{now.timestamp()}-{number}",
            symbol=symbol,
            title=title.format(name=symbol),
            source="bench",
            published_at=now - timedelta(seconds=30),
        )
        publish_headline(headline, settings())


def measure_run(engine: Any, dag: str, idle_rate: float, timeout: float, news_symbol: str | None) -> dict[str, Any]:
    if news_symbol is not None:
        _publish_bullish(news_symbol)
    run_id = f"bench__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
    baseline_memory = psutil.virtual_memory().used
    busy_before, started = _busy_seconds(), time.monotonic()
    trigger_cpu = _trigger(dag, run_id)
    peak_memory = 0
    row = None
    while time.monotonic() - started < timeout:
        peak_memory = max(peak_memory, psutil.virtual_memory().used - baseline_memory)
        row = _run_state(engine, dag, run_id)
        if row is not None and row.state in DONE:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    busy = _busy_seconds() - busy_before - idle_rate * elapsed - trigger_cpu
    if row is None or row.state not in DONE:
        sys.exit(f"{run_id} did not finish within {timeout:.0f} s (is the scheduler running? make status)")
    tasks = _tasks(engine, dag, run_id)
    ran = [t for t in tasks if t.start_date is not None and t.end_date is not None]
    return {
        "run_id": run_id,
        "state": row.state,
        "wall": _seconds(row.start_date, row.end_date),
        "tasks_ran": len(ran),
        "task_seconds": sum(_seconds(t.start_date, t.end_date) for t in ran),
        "cpu": busy,
        "memory_mb": peak_memory / 2**20,
        "slowest": max(ran, key=lambda t: _seconds(t.start_date, t.end_date)).task_id if ran else "-",
    }


def runs_per_day(agent: AgentConfig, day: datetime) -> tuple[int, int, dict[int, int]]:
    """Runs of ``agent``'s schedule over the UTC day ``day``, in its busiest UTC hour, per hour."""
    from croniter import croniter

    zone = ZoneInfo(agent.timezone)
    start = day.astimezone(zone) - timedelta(seconds=1)
    schedule = croniter(agent.schedule, start)
    per_hour: dict[int, int] = {}
    while True:
        moment = schedule.get_next(datetime).astimezone(UTC)
        if moment >= day + timedelta(days=1):
            break
        per_hour[moment.hour] = per_hour.get(moment.hour, 0) + 1
    return sum(per_hour.values()), max(per_hour.values(), default=0), per_hour


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default="btc", help="the agent to run (config/agents.yaml; default btc)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle stack measured first")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one run may take")
    parser.add_argument(
        "--trade", action="store_true", help="publish bullish headlines before each run so it buys (paper venue only)"
    )
    args = parser.parse_args()
    require_current()
    configured = agents()
    agent = configured.agent(args.agent)  # an unknown name fails here, naming the known ones
    dag = dag_id(args.agent)
    if args.trade and settings().venue(agent.venue).kind != "paper":
        sys.exit(f"--trade buys on {agent.venue}, which is not a paper venue: refused")
    engine = _airflow_db()
    subprocess.run(["airflow", "dags", "unpause", dag], capture_output=True, timeout=120, check=False)

    print(f"idle stack: measuring {args.idle:.0f} s ...", flush=True)
    before = _busy_seconds()
    time.sleep(args.idle)
    idle_rate = (_busy_seconds() - before) / args.idle
    cores = psutil.cpu_count() or 1
    print(f"idle stack: {idle_rate:.3f} CPU-s per s ({idle_rate / cores:.1%} of {cores} cores)")

    symbol = agent.headline_symbol if args.trade else None
    results = [measure_run(engine, dag, idle_rate, args.timeout, symbol) for _ in range(args.runs)]
    print(f"\n{'run':<32} {'state':<8} {'wall s':>7} {'tasks':>5} {'task s':>7} {'CPU s':>7} {'mem MB':>7}  slowest")
    for r in results:
        print(
            f"{r['run_id']:<32} {r['state']:<8} {r['wall']:>7.1f} {r['tasks_ran']:>5} {r['task_seconds']:>7.1f} "
            f"{r['cpu']:>7.1f} {r['memory_mb']:>7.0f}  {r['slowest']}"
        )
    cpu = statistics.median(r["cpu"] for r in results)
    wall = statistics.median(r["wall"] for r in results)
    print(f"\nmedian per run: wall {wall:.1f} s, CPU {cpu:.1f} s above idle, {results[0]['tasks_ran']} task processes")

    day = datetime(2026, 12, 2, tzinfo=UTC)  # a Wednesday with a full NYSE session
    total_day = 0
    hourly: dict[int, int] = {}
    print(f"\nschedules on {day.date()} (UTC), every run costed at the median above:")
    for name, agent in configured.agents.items():
        count, busiest, per_hour = runs_per_day(agent, day)
        total_day += count
        for hour, n in per_hour.items():
            hourly[hour] = hourly.get(hour, 0) + n
        print(f"  {name:<6} {agent.schedule:<20} {agent.timezone:<18} {count:>4} runs/day, busiest hour {busiest}")
    peak_hour = max(hourly.values())
    print(
        f"  all    {total_day} runs/day: {total_day * cpu / 60:.1f} CPU-min/day, "
        f"{total_day * cpu / 86400 / cores:.2%} of {cores} cores on average; busiest hour {peak_hour} runs: "
        f"{peak_hour * cpu / 3600 / cores:.2%} of the cores"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
