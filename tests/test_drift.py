"""Feature drift: noise stays quiet, real drift is found and escalates, the verdict serialises."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from tradeops.market_data.drift import (
    DriftAssessment,
    DriftState,
    _ks_statistic,
    _spearman,
    assess,
    benjamini_hochberg,
)
from tradeops.market_data.drift_config import DriftConfig
from tradeops.market_data.drift_report import render

T4_SD = np.sqrt(2.0)  # standard deviation of Student's t with 4 degrees of freedom
RSI_SD = 19.27  # standard deviation of the RSI-like feature, 100 / (1 + exp(-0.9 z))


def features(rng: np.random.Generator, rows: int, columns: int = 10) -> pd.DataFrame:
    """Pooled feature samples shaped like the registry's: a fat-tailed return, a log-normal
    volatility, an RSI-like bounded oscillator, a zero-inflated spread, a three-valued regime."""
    z = rng.standard_normal((rows, columns))
    data = {}
    for j in range(columns):
        kind, column = j % 5, z[:, j]
        if kind == 0:
            data[f"f{j}"] = column / np.sqrt(rng.chisquare(4, rows) / 4)
        elif kind == 1:
            data[f"f{j}"] = np.exp(0.5 * column)
        elif kind == 2:
            data[f"f{j}"] = 100 / (1 + np.exp(-0.9 * column))
        elif kind == 3:
            data[f"f{j}"] = np.maximum(column, 0.0)
        else:
            data[f"f{j}"] = np.sign(column) * (np.abs(column) > 0.6)
    return pd.DataFrame(data)


def _run(reference: pd.DataFrame, windows: list[pd.DataFrame], config: DriftConfig) -> list[DriftAssessment]:
    """Hourly runs as the DAG does them: the state goes through JSON between runs."""
    results, stored = [], None
    for window in windows:
        previous = None if stored is None else DriftState.from_dict(json.loads(stored))
        result = assess(reference, window, config, previous)
        stored = json.dumps(result.state.to_dict())
        results.append(result)
    return results


# --- noise -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "windows", "columns", "reference_rows", "allowed"),
    [(1_000, 60, 20, 50_000, 5), (42_000, 8, 20, 100_000, 0), (1_000_000, 2, 4, 1_000_000, 0)],
)
def test_assess_when_noise_then_no_critical_and_warnings_within_fdr(
    rows, windows, columns, reference_rows, allowed
) -> None:
    """``allowed``: BH's 5 % of windows plus slack at 1,000 rows; none where effects are measured precisely."""
    rng = np.random.default_rng(rows)
    reference = features(rng, reference_rows, columns)
    results = _run(reference, [features(rng, rows, columns) for _ in range(windows)], DriftConfig())
    assert not [r for r in results if r.level == "critical"]
    alerts = [r.summary for r in results if r.level == "warning"]
    assert len(alerts) <= allowed, alerts


def test_assess_when_noise_in_60_sample_windows_then_fdr_keeps_warnings_rare() -> None:
    """With min_samples lowered to 50, a 60-sample window crosses PSI 0.2 often; BH stops those."""
    config = DriftConfig(min_samples=50)
    rng = np.random.default_rng(60)
    reference = features(rng, 50_000, 20)
    results = _run(reference, [features(rng, 60, 20) for _ in range(100)], config)
    crossings = sum(item.psi > config.psi_warning for r in results for item in r.features)
    assert crossings > 0.1 * 100 * 20  # the thresholds alone would alert on most windows
    assert not [r for r in results if r.level == "critical"]
    assert sum(r.level == "warning" for r in results) <= 10


def test_assess_when_window_below_min_samples_then_info_and_nothing_flagged() -> None:
    rng = np.random.default_rng(7)
    reference = features(rng, 20_000)
    drifted = features(rng, 60).assign(f0=lambda frame: frame["f0"] + 5.0)
    previous = DriftState({"f0": 2})
    result = assess(reference, drifted, DriftConfig(), previous)
    assert result.level == "info" and result.summary == "too few samples: 60"
    assert not result.flagged
    assert {item.reason for item in result.features} == {"too few samples: 60"}
    assert result.state.streaks["f0"] == 2  # an undecided window neither extends nor resets a streak
    assert result.feature("f0").streak == 2


def test_assess_when_tiny_shift_with_a_million_samples_then_significant_but_not_flagged() -> None:
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"x": rng.standard_normal(1_000_000), "y": rng.standard_normal(1_000_000)})
    current = pd.DataFrame({"x": rng.standard_normal(1_000_000) + 0.02, "y": rng.standard_normal(1_000_000)})
    result = assess(reference, current, DriftConfig())
    shifted = result.feature("x")
    assert shifted.ks_p < 1e-10 and shifted.distribution_q < 1e-10  # the test alone would alert
    assert shifted.psi < 0.01
    assert shifted.level == "ok" and result.level == "ok"


