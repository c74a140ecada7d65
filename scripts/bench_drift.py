"""Benchmark of the feature drift check: false alarms on noise, detection of drift, time per call.

    PYTHONPATH=. .venv/bin/python scripts/bench_drift.py                 # the figures in docs/benchmarks.md
    PYTHONPATH=. .venv/bin/python scripts/bench_drift.py --sizes 180,500 --min-samples 100 --windows 0 \
        --targets rsi_14,rv_30 --skip-large                               # detection only, other features

Twenty simulated features shaped like the registry's (fat-tailed returns, log-normal volatilities,
a bounded oscillator, zero-inflated and discrete features, 1 % missing in two of them), correlated
through a latent Gaussian block structure. For each window size:

- noise: windows drawn from the reference's own distribution, in chains of ``--chain`` hourly runs
  against one reference (the state carried as the DAG carries it); the share of windows whose
  overall level is critical, and warning-or-worse;
- drift: from the first window on, one feature (each of ``--targets``) gets a mean shift of 0.5 sd, its
  variance doubled, or 15 % of its values removed; the share of trials that are critical within
  ``consecutive_windows`` windows (the earliest possible), flagged in the first window, the mean
  windows to critical (within twice k), and how often any other feature or the correlation check
  was flagged meanwhile;
- the wall time of ``assess`` per call; and once 30 features, 500,000 reference rows, 50,000
  current rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the simulation's small products: no thread contention

import numpy as np
import pandas as pd

from tradeops.market_data.drift import DriftAssessment, DriftState, assess
from tradeops.market_data.drift_config import DriftConfig

# name, family, parameter, latent block
SPECS: tuple[tuple[str, str, float, str], ...] = (
    ("ret_1", "t", 3, "return"),
    ("ret_5", "t", 4, "return"),
    ("ret_15", "t", 5, "return"),
    ("ret_60", "t", 6, "return"),
    ("rv_30", "lognormal", 0.4, "volatility"),
    ("rv_240", "lognormal", 0.3, "volatility"),
    ("rsi_14", "logistic", 0.9, "return"),
    ("macd", "t", 5, "trend"),
    ("macd_signal", "t", 5, "trend"),
    ("macd_hist", "t", 4, "trend"),
    ("atr_14", "lognormal", 0.5, "volatility"),
    ("vwap_dist_60", "t", 4, "trend"),
    ("volume_z_60", "skewed", 0.8, "volume"),
    ("amihud_60", "lognormal", 1.0, "volume"),
    ("range_pct", "lognormal", 0.6, "volatility"),
    ("close_location", "clipped", 0.35, "return"),
    ("roll_spread_60", "zero_inflated", 0.5, "volume"),
    ("spread_bps", "gamma", 2.0, "volume"),
    ("vol_regime", "binary", 0.3, "volatility"),
    ("trend_regime", "ternary", 0.6, "trend"),
)
NAMES = [spec[0] for spec in SPECS]
MISSING = {"amihud_60": 0.01, "volume_z_60": 0.005}  # the normal share of missing values
KINDS = ("mean +0.5 sd", "variance x2", "15 % missing")


def _latent_cholesky() -> np.ndarray:
    blocks = np.array([spec[3] for spec in SPECS])
    corr = np.where(blocks[:, None] == blocks[None, :], 0.5, 0.1)
    np.fill_diagonal(corr, 1.0)
    return np.linalg.cholesky(corr)


CHOLESKY = _latent_cholesky()


def _transform(z: np.ndarray, family: str, parameter: float, rng: np.random.Generator) -> np.ndarray:
    transforms: dict[str, Callable[[], np.ndarray]] = {
        "t": lambda: z / np.sqrt(rng.chisquare(parameter, z.size) / parameter),
        "lognormal": lambda: np.exp(parameter * z),
        "logistic": lambda: 100 / (1 + np.exp(-parameter * z)),
        "skewed": lambda: np.exp(parameter * z) - np.exp(parameter**2 / 2),
        "clipped": lambda: np.clip(0.5 + parameter * z, 0.0, 1.0),
        "zero_inflated": lambda: parameter * np.maximum(z, 0.0),
        "gamma": lambda: parameter * np.clip(1 - 1 / (9 * parameter) + z / np.sqrt(9 * parameter), 0, None) ** 3,
        "binary": lambda: (z > parameter).astype(float),
        "ternary": lambda: np.sign(z) * (np.abs(z) > parameter),
    }
    return transforms[family]()


def simulate(rng: np.random.Generator, rows: int, features: int = len(SPECS)) -> pd.DataFrame:
    """``rows`` pooled samples of the simulated features (the first ``features`` of them)."""
    latent = rng.standard_normal((rows, len(SPECS))) @ CHOLESKY.T
    columns = {}
    for j, (name, family, parameter, _) in enumerate(SPECS[:features]):
        values = _transform(latent[:, j], family, parameter, rng)
        if name in MISSING:
            values[rng.random(rows) < MISSING[name]] = np.nan
        columns[name] = values
    return pd.DataFrame(columns)


@dataclass(frozen=True)
class Moments:
    center: float
    scale: float


def moments(rng: np.random.Generator, rows: int = 1_000_000) -> dict[str, Moments]:
    """Each feature's mean and standard deviation, from a large sample (the injected drift's unit)."""
    big = simulate(rng, rows)
    return {name: Moments(float(big[name].mean()), float(big[name].std())) for name in NAMES}


def inject(frame: pd.DataFrame, name: str, kind: str, unit: Moments, rng: np.random.Generator) -> pd.DataFrame:
    values = frame[name].to_numpy(copy=True)
    if kind == KINDS[0]:
        values += 0.5 * unit.scale
    elif kind == KINDS[1]:
        values = unit.center + (values - unit.center) * np.sqrt(2.0)
    else:
        values[rng.random(values.size) < 0.15] = np.nan
    return frame.assign(**{name: values})


def _timed(
    times: list[float], reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig, state: DriftState | None
) -> DriftAssessment:
    start = time.perf_counter()
    result = assess(reference, current, config, state)
    times.append(time.perf_counter() - start)
    return result


def noise(
    size: int, args: argparse.Namespace, config: DriftConfig, rng: np.random.Generator, times: list[float]
) -> dict[str, float]:
    levels: list[str] = []
    flagged_feature_windows = 0
    for _ in range(max(1, args.windows // args.chain)):
        reference, state = simulate(rng, args.reference_rows), None
        for _ in range(args.chain):
            result = _timed(times, reference, simulate(rng, size), config, state)
            state = result.state
            levels.append(result.level)
            flagged_feature_windows += len(result.flagged)
    return {
        "windows": len(levels),
        "critical": levels.count("critical") / len(levels),
        "alert": sum(level in ("warning", "critical") for level in levels) / len(levels),
        "feature": flagged_feature_windows / (len(levels) * len(NAMES)),
    }


def detection(
    size: int,
    kind: str,
    target: str,
    args: argparse.Namespace,
    config: DriftConfig,
    rng: np.random.Generator,
    units: dict[str, Moments],
) -> dict[str, float]:
    k, horizon = config.consecutive_windows, 2 * config.consecutive_windows
    found: list[int] = []  # windows to critical, per trial (0 = not within the horizon)
    first_flagged = others = 0
    reference = simulate(rng, args.reference_rows)
    for trial in range(args.trials):
        if trial and trial % 20 == 0:
            reference = simulate(rng, args.reference_rows)
        state, when, other = None, 0, False
        for window in range(1, horizon + 1):
            current = inject(simulate(rng, size), target, kind, units[target], rng)
            result = assess(reference, current, config, state)
            state = result.state
            drifting = result.feature(target)
            first_flagged += window == 1 and drifting.flagged
            other |= any(item.name != target for item in result.flagged)
            other |= result.correlation.level in ("warning", "critical")
            if drifting.level == "critical":
                when = window
                break
        found.append(when)
        others += other
    hits = [w for w in found if w]
    return {
        "within_k": sum(1 for w in found if 0 < w <= k) / len(found),
        "first": first_flagged / len(found),
        "mean_windows": statistics.fmean(hits) if hits else float("nan"),
        "others": others / len(found),
    }


def large_case_seconds(rng: np.random.Generator, config: DriftConfig, repeats: int = 5) -> float:
    """Median wall time of one call: 30 features, 500,000 reference rows, 50,000 current rows."""

    def wide(rows: int) -> pd.DataFrame:
        base = simulate(rng, rows)
        extra = simulate(rng, rows, 10).add_suffix("_b")
        return pd.concat([base, extra], axis=1)

    reference, current = wide(500_000), wide(50_000)
    times: list[float] = []
    assess(reference, current, config)  # first call pays scipy's import
    for _ in range(repeats):
        _timed(times, reference, current, config, None)
    return statistics.median(times)


def _size(size: int, config: DriftConfig) -> str:
    return f"{size:,}" + (" (< min_samples: info)" if size < config.min_samples else "")


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f} %"


def _noise_table(sizes: list[int], args: argparse.Namespace, config: DriftConfig, rng: np.random.Generator) -> None:
    print(
        "| window (rows) | noise windows | critical | warning or worse | flagged feature-windows | assess ms (median) |"
    )
    print("|---|---|---|---|---|---|")
    for size in sizes:
        times: list[float] = []
        calm = noise(size, args, config, rng, times)
        print(
            f"| {_size(size, config)} | {calm['windows']:,} | {_pct(calm['critical'])} | {_pct(calm['alert'])} "
            f"| {_pct(calm['feature'])} | {1000 * statistics.median(times):.1f} |"
        )


def _drift_table(sizes: list[int], args: argparse.Namespace, config: DriftConfig, rng: np.random.Generator) -> None:
    units = moments(rng)
    print(
        "| window (rows) | drifting feature | drift | critical within k | flagged in window 1 "
        "| mean windows to critical | any other feature or pair flagged |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        for target in args.targets.split(","):
            for kind in KINDS:
                found = detection(size, kind, target, args, config, rng, units)
                print(
                    f"| {_size(size, config)} | {target} | {kind} | {_pct(found['within_k'])} | {_pct(found['first'])} "
                    f"| {found['mean_windows']:.2f} | {_pct(found['others'])} |"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="60,180,1440,42000", help="window sizes (rows), comma-separated")
    parser.add_argument("--windows", type=int, default=1000, help="noise windows per size (0: skip)")
    parser.add_argument("--chain", type=int, default=50, help="noise windows per reference")
    parser.add_argument("--trials", type=int, default=100, help="drift trials per kind, feature and size (0: skip)")
    parser.add_argument("--reference-rows", type=int, default=50_000)
    parser.add_argument("--targets", default="ret_1", help=f"drifting features, comma-separated, of {NAMES}")
    parser.add_argument("--min-samples", type=int, default=None, help="override DriftConfig.min_samples")
    parser.add_argument("--skip-large", action="store_true", help="skip the 30 x 500k x 50k timing")
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args()
    unknown = set(args.targets.split(",")) - set(NAMES)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; known: {NAMES}")
    config = DriftConfig(**({} if args.min_samples is None else {"min_samples": args.min_samples}))
    rng = np.random.default_rng(args.seed)
    sizes = [int(part) for part in args.sizes.split(",")]
    print(
        f"drift benchmark: {len(NAMES)} features, reference {args.reference_rows:,} rows, min_samples "
        f"{config.min_samples}, k {config.consecutive_windows}, FDR {config.fdr_alpha}, seed {args.seed}\n"
    )
    if args.windows:
        _noise_table(sizes, args, config, rng)
        print()
    if args.trials:
        _drift_table(sizes, args, config, rng)
        print()
    if not args.skip_large:
        seconds = large_case_seconds(rng, config)
        print(f"assess(): 30 features, reference 500,000 rows, current 50,000 rows: {seconds:.3f} s (median of 5)")


if __name__ == "__main__":
    main()
