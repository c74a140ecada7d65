"""Performance figures of a return series, and an honest paired comparison of two models.

Sharpe ratios are per bar (mean / standard deviation) and annualised with the bars per year of
the instrument's calendar: NYSE 252 sessions x 390 minutes, crypto 365 x 24 x 60 minutes. The
probabilistic Sharpe ratio (Bailey and Lopez de Prado, 2012) is the probability that the true
per-bar Sharpe exceeds a benchmark, given the sample's length, skewness and kurtosis; the deflated
one (Bailey and Lopez de Prado, 2014) takes as benchmark the expected maximum Sharpe of the trials
that were tried. The paired PnL test compares a candidate with a baseline on the same bars, with a
Newey-West (HAC) standard error because per-bar PnL differences are autocorrelated.

scipy is imported inside the functions that need it (it is heavy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

_EULER_GAMMA = 0.5772156649015329
# Differences spread less than this share of their size are constant (float rounding aside).
_CONSTANT = 1e-9
_MINUTES_PER_YEAR = {"XNYS": 252 * 390, "24/7": 365 * 24 * 60}


def periods_per_year(calendar: str, bar_minutes: float) -> float:
    """Bars per year of ``calendar`` ("XNYS" or "24/7") for bars of ``bar_minutes`` minutes."""
    if calendar not in _MINUTES_PER_YEAR:
        raise ValueError(f"unknown calendar '{calendar}', expected one of {sorted(_MINUTES_PER_YEAR)}")
    if not bar_minutes > 0:
        raise ValueError(f"bar_minutes must be > 0, got {bar_minutes}")
    return _MINUTES_PER_YEAR[calendar] / bar_minutes


def sharpe(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sharpe: mean / std (ddof=1) x sqrt(periods_per_year); nan for fewer than 2
    returns or a constant series."""
    returns = _finite(returns)
    if returns.size < 2 or np.ptp(returns) == 0:
        return float("nan")
    return float(returns.mean() / returns.std(ddof=1) * math.sqrt(periods_per_year))


def max_drawdown(returns: np.ndarray) -> float:
    """Largest fall of the compounded equity curve (starting at 1) from its running peak, as a
    positive fraction; 0 for an empty or never-falling series."""
    returns = _finite(returns)
    equity = np.cumprod(np.r_[1.0, 1 + returns])
    return float(np.max(1 - equity / np.maximum.accumulate(equity)))


def probabilistic_sharpe(returns: np.ndarray, benchmark: float = 0.0) -> float:
    """P(true per-bar Sharpe > ``benchmark``), Bailey and Lopez de Prado (2012), eq. 7.

    Per-bar Sharpe with the population standard deviation, skewness and (non-excess) kurtosis
    bias-corrected, as ``purgedcv`` computes them. nan when undefined: fewer than 4 returns (the
    bias-corrected kurtosis needs 4), a constant series, or moments too extreme for the normal
    approximation.
    """
    from scipy import stats

    returns = _finite(returns)
    if returns.size < 4 or np.ptp(returns) == 0:
        return float("nan")
    per_bar = returns.mean() / returns.std(ddof=0)
    skew = float(stats.skew(returns, bias=False))
    kurtosis = float(stats.kurtosis(returns, fisher=False, bias=False))
    variance = 1 - skew * per_bar + (kurtosis - 1) / 4 * per_bar**2
    if not (np.isfinite(variance) and variance > 0):
        return float("nan")
    return float(stats.norm.cdf((per_bar - benchmark) * math.sqrt(returns.size - 1) / math.sqrt(variance)))


def deflated_sharpe(returns: np.ndarray, trials: int, trial_sharpes_variance: float) -> float:
    """The probabilistic Sharpe against the expected maximum per-bar Sharpe of ``trials``
    independent trials whose per-bar Sharpes have variance ``trial_sharpes_variance`` (divide an
    annualised variance by the periods per year first). One trial deflates nothing (benchmark 0).
    """
    from scipy import stats

    if trials < 1 or not (np.isfinite(trial_sharpes_variance) and trial_sharpes_variance >= 0):
        raise ValueError(
            f"trials must be >= 1 and the variance finite and >= 0, got {trials}, {trial_sharpes_variance}"
        )
    expected_max = 0.0
    if trials > 1:
        expected_max = (1 - _EULER_GAMMA) * stats.norm.ppf(1 - 1 / trials) + _EULER_GAMMA * stats.norm.ppf(
            1 - 1 / (trials * math.e)
        )
    return probabilistic_sharpe(returns, benchmark=math.sqrt(trial_sharpes_variance) * float(expected_max))