# --- injected drift ----------------------------------------------------------------------------


def _mean_shift(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(f0=frame["f0"] + 0.5 * T4_SD)


def _mean_shift_bounded(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(f2=frame["f2"] + 0.5 * RSI_SD)


def _variance_x2(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(f2=50 + (frame["f2"] - 50) * np.sqrt(2.0))


def _missing_15(frame: pd.DataFrame) -> pd.DataFrame:
    values = frame["f1"].to_numpy(copy=True)
    values[np.random.default_rng(3).random(values.size) < 0.15] = np.nan
    return frame.assign(f1=values)


@pytest.mark.parametrize(
    ("inject", "name", "reason"),
    [
        (_mean_shift, "f0", r"^psi 0\.\d\d > 0\.3, median shift \+0\.\d\d sd, beyond 0\.4 \(ks D 0\.\d+, q[=<]\S+\)"),
        # Near-normal: PSI 0.24 is only a warning; the shift of the median is what makes it critical.
        (_mean_shift_bounded, "f2", r"^psi 0\.2\d > 0\.2, median shift \+0\.[45]\d sd, beyond 0\.4 \(ks D"),
        (_variance_x2, "f2", r"spread x1\.[45]\d, beyond x1\.3 \(ks D 0\.\d+, q[=<]\S+\)"),
        (_missing_15, "f1", r"^missing 1[45]\.\d% vs 0\.0% in the reference \(\+1[45]\.\d% > 10%"),
    ],
    ids=["mean shift 0.5 sd", "mean shift 0.5 sd, near-normal", "variance x2", "15 % missing"],
)
def test_assess_when_one_feature_drifts_then_flagged_with_reason_and_critical_after_k_windows(
    inject, name, reason
) -> None:
    config = DriftConfig()
    rng = np.random.default_rng(5)
    reference = features(rng, 100_000)
    results = _run(reference, [inject(features(rng, 20_000)) for _ in range(config.consecutive_windows)], config)
    levels = [r.feature(name).level for r in results]
    assert levels == ["warning"] * (config.consecutive_windows - 1) + ["critical"]
    last = results[-1].feature(name)
    assert re.search(reason, last.reason) and last.reason.endswith(", 3 consecutive windows"), last.reason
    assert "(3 needed for critical)" in results[0].feature(name).reason
    for result in results:
        assert [item.name for item in result.flagged] == [name]
        assert result.correlation.level == "ok"
    assert results[-1].level == "critical"


def test_assess_when_drift_stops_then_streak_resets_and_level_ok() -> None:
    config = DriftConfig()
    rng = np.random.default_rng(6)
    reference = features(rng, 100_000)
    windows = [_mean_shift(features(rng, 20_000)), _mean_shift(features(rng, 20_000)), features(rng, 20_000)]
    results = _run(reference, windows, config)
    assert [r.feature("f0").streak for r in results] == [1, 2, 0]
    assert results[-1].feature("f0").level == "ok"


def test_assess_when_correlation_appears_then_pair_named_and_critical_after_k_windows() -> None:
    config = DriftConfig()
    rng = np.random.default_rng(8)
    reference = features(rng, 100_000)

    def coupled() -> pd.DataFrame:
        frame = features(rng, 20_000)
        z = rng.standard_normal(frame.shape[0])
        shared = 0.8 * z + 0.6 * rng.standard_normal(z.size)  # still standard normal
        # f6 (log-normal) and f7 (RSI-like) keep their marginals but now share a factor.
        return frame.assign(f6=np.exp(0.5 * z), f7=100 / (1 + np.exp(-0.9 * shared)))

    results = _run(reference, [coupled() for _ in range(config.consecutive_windows)], config)
    assert [r.correlation.level for r in results] == ["warning", "warning", "critical"]
    pair = results[-1].correlation.pairs[0]
    assert (pair.first, pair.second) == ("f6", "f7") and abs(pair.reference) < 0.05 and pair.current > 0.6
    assert results[-1].correlation.reason.startswith("corr(f6, f7) ")
    assert not results[-1].flagged  # the marginals did not move


def test_assess_when_feature_empty_in_window_then_missing_check_still_decides() -> None:
    rng = np.random.default_rng(9)
    reference = features(rng, 50_000)
    current = features(rng, 5_000).assign(f3=np.nan)
    result = assess(reference, current, DriftConfig())
    empty = result.feature("f3")
    assert empty.level == "warning" and empty.reason.startswith("missing 100.0% vs 0.0% in the reference")
    assert empty.n_current == 0


def test_assess_when_reference_already_misses_values_then_only_a_rise_counts() -> None:
    """8 % -> 9 % missing is significant at 20,000 rows and above 5 %, but a rise of one point only."""
    rng = np.random.default_rng(17)

    def missing(frame: pd.DataFrame, share: float) -> pd.DataFrame:
        return frame.assign(f1=frame["f1"].where(rng.random(len(frame)) >= share))

    reference = missing(features(rng, 100_000, 5), 0.08)
    result = assess(reference, missing(features(rng, 20_000, 5), 0.09), DriftConfig())
    assert result.feature("f1").missing_q < 0.01 and result.feature("f1").missing_current > 0.085
    assert result.feature("f1").level == "ok"
    worse = assess(reference, missing(features(rng, 20_000, 5), 0.15), DriftConfig())
    assert worse.feature("f1").level == "warning"
    assert re.match(r"missing 1[45]\.\d% vs [78]\.\d% in the reference \(\+[67]\.\d% > 5%", worse.feature("f1").reason)


def test_assess_when_infinite_values_then_counted_as_missing() -> None:
    rng = np.random.default_rng(10)
    reference = features(rng, 50_000, 5)
    current = features(rng, 5_000, 5)
    current.loc[current.index[:1_000], "f1"] = np.inf
    result = assess(reference, current, DriftConfig())
    assert result.feature("f1").missing_current == pytest.approx(0.2)
    assert result.feature("f1").level == "warning"


# --- interface ---------------------------------------------------------------------------------


def test_assess_when_reference_lacks_a_feature_then_error_names_it() -> None:
    rng = np.random.default_rng(12)
    current = features(rng, 2_000, 3)
    with pytest.raises(ValueError, match=r"reference lacks the feature\(s\) \['f2'\]"):
        assess(current.drop(columns="f2"), current, DriftConfig())


def test_state_and_assessment_when_round_tripped_through_json_then_equal() -> None:
    rng = np.random.default_rng(13)
    reference = features(rng, 50_000)
    current = _mean_shift(features(rng, 5_000)).assign(f3=np.nan)
    current.index = pd.date_range("2026-12-01 14:00", periods=len(current), freq="720ms", tz="UTC")
    result = assess(reference, current, DriftConfig(), DriftState({"f0": 4}, correlation_streak=1))
    text = json.dumps(result.to_dict(), allow_nan=False)  # plain JSON: no NaN, no numpy types
    again = DriftAssessment.from_dict(json.loads(text))
    assert again.to_dict() == result.to_dict()
    assert again.feature("f0").level == "critical" and again.feature("f0").streak == 5
    assert again.window_start == "2026-12-01T14:00:00+00:00"
    state = DriftState.from_dict(json.loads(json.dumps(result.state.to_dict())))
    assert state == result.state and state.streaks["f0"] == 5


def test_ks_statistic_when_compared_with_scipy_then_equal_including_ties() -> None:
    rng = np.random.default_rng(14)
    samples = [
        (rng.standard_normal(5_000), rng.standard_normal(400) + 0.1),
        (rng.integers(0, 4, 5_000).astype(float), rng.integers(0, 5, 300).astype(float)),
        (np.maximum(rng.standard_normal(3_000), 0), np.maximum(rng.standard_normal(800) - 0.2, 0)),
    ]
    for ref, cur in samples:
        expected = stats.ks_2samp(ref, cur).statistic
        assert _ks_statistic(np.sort(ref), np.sort(cur)) == pytest.approx(expected, abs=1e-12)


def test_spearman_when_compared_with_scipy_then_equal_including_ties() -> None:
    rng = np.random.default_rng(18)
    z = rng.standard_normal((3_000, 3))
    matrix = np.column_stack([z[:, 0], np.round(z[:, 0] + z[:, 1]), np.maximum(z[:, 2] - z[:, 0], 0)])
    corr, count = _spearman(matrix, np.arange(3), rows=10_000)
    assert np.allclose(corr, stats.spearmanr(matrix).statistic) and (count == 3_000).all()


def test_benjamini_hochberg_when_compared_with_scipy_then_equal() -> None:
    p = np.random.default_rng(15).random(40) ** 3
    assert np.allclose(benjamini_hochberg(p), stats.false_discovery_control(p))


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"psi_warning": 0.3, "psi_critical": 0.2}, "psi_critical"),
        ({"missing_critical": 0.01}, "missing_critical"),
        ({"range_quantiles": (0.9, 0.1)}, "range_quantiles"),
        ({"fdr_alpha": 1.5}, "fdr_alpha"),
        ({"min_samples": 30}, "min_samples"),
        ({"consecutive_windows": 0}, "consecutive_windows"),
        ({"correlation_rows": 500}, "correlation_rows"),
        ({"shift_warning": 0.5, "shift_critical": 0.4}, "shift_critical"),
        ({"psi_warnings": 0.2}, "psi_warnings"),
    ],
)
def test_config_when_bad_value_then_error_names_field(values, field) -> None:
    with pytest.raises(ValidationError) as caught:
        DriftConfig(**values)
    assert caught.value.errors()[0]["loc"] == (field,)


