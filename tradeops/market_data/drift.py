"""Feature drift between a reference sample and the current window, with few false alarms.

``assess`` compares each feature of the window with the reference (the champion's training
window, or the store's previous 30 days) in two checks:

- distribution: is it different (the KS test and the chi-square test of the PSI bins, the
  stronger of the two, Bonferroni-corrected) and by how much: PSI on reference-quantile bins, the
  shift of the median in robust standard deviations of the reference, or the ratio of interdecile
  ranges. PSI alone rates a shape-dependent mix: a 0.5-sigma shift is PSI 0.24 on a normal feature
  but 0.48 on a t(3) return, and variance x2 only 0.14 and 0.11; shift and spread measure those
  two changes the same way whatever the shape;
- missing values: the rise of the window's missing share over the reference's (one-sided Fisher
  exact test).

It also reports the Jensen-Shannon distance and the share outside the reference's robust range,
and checks the Spearman correlations between features (Fisher z test per pair).

A check fires only when it is significant after Benjamini-Hochberg control across the window's
tests AND its effect reaches the warning threshold: thresholds alone alert on noise (a 60-sample
window crosses PSI 0.2 29 % of the time), tests alone on trivia (with a million samples a
0.02-sigma shift has p=1e-33). A fired feature is at warning; it is critical when an effect is
above its critical threshold and the feature has fired in ``consecutive_windows`` windows in a
row. ``DriftState`` carries those streaks between runs; a window too small to decide
(``min_samples``) is "info" and leaves them as they were.

Pure computation: numpy and scipy, column by column; no I/O, no clock.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from tradeops.market_data.drift_config import DriftConfig

if TYPE_CHECKING:
    import pandas as pd

Level = Literal["ok", "info", "warning", "critical"]
LEVELS: tuple[Level, ...] = ("ok", "info", "warning", "critical")  # in rising severity
_DECILES = np.array([0.1, 0.5, 0.9])  # robust centre and spread, defined for zero-inflated features too
_SIGMAS_PER_SPREAD = 2.5631  # interdecile range of a normal distribution, in standard deviations
_MAX_PAIRS = 20  # fired correlation pairs kept in an assessment
_SPEARMAN_VAR = 1.06  # var(atanh(Spearman rho)) * (n - 3), Fieller, Hartley and Pearson (1957)


def worst(levels: Sequence[str]) -> Level:
    """The most severe of ``levels`` ("ok" for none)."""
    return max(levels, key=LEVELS.index, default="ok")  # type: ignore[return-value]


class _Record:
    """to_dict / from_dict for the frozen result records: plain JSON (NaN becomes null)."""

    __slots__ = ()
    _nested: ClassVar[dict[str, Any]] = {}  # field -> its record type (of each item, for a tuple)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [item.to_dict() for item in value]
            elif f.name in self._nested:
                value = value.to_dict()
            elif isinstance(value, float):
                value = float(value) if math.isfinite(value) else None
            data[f.name] = dict(value) if isinstance(value, dict) else value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        kwargs = {f.name: data[f.name] for f in fields(cls)}  # type: ignore[arg-type]
        for f in fields(cls):  # type: ignore[arg-type]
            value, kind = kwargs[f.name], cls._nested.get(f.name)
            if kind is not None:
                kwargs[f.name] = tuple(map(kind.from_dict, value)) if isinstance(value, list) else kind.from_dict(value)
            elif f.type == "float":
                kwargs[f.name] = math.nan if value is None else float(value)
        return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class DriftState:
    """What one run hands the next: per feature, the windows in a row it fired in."""

    streaks: dict[str, int] = field(default_factory=dict)
    correlation_streak: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"streaks": dict(self.streaks), "correlation_streak": self.correlation_streak}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftState:
        streaks = {str(name): int(count) for name, count in data["streaks"].items()}
        if any(count < 0 for count in streaks.values()) or int(data["correlation_streak"]) < 0:
            raise ValueError(f"negative streak in drift state: {dict(data)}")
        return cls(streaks=streaks, correlation_streak=int(data["correlation_streak"]))


@dataclass(frozen=True, slots=True)
class FeatureDrift(_Record):
    """One feature in one window. Rates are shares (0.05 = 5 %); NaN where not computed."""

    name: str
    level: Level
    reason: str  # why it is flagged or undecided, with its figures; "" when ok
    streak: int  # consecutive windows fired, this one included
    n_current: int  # non-missing values
    n_reference: int
    psi: float
    js_distance: float  # Jensen-Shannon distance (base 2, 0-1) on the PSI bins
    ks_statistic: float
    ks_p: float
    chi2_p: float  # chi-square test of the PSI bins
    shift: float  # median, window minus reference, in robust sd of the reference (interdecile range / 2.563)
    spread_ratio: float  # interdecile range, window over reference
    distribution_q: float  # BH q-value of the distribution check
    missing_current: float
    missing_reference: float
    missing_q: float
    outside_current: float  # share outside the reference's robust range
    outside_reference: float

    @property
    def flagged(self) -> bool:
        return self.level in ("warning", "critical")


@dataclass(frozen=True, slots=True)
class PairChange(_Record):
    """A pair of features whose Spearman correlation moved."""

    first: str
    second: str
    reference: float
    current: float
    q_value: float


@dataclass(frozen=True, slots=True)
class CorrelationDrift(_Record):
    _nested: ClassVar[dict[str, type]] = {"pairs": PairChange}

    level: Level
    reason: str
    streak: int
    max_change: float  # largest absolute change over the pairs that could be tested
    pairs: tuple[PairChange, ...]  # the fired pairs, largest change first (at most 20)


@dataclass(frozen=True, slots=True)
class DriftAssessment(_Record):
    """The verdict on one window; ``state`` is what the caller stores for the next run."""

    _nested: ClassVar[dict[str, Any]] = {"features": FeatureDrift, "correlation": CorrelationDrift, "state": DriftState}

    level: Level
    summary: str
    rows_current: int
    rows_reference: int
    window_start: str | None  # the current frame's first and last index, when it holds times
    window_end: str | None
    features: tuple[FeatureDrift, ...]
    correlation: CorrelationDrift
    state: DriftState
    config: dict[str, Any]  # the thresholds this verdict used

    @property
    def flagged(self) -> tuple[FeatureDrift, ...]:
        return tuple(item for item in self.features if item.flagged)

    def feature(self, name: str) -> FeatureDrift:
        for item in self.features:
            if item.name == name:
                return item
        raise KeyError(f"no feature '{name}' in this assessment")


# ---------------------------------------------------------------------------------------------
# Statistics per column: each column sorted once, everything else searches in the sorted values


@dataclass(frozen=True, slots=True)
class _Columns:
    """Per-feature counts of the reference and the window (arrays over features)."""

    n_ref: np.ndarray  # non-missing values
    n_cur: np.ndarray
    bins_ref: np.ndarray  # (features, bins) counts in the reference-quantile bins
    bins_cur: np.ndarray
    out_ref: np.ndarray  # values outside the reference's robust range
    out_cur: np.ndarray
    deciles_ref: np.ndarray  # (features, 3): 10th, 50th, 90th percentile (NaN when empty)
    deciles_cur: np.ndarray
    ks: np.ndarray  # two-sample KS statistic (NaN when a side is empty)


def _sorted_finite(column: np.ndarray) -> np.ndarray:
    """The finite values, sorted (NaN sorts last, infinities next to it: both count as missing)."""
    ordered = np.sort(column)
    return ordered[np.searchsorted(ordered, -np.inf, "right") : np.searchsorted(ordered, np.inf, "left")]


def _quantiles(ordered: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Sample quantiles of sorted values (inverse of the empirical CDF: always a data value)."""
    return ordered[np.clip(np.ceil(probs * ordered.size).astype(np.int64) - 1, 0, ordered.size - 1)]


