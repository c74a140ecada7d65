"""Benchmark the models: weekly training on the default universe and lookback, and serving latency.

    .venv/bin/python scripts/bench_models.py [--days 90] [--calls 500]

Builds a throwaway feature store the way the nightly pipeline does (paper venue: extract ->
validate -> features -> load, one day at a time, for the configured universe), then runs the
weekly training as the task does (samples, purged CV of every candidate, held-out backtest,
MLflow run with the model card, registration) on a throwaway MLflow store, and times it per
phase with the process's peak memory. Then routes the new version to one instrument and times
``Predictor.predict`` (the whole call: routing lookup, model, prediction log row; and the
latency it records) and the bare model call, one row at a time. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _configure(workdir: Path) -> None:
    os.environ["TRADEOPS_DB_URL"] = f"sqlite:///{workdir / 'tradeops.db'}"
    os.environ["TRADEOPS__MARKET_DATA__STORE_URL"] = (workdir / "store").as_uri()
    os.environ["TRADEOPS__MODELS__TRACKING_URI"] = str(workdir / "mlflow" / "mlflow.db")
    os.environ["TRADEOPS__MODELS__ARTIFACT_ROOT"] = str(workdir / "mlflow" / "artifacts")


def build_store(days: list[date]) -> float:
    from upath import UPath

    from tradeops.config import settings
    from tradeops.market_data import pipeline
    from tradeops.venues.factory import open_raw_venue

    loaded = settings()
    root = UPath(loaded.market_data.store_url)
    started = time.perf_counter()
    for day in days:
        raw = pipeline.extract(loaded, day, lambda name: open_raw_venue(name, settings=loaded))
        result = pipeline.validate(loaded, day, raw)
        features = pipeline.compute_features(raw, result.bars, day, created_at=datetime.now(UTC))
        pipeline.load(root, day, features, result.summary())
    return time.perf_counter() - started


def train(before: date) -> tuple[dict[str, float], object]:
    from tradeops.config import settings
    from tradeops.models.training import evaluate
    from tradeops.models.training_run import record, samples_for

    loaded = settings()
    times: dict[str, float] = {}
    mark = time.perf_counter()
    samples = samples_for(loaded, before)
    times["samples"] = time.perf_counter() - mark
    mark = time.perf_counter()
    evaluation = evaluate(loaded, samples)
    times["evaluate"] = time.perf_counter() - mark
    mark = time.perf_counter()
    outcome = record(loaded, evaluation, samples, before)
    times["record"] = time.perf_counter() - mark
    times["total"] = sum(times.values())
    times["samples_n"] = float(len(samples))
    times["instruments"] = float(len(set(samples.instruments)))
    print(f"chosen {evaluation.chosen}; gates passed: {evaluation.passed}; failed: {', '.join(outcome.failed) or '-'}")
    return times, outcome


def serve(version: str, calls: int, day: date) -> dict[str, list[float]]:
    from tradeops.config import settings
    from tradeops.market_data.store import FeatureStore, open_root
    from tradeops.models import routing
    from tradeops.models.deployment import feature_columns, load
    from tradeops.models.serving import Predictor

    loaded = settings()
    rows = FeatureStore(open_root(loaded)).read_day(day)
    venue, symbol = str(rows["venue"].iloc[0]), str(rows["symbol"].iloc[0])  # an instrument that traded that day
    routing.assign([(venue, symbol)], version, "champion", actor="bench", reason="latency benchmark")
    rows = rows.loc[rows["symbol"].astype(str) == symbol].reset_index(drop=True)
    columns = feature_columns(loaded, version)
    predictor = Predictor(loaded)
    predictor.predict(venue, symbol, rows[columns].iloc[[0]])  # the one-off load, not timed
    served, wall, bare = [], [], []
    model = load(loaded, version)
    for index in range(calls):
        row = rows[columns].iloc[[index % len(rows)]]
        started = time.perf_counter()
        prediction = predictor.predict(venue, symbol, row, bar_ts=rows["ts"].iloc[index % len(rows)].to_pydatetime())
        wall.append((time.perf_counter() - started) * 1000)
        if prediction.error:
            raise RuntimeError(prediction.error)
        served.append(float(prediction.latency_ms))
        started = time.perf_counter()
        model.predict_proba(row)
        bare.append((time.perf_counter() - started) * 1000)
    return {"served": served, "wall": wall, "bare": bare}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--before", default="2026-11-29")
    args = parser.parse_args()
    before = date.fromisoformat(args.before)
    days = [before - timedelta(days=i) for i in range(args.days, 0, -1)]
    with tempfile.TemporaryDirectory(prefix="tradeops-bench-models-") as tmp:
        _configure(Path(tmp))
        from tradeops import schema

        schema.upgrade()
        built = build_store(days)
        print(f"feature store: {len(days)} days of the default universe built in {built:.1f} s (not part of training)")
        times, outcome = train(before)
        latency = serve(outcome.version, args.calls, days[-1])  # type: ignore[attr-defined]
    count, instruments = int(times["samples_n"]), int(times["instruments"])
    print(f"\nTraining: {count:,} samples of {instruments} instruments, {args.days} days")
    print("| phase | seconds |\n|---|---:|")
    for phase in ("samples", "evaluate", "record", "total"):
        print(f"| {phase} | {times[phase]:.1f} |")
    print(f"| peak memory (RSS) | {_peak_mb():.0f} MB |")
    print(f"\nServing, {args.calls} single-row predictions, load average {os.getloadavg()[0]:.2f}")
    print("| path | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|")
    paths = (
        ("wall", "Predictor.predict, the whole call (route lookup, model, prediction log row)"),
        ("served", "its recorded latency_ms (features to probability)"),
        ("bare", "model.predict_proba alone"),
    )
    for name, label in paths:
        values = latency[name]
        print(f"| {label} | {statistics.median(values):.2f} | {_pct(values, 99):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