# --- report ------------------------------------------------------------------------------------


def test_render_when_a_feature_drifts_then_markdown_names_it_and_pngs_are_real() -> None:
    config = DriftConfig()
    rng = np.random.default_rng(16)
    reference = features(rng, 50_000)
    windows = []
    for hour in range(config.consecutive_windows):
        frame = _mean_shift(features(rng, 5_000))
        frame.index = pd.date_range(f"2026-12-01 {10 + hour}:00", periods=len(frame), freq="720ms", tz="UTC")
        windows.append(frame)
    results = _run(reference, windows, config)
    files = render(results[-1], reference, windows[-1], [r.to_dict() for r in results[:-1]])
    assert set(files) == {"report.md", "distributions.png", "psi_history.png"}
    markdown = files["report.md"].decode()
    assert markdown.startswith("# Feature health: critical")
    assert f"- **f0** (critical): {results[-1].feature('f0').reason}" in markdown
    assert "| f9 | ok |" in markdown
    for name in ("distributions.png", "psi_history.png"):
        assert files[name].startswith(b"\x89PNG\r\n\x1a\n") and len(files[name]) > 10_000


def test_render_when_window_undecided_then_report_says_why_and_pngs_still_render() -> None:
    rng = np.random.default_rng(19)
    reference, current = features(rng, 20_000), features(rng, 60).assign(f3=np.nan)
    files = render(assess(reference, current, DriftConfig()), reference, current, [])
    markdown = files["report.md"].decode()
    assert markdown.startswith("# Feature health: info") and "too few samples: 60" in markdown
    assert all(files[name].startswith(b"\x89PNG\r\n\x1a\n") for name in ("distributions.png", "psi_history.png"))