def _ks_statistic(ref: np.ndarray, cur: np.ndarray) -> float:
    """sup |F_ref - F_cur| of two sorted samples, evaluated only at the current's distinct values.

    F_cur - F_ref peaks at a current value and F_ref - F_cur just below one, so searching the
    window's distinct values in the reference is enough; ties are exact (discrete features).
    """
    starts = np.flatnonzero(np.r_[True, cur[1:] != cur[:-1]])
    values = cur[starts]
    cur_lt, cur_le = starts, np.r_[starts[1:], cur.size]
    ref_le = np.searchsorted(ref, values, "right")
    ref_lt = ref_le
    tied = (ref_le > 0) & (ref[np.maximum(ref_le - 1, 0)] == values)
    if tied.any():
        ref_lt = ref_le.copy()
        ref_lt[tied] = np.searchsorted(ref, values[tied], "left")
    above = np.max(cur_le / cur.size - ref_le / ref.size)
    below = np.max(ref_lt / ref.size - cur_lt / cur.size)
    return float(max(above, below, 0.0))


def _columns(ref: np.ndarray, cur: np.ndarray, config: DriftConfig) -> _Columns:
    features = cur.shape[1]
    probs = np.arange(1, config.bins) / config.bins
    span = np.asarray(config.range_quantiles)
    counts = {name: np.zeros(features, np.int64) for name in ("n_ref", "n_cur", "out_ref", "out_cur")}
    bins = {name: np.zeros((features, config.bins)) for name in ("bins_ref", "bins_cur")}
    deciles = {name: np.full((features, 3), np.nan) for name in ("deciles_ref", "deciles_cur")}
    ks = np.full(features, np.nan)
    for j in range(features):
        rs, cs = _sorted_finite(ref[:, j]), _sorted_finite(cur[:, j])
        counts["n_ref"][j], counts["n_cur"][j] = rs.size, cs.size
        if rs.size == 0:
            continue
        edges, (low, high) = _quantiles(rs, probs), _quantiles(rs, span)
        for side, ordered in (("ref", rs), ("cur", cs)):
            if ordered.size:
                cumulative = np.searchsorted(ordered, edges, "right")
                bins[f"bins_{side}"][j] = np.diff(cumulative, prepend=0, append=ordered.size)
                outside = np.searchsorted(ordered, low, "left") + ordered.size - np.searchsorted(ordered, high, "right")
                counts[f"out_{side}"][j] = outside
                deciles[f"deciles_{side}"][j] = _quantiles(ordered, _DECILES)
        if cs.size:
            ks[j] = _ks_statistic(rs, cs)
    return _Columns(**counts, **bins, **deciles, ks=ks)