@dataclass(frozen=True)
class PairedVerdict:
    outcome: Literal["worse", "not_worse", "inconclusive"]
    samples: int
    mean_difference: float  # mean of candidate - baseline per bar
    standard_error: float  # Newey-West standard error of that mean (nan when not computed)
    reason: str


def paired_pnl_test(
    candidate: np.ndarray, baseline: np.ndarray, margin: float, min_samples: int, confidence: float = 0.95
) -> PairedVerdict:
    """Is the candidate's per-bar PnL worse than the baseline's on the same bars?

    Differences ``d = candidate - baseline`` over the bars where both are finite. ``worse`` when the
    one-sided upper confidence bound of mean(d) is below 0 (checked first: a significant loss is
    worse even inside the margin); ``not_worse`` when the lower bound is above ``-margin``
    (non-inferiority); ``inconclusive`` otherwise, and for fewer than ``min_samples`` bars or
    differences of zero variance, unless every difference is exactly 0 (identical PnL on every
    bar is not worse). Bounds use Student's t with n - 1 degrees of freedom and the Newey-West
    standard error, Bartlett kernel, lag floor(4 (n / 100) ^ (2/9)).
    """
    from scipy import stats

    if not 0.5 < confidence < 1 or margin < 0 or min_samples < 2:
        raise ValueError(
            f"need 0.5 < confidence < 1, margin >= 0, min_samples >= 2: {confidence}, {margin}, {min_samples}"
        )
    candidate, baseline = np.asarray(candidate, dtype=float), np.asarray(baseline, dtype=float)
    if candidate.shape != baseline.shape or candidate.ndim != 1:
        raise ValueError(f"candidate and baseline must be 1-D of one length, got {candidate.shape}, {baseline.shape}")
    both = np.isfinite(candidate) & np.isfinite(baseline)
    d = candidate[both] - baseline[both]
    n = int(d.size)
    mean = float(d.mean()) if n else float("nan")
    if n < min_samples:
        return PairedVerdict("inconclusive", n, mean, float("nan"), f"{n} paired bars, fewer than {min_samples}")
    if not d.any():
        return PairedVerdict("not_worse", n, 0.0, 0.0, f"identical PnL on all {n} paired bars")
    if np.ptp(d) <= _CONSTANT * np.abs(d).max():  # constant up to rounding: no error to estimate
        return PairedVerdict("inconclusive", n, mean, float("nan"), f"constant difference {mean:.3g}: no variance")
    lag = _newey_west_lag(n)
    error = math.sqrt(_newey_west_variance(d, lag) / n)
    quantile = float(stats.t.ppf(confidence, n - 1))
    upper, lower = mean + quantile * error, mean - quantile * error
    bounds = f"mean {mean:.3g}, {confidence:.0%} one-sided bounds [{lower:.3g}, {upper:.3g}], HAC lag {lag}, n {n}"
    if upper < 0:
        return PairedVerdict("worse", n, mean, error, f"significantly below the baseline: {bounds}")
    if lower > -margin:
        return PairedVerdict("not_worse", n, mean, error, f"within the margin {margin:.3g}: {bounds}")
    return PairedVerdict("inconclusive", n, mean, error, f"cannot exclude a loss beyond {margin:.3g}: {bounds}")


def _newey_west_lag(samples: int) -> int:
    """Newey and West's (1994) rule of thumb for the Bartlett kernel's bandwidth."""
    return math.floor(4 * (samples / 100) ** (2 / 9))


def _newey_west_variance(d: np.ndarray, lag: int) -> float:
    """Long-run variance of ``d``: autocovariances (divided by n) up to ``lag``, Bartlett weights."""
    centred = d - d.mean()
    n = centred.size
    variance = float(centred @ centred) / n
    for k in range(1, min(lag, n - 1) + 1):
        variance += 2 * (1 - k / (lag + 1)) * float(centred[k:] @ centred[:-k]) / n
    return variance


def _finite(returns: np.ndarray) -> np.ndarray:
    returns = np.asarray(returns, dtype=float)
    if returns.ndim != 1:
        raise ValueError(f"returns must be 1-D, got shape {returns.shape}")
    if not np.isfinite(returns).all():
        raise ValueError(f"returns has {int((~np.isfinite(returns)).sum())} non-finite values")
    return returns