def _ar1(rng: np.random.Generator, rows: int, rho: float) -> np.ndarray:
    from scipy.signal import lfilter

    return lfilter([np.sqrt(1 - rho**2)], [1.0, -rho], rng.normal(size=rows))


def test_assess_when_a_slow_feature_window_is_contiguous_then_flagged_only_without_effective_sizes() -> None:
    """Pure noise of a slow series (an hour of rv_240, say): its window sits at one local level.
    Counting every autocorrelated row as independent calls that drift; its effective size does not."""
    from tradeops.market_data.health import _independent_share

    rng = np.random.default_rng(11)
    rho = 0.995
    reference = pd.DataFrame({"slow": np.concatenate([_ar1(rng, 2_000, rho) for _ in range(100)])})
    flagged_naive = flagged_effective = 0
    for _ in range(20):
        window = _ar1(rng, 3_000, rho)[-1_500:]
        current = pd.DataFrame({"slow": window})
        share = _independent_share(window, discrete=False)
        reference_share = _independent_share(reference["slow"].to_numpy()[:2_000], discrete=False)
        flagged_naive += assess(reference, current, DriftConfig()).feature("slow").flagged
        effective = assess(
            reference,
            current,
            DriftConfig(),
            effective_current={"slow": share},
            effective_reference={"slow": reference_share},
        )
        flagged_effective += effective.feature("slow").flagged
    assert flagged_naive >= 10  # the iid tests see "drift" in most windows of pure noise
    assert flagged_effective <= 1


def test_independent_share_when_series_is_noise_slow_constant_or_a_held_regime_then_fitting_share() -> None:
    from tradeops.market_data.health import _independent_share

    rng = np.random.default_rng(5)
    assert _independent_share(rng.normal(size=5_000), discrete=False) > 0.9
    assert _independent_share(_ar1(rng, 5_000, 0.99), discrete=False) < 0.02
    assert _independent_share(np.full(500, 0.0), discrete=False) == 1.0  # a frozen feed is evidence
    assert _independent_share(np.full(500, 1.0), discrete=True) == 1 / 500  # a regime held all window