# ---------------------------------------------------------------------------------------------
# Tests and effects, vectorised over features


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH q-values of the finite entries of ``p_values`` (any shape); NaN stays NaN."""
    q_values = np.full(p_values.shape, np.nan)
    finite = np.isfinite(p_values)
    values = p_values[finite]
    if values.size:
        order = np.argsort(values)
        scaled = values[order] * values.size / np.arange(1, values.size + 1)
        ranked = np.empty_like(values)
        ranked[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
        q_values[finite] = ranked
    return q_values


def _psi_js_chi2(cols: _Columns, share: Shares) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSI (an empty bin counts half an observation), JS distance and chi-square p per feature.

    The chi-square statistic is divided by the design effect of autocorrelated samples (Rao and
    Scott's first-order correction): ``share`` is each side's effective share of its rows."""
    from scipy import special, stats

    n_ref, n_cur = cols.n_ref[:, None].astype(float), cols.n_cur[:, None].astype(float)
    occupied = (cols.bins_ref + cols.bins_cur) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        floor_ref, floor_cur = np.maximum(cols.bins_ref, 0.5) / n_ref, np.maximum(cols.bins_cur, 0.5) / n_cur
        psi = np.where(occupied, (floor_cur - floor_ref) * np.log(floor_cur / floor_ref), 0.0).sum(axis=1)
        p_ref, p_cur = cols.bins_ref / n_ref, cols.bins_cur / n_cur
        mix = (p_ref + p_cur) / 2
        js = (special.rel_entr(p_ref, mix) + special.rel_entr(p_cur, mix)).sum(axis=1) / (2 * math.log(2))
        column = cols.bins_ref + cols.bins_cur
        expected_ref, expected_cur = column * n_ref / (n_ref + n_cur), column * n_cur / (n_ref + n_cur)
        terms = (cols.bins_ref - expected_ref) ** 2 / expected_ref + (cols.bins_cur - expected_cur) ** 2 / expected_cur
        chi2 = np.where(occupied, terms, 0.0).sum(axis=1)
        n_eff_ref, n_eff_cur = cols.n_ref * share.reference, cols.n_cur * share.current
        # the statistic scales with the harmonic size of the two samples: rescale to the effective one
        chi2 *= _harmonic(n_eff_ref, n_eff_cur) / np.maximum(_harmonic(cols.n_ref, cols.n_cur), 1e-300)
    dof = occupied.sum(axis=1) - 1
    chi2_p = np.where(dof > 0, stats.chi2.sf(chi2, np.maximum(dof, 1)), 1.0)
    return psi, np.sqrt(np.clip(js, 0.0, 1.0)), chi2_p


