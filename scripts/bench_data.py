"""Benchmark the nightly data pipeline: N symbols x 1,440 one-minute bars through every stage.

    .venv/bin/python scripts/bench_data.py [--symbols 700] [--day 2026-11-24] [--runs 5]

Runs extract (paper venue) -> validate -> features -> load -> archive in one process per run, on a
throwaway project database and a local feature store under a temporary directory, exactly as the
Airflow tasks call them (without the hand-over files between tasks). Prints wall time per stage
and the process's peak resident memory (``ru_maxrss``), as a markdown table of the median, min and
max of ``--runs`` runs. A stage's figure includes the imports it is the first to need (pandera for
validate, for instance); in Airflow each stage is its own task process and pays all of its own.
Targets on 2 cores: validate + features + load <= 3 s, the whole run <= 60 s, peak <= 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _configure(workdir: Path, symbols: int) -> None:
    names = [f"S{i:04d}/USDT" for i in range(symbols)]
    os.environ["TRADEOPS_DB_URL"] = f"sqlite:///{workdir / 'tradeops.db'}"
    os.environ["TRADEOPS__VENUES__BENCH__KIND"] = "paper"
    os.environ["TRADEOPS__VENUES__BENCH__MARKETS"] = json.dumps(names)
    prices = {"BTC": "65000", "ETH": "3200", "TSLA": "250", "IWM": "220"}
    prices.update({name.split("/")[0]: str(5 + i % 500) for i, name in enumerate(names)})
    os.environ["TRADEOPS__PAPER__PRICES"] = json.dumps(prices)
    os.environ["TRADEOPS__MARKET_DATA__UNIVERSE"] = json.dumps({"bench": names})
    os.environ["TRADEOPS__MARKET_DATA__STORE_URL"] = (workdir / "store").as_uri()


def run(day: date, symbols: int) -> dict[str, float]:
    from upath import UPath

    from tradeops import schema
    from tradeops.config import settings
    from tradeops.market_data import pipeline
    from tradeops.venues.factory import open_raw_venue

    schema.upgrade()
    loaded = settings()
    root = UPath(loaded.market_data.store_url)
    times: dict[str, float] = {}
    started = time.perf_counter()
    raw = pipeline.extract(loaded, day, lambda name: open_raw_venue(name, settings=loaded))
    times["extract"] = time.perf_counter() - started
    mark = time.perf_counter()
    result = pipeline.validate(loaded, day, raw)
    times["validate"] = time.perf_counter() - mark
    mark = time.perf_counter()
    features = pipeline.compute_features(raw, result.bars, day, created_at=datetime.now(UTC))
    times["features"] = time.perf_counter() - mark
    mark = time.perf_counter()
    manifest = pipeline.load(root, day, features, result.summary())
    times["load"] = time.perf_counter() - mark
    mark = time.perf_counter()
    pipeline.archive(root, day, raw)
    times["archive"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - started
    times["bars"] = float(len(result.bars))
    times["feature_rows"] = float(manifest["rows"])
    times["findings"] = float(len(result.findings))
    return times


STAGES = ("extract", "validate", "features", "load", "archive")


def _one(symbols: int, day: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tradeops-bench-data-") as tmp:
        _configure(Path(tmp), symbols)
        times = run(date.fromisoformat(day), symbols)
    times["core"] = times["validate"] + times["features"] + times["load"]
    times["peak_mb"] = _peak_mb()
    return times


def _fresh(symbols: int, day: str) -> dict[str, float]:
    """One run in a new interpreter: every stage pays its imports, as each Airflow task does."""
    out = subprocess.run(
        [sys.executable, __file__, "--symbols", str(symbols), "--day", day, "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=700)
    parser.add_argument("--day", default="2026-11-24")
    parser.add_argument("--runs", type=int, default=1, help="repeat in fresh processes; median, min, max")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(_one(args.symbols, args.day)))
        return
    runs = [_fresh(args.symbols, args.day) for _ in range(max(args.runs, 1))]
    first = runs[0]
    print(
        f"{int(first['bars']):,} bars ({args.symbols} symbols x 1,440 minutes), "
        f"{int(first['feature_rows']):,} feature rows, {int(first['findings'])} findings; "
        f"{len(runs)} run(s), each in a fresh process; load average {os.getloadavg()[0]:.2f}"
    )
    print("| stage | median | min | max |")
    print("|---|---:|---:|---:|")
    rows = [(stage, stage) for stage in STAGES]
    rows += [("**validate + features + load**", "core"), ("whole run", "total")]
    for label, key in rows:
        values = [r[key] for r in runs]
        print(f"| {label} | {statistics.median(values):.2f} s | {min(values):.2f} s | {max(values):.2f} s |")
    peaks = [r["peak_mb"] for r in runs]
    print(f"| peak memory (RSS) | {statistics.median(peaks):.0f} MB | {min(peaks):.0f} MB | {max(peaks):.0f} MB |")
    core = [r["core"] for r in runs]
    print(
        f"validate + features + load <= 3 s in {sum(c <= 3.0 for c in core)} of {len(core)} runs; "
        f"whole run <= 60 s in {sum(r['total'] <= 60 for r in runs)}; peak <= 1 GB in {sum(p <= 1024 for p in peaks)}"
    )


if __name__ == "__main__":
    main()