def _harmonic(n_ref: np.ndarray, n_cur: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_ref > 0) & (n_cur > 0), n_ref * n_cur / (n_ref + n_cur), 0.0)


def _ks_p(cols: _Columns, share: Shares) -> np.ndarray:
    """Two-sample KS p-value: Kolmogorov's limit with Stephens' small-sample correction.

    Agrees with scipy's ``ks_2samp(method="asymp")`` (itself an approximation) within 0.015, and
    within a few per cent where p is small, without its per-value loop (2.5 ms a feature)."""
    from scipy import special

    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.sqrt(_harmonic(cols.n_ref * share.reference, cols.n_cur * share.current))
        p = special.kolmogorov((root + 0.12 + 0.11 / root) * cols.ks)
    return np.where(np.isfinite(cols.ks) & (root > 0), np.clip(p, 0.0, 1.0), np.nan)


def _rise_p(hits_cur: np.ndarray, n_cur: int, hits_ref: np.ndarray, n_ref: int) -> np.ndarray:
    """One-sided Fisher exact p that the window's share of hits is above the reference's."""
    from scipy import stats

    p = stats.hypergeom.sf(hits_cur - 1, n_cur + n_ref, hits_cur + hits_ref, n_cur)
    return np.where(hits_cur > 0, np.clip(p, 0.0, 1.0), 1.0)


@dataclass(frozen=True, slots=True)
class _Checks:
    q: np.ndarray  # (features, 2): BH q-values of the distribution and missing checks; NaN if undecided
    fired: dict[str, tuple[np.ndarray, np.ndarray]]  # effect -> (fired at warning, at critical)

    def any(self, level: int) -> np.ndarray:
        return np.logical_or.reduce([pair[level] for pair in self.fired.values()])


def _checks(effects: dict[str, np.ndarray], p: np.ndarray, decided: np.ndarray, config: DriftConfig) -> _Checks:
    """``effects``: psi, shift (absolute), spread (ratio folded above 1), missing (rise) per feature;
    ``p``, ``decided``: (features, 2) for the distribution and missing checks."""
    q = benjamini_hochberg(np.where(decided, p, np.nan))
    significant = decided & (q <= config.fdr_alpha)
    fired = {}
    for name, effect in effects.items():
        passed = significant[:, 1 if name == "missing" else 0]
        warning, critical = getattr(config, f"{name}_warning"), getattr(config, f"{name}_critical")
        fired[name] = (passed & (effect >= warning), passed & (effect >= critical))
    return _Checks(q, fired)


# ---------------------------------------------------------------------------------------------
# Correlation stability


def _midranks(matrix: np.ndarray) -> np.ndarray:
    """Per column, the rank of each finite value (ties share their mean rank); NaN elsewhere."""
    ranks = np.full(matrix.shape, np.nan, order="F")
    for j in range(matrix.shape[1]):
        column = matrix[:, j]
        rows = np.flatnonzero(np.isfinite(column))
        if rows.size == 0:
            continue
        order = rows[np.argsort(column[rows])]
        ordered = column[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        sizes = np.diff(np.r_[starts, ordered.size])
        ranks[order, j] = np.repeat(starts + (sizes - 1) / 2, sizes)
    return ranks


@functools.cache
def _blas() -> Any:
    """threadpoolctl's view of the BLAS libraries (building it reads the process's maps: once)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _spearman(matrix: np.ndarray, columns: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise-complete Spearman correlations of ``columns`` over at most about ``rows`` evenly
    spaced rows, and the pair counts behind them."""
    ranks = _midranks(np.asfortranarray(matrix[:: max(1, math.ceil(matrix.shape[0] / rows))][:, columns]))
    width = ranks.shape[1]
    present = np.isfinite(ranks)
    values = np.where(present, ranks, 0.0)
    # One product gives every pairwise sum, each over the rows where both features are present:
    # blocks of values x values, squares x present, values x present and present x present.
    stacked = np.hstack([values, values * values, present])
    with _blas().limit(limits=1, user_api="blas"):  # BLAS threads only contend on a tall, thin product
        gram = stacked.T @ stacked
    cross, sums = gram[:width, :width], gram[:width, 2 * width :]
    squares, count = gram[width : 2 * width, 2 * width :], gram[2 * width :, 2 * width :]
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = squares - sums**2 / count
        corr = (cross - sums * sums.T / count) / np.sqrt(spread * spread.T)
    return np.clip(corr, -1.0, 1.0), count


def _correlation(
    ref: np.ndarray,
    cur: np.ndarray,
    names: list[str],
    usable: np.ndarray,
    config: DriftConfig,
    streak: int,
    share: Shares,
) -> CorrelationDrift:
    from scipy import stats

    index = np.flatnonzero(usable)
    if index.size < 2:
        return CorrelationDrift("ok", "", streak, math.nan, ())
    (corr_ref, n_ref), (corr_cur, n_cur) = (_spearman(side, index, config.correlation_rows) for side in (ref, cur))
    first, second = np.triu_indices(index.size, 1)
    before, after = corr_ref[first, second], corr_cur[first, second]
    counts_ref, counts_cur = n_ref[first, second], n_cur[first, second]
    decided = np.isfinite(before) & np.isfinite(after) & (np.minimum(counts_ref, counts_cur) >= config.min_samples)
    if not decided.any():
        return CorrelationDrift("info", "no pair of features with enough values in common", streak, math.nan, ())
    bound = 1 - 1e-9
    # a pair is as informative as its less independent feature allows
    eff_cur = counts_cur * np.minimum(share.current[index][first], share.current[index][second])
    eff_ref = counts_ref * np.minimum(share.reference[index][first], share.reference[index][second])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.arctanh(np.clip(after, -bound, bound)) - np.arctanh(np.clip(before, -bound, bound))
        z /= np.sqrt(_SPEARMAN_VAR / np.maximum(eff_cur - 3, 1.0) + _SPEARMAN_VAR / np.maximum(eff_ref - 3, 1.0))
    q = benjamini_hochberg(np.where(decided, 2 * stats.norm.sf(np.abs(z)), np.nan))
    change = np.where(decided, np.abs(after - before), np.nan)
    fired = decided & (q <= config.fdr_alpha) & (change >= config.correlation_warning)
    streak = streak + 1 if fired.any() else 0
    top = np.flatnonzero(fired)[np.argsort(-change[fired], kind="stable")][:_MAX_PAIRS]
    pairs = tuple(
        PairChange(names[index[first[i]]], names[index[second[i]]], float(before[i]), float(after[i]), float(q[i]))
        for i in top
    )
    if not pairs:
        return CorrelationDrift("ok", "", streak, float(np.nanmax(change)), ())
    severe = bool(change[top[0]] >= config.correlation_critical)
    lead, limit = pairs[0], config.correlation_critical if severe else config.correlation_warning
    reason = (
        f"corr({lead.first}, {lead.second}) {lead.reference:.2f} -> {lead.current:.2f} "
        f"(change {abs(lead.current - lead.reference):.2f} > {limit:g}, {_q(lead.q_value)}), "
        f"{_streak_text(streak, severe, config.consecutive_windows)}"
    )
    if fired.sum() > 1:
        reason += f"; {int(fired.sum()) - 1} more pairs changed"
    level: Level = "critical" if severe and streak >= config.consecutive_windows else "warning"
    return CorrelationDrift(level, reason, streak, float(np.nanmax(change)), pairs)


# ---------------------------------------------------------------------------------------------
# Levels and reasons


def _q(value: float) -> str:
    return f"q={value:.2g}" if value > 0 else "q<1e-300"  # below that, the p-value underflowed


def _streak_text(streak: int, severe: bool, needed: int) -> str:
    windows = f"{streak} consecutive window{'s' if streak != 1 else ''}"
    return f"{windows} ({needed} needed for critical)" if severe and streak < needed else windows


def _reason(j: int, item: dict[str, Any], checks: _Checks, config: DriftConfig) -> str:
    def limit(name: str) -> float:
        return getattr(config, f"{name}_{'critical' if checks.fired[name][1][j] else 'warning'}")

    parts, effects = [], []
    if checks.fired["psi"][0][j]:
        effects.append(f"psi {item['psi']:.2f} > {limit('psi'):g}")
    if checks.fired["shift"][0][j]:
        effects.append(f"median shift {item['shift']:+.2f} sd, beyond {limit('shift'):g}")
    if checks.fired["spread"][0][j]:
        effects.append(f"spread x{item['spread_ratio']:.2f}, beyond x{limit('spread'):g}")
    if effects:
        parts.append(f"{', '.join(effects)} (ks D {item['ks_statistic']:.3f}, {_q(checks.q[j, 0])})")
    if checks.fired["missing"][0][j]:
        rise = item["missing_current"] - item["missing_reference"]
        parts.append(
            f"missing {item['missing_current']:.1%} vs {item['missing_reference']:.1%} in the reference "
            f"(+{rise:.1%} > {limit('missing'):.0%}, {_q(checks.q[j, 1])})"
        )
    return ", ".join([*parts, _streak_text(item["streak"], bool(checks.any(1)[j]), config.consecutive_windows)])


def _figures(cols: _Columns, rows: tuple[int, int], share: Shares) -> dict[str, np.ndarray]:
    """The per-feature figures of ``FeatureDrift``, as arrays over features."""
    psi, js, chi2_p = _psi_js_chi2(cols, share)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread_ref, spread_cur = (
            np.where(d[:, 2] > d[:, 0], d[:, 2] - d[:, 0], np.nan) for d in (cols.deciles_ref, cols.deciles_cur)
        )
        return {
            "psi": psi,
            "js_distance": js,
            "ks_statistic": cols.ks,
            "ks_p": _ks_p(cols, share),
            "chi2_p": chi2_p,
            "shift": (cols.deciles_cur[:, 1] - cols.deciles_ref[:, 1]) / (spread_ref / _SIGMAS_PER_SPREAD),
            "spread_ratio": spread_cur / spread_ref,
            "missing_current": 1 - cols.n_cur / rows[0],
            "missing_reference": 1 - cols.n_ref / rows[1],
            "outside_current": cols.out_cur / cols.n_cur,
            "outside_reference": cols.out_ref / cols.n_ref,
        }


def _features(
    names: list[str], cols: _Columns, rows: tuple[int, int], config: DriftConfig, previous: DriftState, share: Shares
) -> tuple[FeatureDrift, ...]:
    figures = _figures(cols, rows, share)
    enough = (cols.n_cur >= config.min_samples) & (cols.n_ref >= config.min_samples)
    missing_p = _rise_p(rows[0] - cols.n_cur, rows[0], rows[1] - cols.n_ref, rows[1])
    p = np.column_stack([np.minimum(1.0, 2 * np.fmin(figures["ks_p"], figures["chi2_p"])), missing_p])
    effects = {
        "psi": figures["psi"],
        "shift": np.abs(figures["shift"]),
        "spread": np.exp(np.abs(np.log(figures["spread_ratio"]))),
        "missing": figures["missing_current"] - figures["missing_reference"],
    }
    checks = _checks(effects, p, np.column_stack([enough, np.ones_like(enough)]), config)
    fired, severe = checks.any(0), checks.any(1)
    result = []
    for j, name in enumerate(names):
        before = previous.streaks.get(name, 0)
        item: dict[str, Any] = {key: float(values[j]) for key, values in figures.items()}
        item.update(name=name, n_current=int(cols.n_cur[j]), n_reference=int(cols.n_ref[j]))
        item.update(distribution_q=float(checks.q[j, 0]), missing_q=float(checks.q[j, 1]))
        item["streak"] = before + 1 if fired[j] else (0 if enough[j] else before)
        if fired[j]:
            critical = severe[j] and item["streak"] >= config.consecutive_windows
            item["level"], item["reason"] = ("critical" if critical else "warning"), _reason(j, item, checks, config)
        elif not enough[j]:
            side = "non-missing values" if cols.n_ref[j] >= config.min_samples else "non-missing reference values"
            item["level"], item["reason"] = "info", f"too few {side}: {min(cols.n_cur[j], cols.n_ref[j])}"
        else:
            item["level"], item["reason"] = "ok", ""
        result.append(FeatureDrift(**item))
    return tuple(result)


# ---------------------------------------------------------------------------------------------
# The entry point


def _matrices(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The feature names (``current``'s columns) and both frames as column-major float arrays."""
    names = [str(name) for name in current.columns]
    absent = [name for name in names if name not in reference.columns]
    if absent or len(set(names)) != len(names) or reference.columns.has_duplicates:
        raise ValueError(f"reference lacks the feature(s) {absent}" if absent else "drift frames repeat a column")
    try:
        return names, *(np.asarray(f.loc[:, names].to_numpy(dtype=np.float64), order="F") for f in (reference, current))
    except (TypeError, ValueError) as exc:
        bad = [
            name for name in names if current[name].dtype.kind not in "biuf" or reference[name].dtype.kind not in "biuf"
        ]
        raise ValueError(f"drift features must be numeric; not: {bad or names}") from exc


def _window(current: pd.DataFrame) -> tuple[str | None, str | None]:
    import pandas as pd

    index = current.index
    if isinstance(index, pd.DatetimeIndex) and len(index) and not index.hasnans:
        return index.min().isoformat(), index.max().isoformat()
    return None, None


def _summary(features: Sequence[FeatureDrift], correlation: CorrelationDrift) -> str:
    parts = [
        f"{level}: {', '.join(item.name for item in features if item.level == level)}"
        for level in ("critical", "warning", "info")
        if any(item.level == level for item in features)
    ]
    if correlation.level in ("warning", "critical"):
        parts.append(f"correlation {correlation.level}: {correlation.reason}")
    return "; ".join(parts) or f"no drift in {len(features)} features"


def _too_few(rows: tuple[int, int], min_samples: int) -> str:
    if rows[0] < min_samples:
        return f"too few samples: {rows[0]}"
    return f"too few reference samples: {rows[1]}" if rows[1] < min_samples else ""


def _undecided(name: str, reason: str, previous: DriftState) -> FeatureDrift:
    figures = [math.nan] * 13  # psi .. outside_reference
    return FeatureDrift(name, "info", reason, previous.streaks.get(name, 0), 0, 0, *figures)


@dataclass(frozen=True, slots=True)
class Shares:
    """Per feature, the effective share of each side's rows: 1 for independent rows; for rows of
    a time series, n_eff / n (e.g. ``(1 - rho) / (1 + rho)`` for lag-1 autocorrelation rho). The
    significance tests use the effective sizes, so a slow feature's contiguous window (hundreds of
    rows, a few independent ones) is not mistaken for strong evidence."""

    current: np.ndarray
    reference: np.ndarray

    @classmethod
    def of(
        cls, names: Sequence[str], current: Mapping[str, float] | None, reference: Mapping[str, float] | None
    ) -> Shares:
        def column(given: Mapping[str, float] | None) -> np.ndarray:
            values = np.array([float((given or {}).get(name, 1.0)) for name in names])
            return np.clip(np.nan_to_num(values, nan=1.0), 1e-6, 1.0)

        return cls(column(current), column(reference))


def assess(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: DriftConfig,
    previous: DriftState | None = None,
    effective_current: Mapping[str, float] | None = None,
    effective_reference: Mapping[str, float] | None = None,
) -> DriftAssessment:
    """Judge the window ``current`` against ``reference`` (one float column per feature, NaN or
    infinite = missing, rows pooled across symbols). Features are ``current``'s columns;
    ``previous`` is the state the last run returned; ``effective_*`` give each feature's effective
    share of rows (see ``Shares``; default 1, independent rows). A reference of a few hundred
    thousand rows is plenty: sample a larger one before calling (the cost is one sort of each
    reference column)."""
    names, ref, cur = _matrices(reference, current)
    share = Shares.of(names, effective_current, effective_reference)
    previous = previous or DriftState()
    rows = (len(current), len(reference))
    start, end = _window(current)
    settings = config.model_dump(mode="json")
    too_few = _too_few(rows, config.min_samples)
    if too_few:
        features = tuple(_undecided(name, too_few, previous) for name in names)
        correlation = CorrelationDrift("info", too_few, previous.correlation_streak, math.nan, ())
        state = DriftState({name: previous.streaks.get(name, 0) for name in names}, previous.correlation_streak)
        return DriftAssessment("info", too_few, *rows, start, end, features, correlation, state, settings)
    cols = _columns(ref, cur, config)
    features = _features(names, cols, rows, config, previous, share)
    usable = (cols.n_cur >= config.min_samples) & (cols.n_ref >= config.min_samples)
    correlation = _correlation(ref, cur, names, usable, config, previous.correlation_streak, share)
    state = DriftState({item.name: item.streak for item in features}, correlation.streak)
    level = worst([*(item.level for item in features), correlation.level])
    return DriftAssessment(
        level, _summary(features, correlation), *rows, start, end, features, correlation, state, settings
    )
