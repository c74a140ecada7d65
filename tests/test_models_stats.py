"""The statistics under model training and deployment: purged walk-forward CV (checked against
purgedcv), the vectorised backtest (checked by hand), performance figures (PSR and DSR checked
against purgedcv) and the paired PnL test (HAC checked by hand)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from purgedcv import WalkForwardSplit, deflated_sharpe_ratio, probabilistic_sharpe_ratio

from tradeops.models.backtest import backtest, positions_from_probabilities
from tradeops.models.cv import purged_walk_forward
from tradeops.models.metrics import (
    deflated_sharpe,
    max_drawdown,
    paired_pnl_test,
    periods_per_year,
    probabilistic_sharpe,
    sharpe,
)

STEP = np.timedelta64(5, "m")
ONE_TICK = pd.Timedelta(1, "ns")


def panel(seed: int, times: int = 60, instruments: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Every instrument at every 5-minute time (rows in time order), labels 1 to 4 steps long:
    overlapping, and many ending exactly where a later sample starts."""
    rng = np.random.default_rng(seed)
    starts = np.datetime64("2024-01-01T00:00", "ns") + np.arange(times).repeat(instruments) * STEP
    return starts, starts + rng.integers(1, 5, starts.size) * STEP


def reference_folds(starts: np.ndarray, ends: np.ndarray, folds: int, padding: pd.Timedelta) -> list:
    splitter = WalkForwardSplit(
        folds,
        test_size=starts.size // (folds + 1),
        prediction_times=starts,
        evaluation_times=ends,
        purge_horizon=padding,
    )
    return list(splitter.split(np.zeros(starts.size)))


# --- purged walk-forward CV ---------------------------------------------------------------------


@pytest.mark.parametrize("embargo", [0, 3])
def test_split_when_instruments_share_times_and_labels_overlap_then_matches_purgedcv(embargo):
    starts, ends = panel(seed=3)

    folds = purged_walk_forward(starts, ends, folds=5, embargo=embargo)

    # Our closed label intervals on a clock of whole ticks are purgedcv's half-open ones padded
    # by one tick; our backward embargo is its purge padding by the embargo's span of time.
    reference = reference_folds(starts, ends, 5, pd.Timedelta(embargo * STEP) + ONE_TICK)
    assert [fold.number for fold in folds] == [1, 2, 3, 4, 5]
    for fold, (train, test) in zip(folds, reference, strict=True):
        np.testing.assert_array_equal(fold.test, test)
        np.testing.assert_array_equal(fold.train, train)
    assert len(folds[0].train) < 30  # the first group holds 30 samples: purging removed some


def test_split_when_a_label_ends_exactly_at_the_test_start_then_it_is_purged_unlike_half_open():
    starts, ends = panel(seed=3)

    folds = purged_walk_forward(starts, ends, folds=5)

    half_open = reference_folds(starts, ends, 5, pd.Timedelta(0))
    for fold, (train, test) in zip(folds, half_open, strict=True):
        dropped = np.setdiff1d(train, fold.train)
        assert np.setdiff1d(fold.train, train).size == 0
        assert dropped.size > 0 and (ends[dropped] == starts[test].min()).all()


def test_split_when_no_purge_then_purging_removes_exactly_the_labels_reaching_the_test_window():
    starts, ends = panel(seed=11)

    for fold in purged_walk_forward(starts, ends, folds=5):
        test_start, test_end = starts[fold.test].min(), ends[fold.test].max()
        leaky = np.flatnonzero(starts < test_start)  # everything before the test window
        removed = set(leaky) - set(fold.train)
        reaching = {i for i in leaky if any(starts[j] <= ends[i] and starts[i] <= ends[j] for j in fold.test)}
        assert removed == reaching and removed
        assert set(fold.train) <= set(leaky)
        assert (ends[fold.train] < test_start).all() and test_end > test_start


def test_split_when_rows_arrive_shuffled_then_the_same_samples_fall_in_each_fold():
    starts, ends = panel(seed=5)
    order = np.random.default_rng(0).permutation(starts.size)

    shuffled = purged_walk_forward(starts[order], ends[order], folds=4, embargo=2)

    for fold, expected in zip(shuffled, purged_walk_forward(starts, ends, folds=4, embargo=2), strict=True):
        assert np.all(np.diff(fold.train) > 0) and np.all(np.diff(fold.test) > 0)
        np.testing.assert_array_equal(np.sort(order[fold.train]), expected.train)
        np.testing.assert_array_equal(np.sort(order[fold.test]), expected.test)


def test_split_when_times_are_int64_then_the_folds_equal_the_datetime_ones():
    starts, ends = panel(seed=8)

    as_ints = purged_walk_forward(starts.astype(np.int64), ends.astype(np.int64), folds=5, embargo=1)

    for fold, expected in zip(as_ints, purged_walk_forward(starts, ends, folds=5, embargo=1), strict=True):
        np.testing.assert_array_equal(fold.train, expected.train)
        np.testing.assert_array_equal(fold.test, expected.test)


def test_split_when_instruments_come_and_go_then_no_timestamp_is_split_and_groups_balance():
    rng = np.random.default_rng(21)
    starts, ends = panel(seed=21, times=120, instruments=6)
    keep = rng.random(starts.size) < np.where(np.arange(starts.size) // 6 % 40 < 20, 0.3, 0.9)
    starts, ends = starts[keep], ends[keep]

    folds = purged_walk_forward(starts, ends, folds=5)

    tested = np.concatenate([fold.test for fold in folds])
    for fold in folds:
        test_times = np.unique(starts[fold.test])
        assert np.isin(np.flatnonzero(np.isin(starts, test_times)), fold.test).all()  # whole timestamps
        assert starts[fold.train].max() < test_times.min()
    assert np.unique(tested).size == tested.size
    sizes = [fold.test.size for fold in folds]
    assert max(sizes) - min(sizes) <= 12  # equal samples per group (within two timestamps), not equal times


def test_split_when_labels_outlast_the_first_group_then_raises_naming_the_fold():
    starts, _ = panel(seed=1)
    ends = starts + 12 * STEP  # every label reaches 12 steps ahead: group 0 spans 10

    with pytest.raises(ValueError, match="fold 1: no training sample left"):
        purged_walk_forward(starts, ends, folds=5)


def test_split_when_the_embargo_swallows_the_first_group_then_raises_naming_the_fold():
    starts = np.arange(12, dtype=np.int64)

    with pytest.raises(ValueError, match="fold 1: no training sample"):
        purged_walk_forward(starts, starts, folds=5, embargo=2)
    assert purged_walk_forward(starts, starts, folds=5, embargo=1)[0].train.tolist() == [0]


# --- backtest -----------------------------------------------------------------------------------


def test_positions_when_probabilities_cross_the_thresholds_then_long_short_or_flat():
    p_up = np.array([0.9, 0.55, 0.56, 0.5, 0.45, 0.44, 0.1, np.nan])

    positions = positions_from_probabilities(p_up, threshold=0.55)

    np.testing.assert_array_equal(positions, [1, 0, 1, 0, 0, -1, -1, 0])


def hand_rows() -> dict[str, np.ndarray]:
    """Two instruments over three times: A long, long, short; B flat, short, flat."""
    return {
        "times": np.array([0, 1, 2, 0, 1, 2]),
        "instruments": np.array(["A", "A", "A", "B", "B", "B"]),
        "positions": np.array([1.0, 1.0, -1.0, 0.0, -1.0, 0.0]),
        "forward_returns": np.array([0.01, 0.02, -0.03, 0.05, 0.01, 0.02]),
    }


def test_backtest_when_positions_change_then_returns_costs_and_trades_match_a_hand_computation():
    rows = hand_rows()
    order = np.random.default_rng(2).permutation(6)  # rows in any order

    result = backtest(**{k: v[order] for k, v in rows.items()}, fee_bps=6.0, slippage_bps=4.0)

    # 10 bps per unit of change. A changes by 1, 0, 2 and closes 1 at its end; B by 0, 1, 1.
    np.testing.assert_array_equal(result.times, [0, 1, 2])
    np.testing.assert_allclose(result.gross_returns, [0.005, 0.005, 0.015], rtol=1e-12)
    np.testing.assert_allclose(result.returns, [0.0045, 0.0045, 0.013], rtol=1e-12)
    assert result.costs == pytest.approx(0.003, rel=1e-12)
    assert result.turnover == pytest.approx((0.5 + 0.5 + 2.0) / 3, rel=1e-12)
    # Trades: A long (0.03 - 0.002), A short (0.03 - 0.002), B short (-0.01 - 0.002).
    assert result.trades == 3
    assert result.win_rate == pytest.approx(2 / 3)
    assert result.net_return == pytest.approx(1.0045 * 1.0045 * 1.013 - 1, rel=1e-12)
    assert result.gross_return == pytest.approx(1.005 * 1.005 * 1.015 - 1, rel=1e-12)
    assert result.exposure == pytest.approx(4 / 6)
    assert result.instruments == 2


def test_backtest_when_an_instrument_is_missing_at_a_time_then_the_mean_is_over_those_present():
    result = backtest(
        times=np.array([0, 1, 1]),
        instruments=np.array(["A", "A", "B"]),
        positions=np.array([1.0, 1.0, 1.0]),
        forward_returns=np.array([0.02, 0.01, 0.03]),
        fee_bps=0.0,
        slippage_bps=0.0,
    )

    np.testing.assert_allclose(result.returns, [0.02, 0.02])
    assert result.trades == 2 and result.win_rate == 1.0


def test_backtest_when_a_trade_earns_less_than_its_costs_then_it_is_a_loss():
    result = backtest(
        times=np.array([0, 1]),
        instruments=np.array(["A", "A"]),
        positions=np.array([1.0, 0.0]),
        forward_returns=np.array([0.0015, 0.05]),
        fee_bps=5.0,
        slippage_bps=5.0,
    )

    assert result.trades == 1 and result.win_rate == 0.0
    np.testing.assert_allclose(result.returns, [0.0005, -0.001])


def test_backtest_when_never_in_the_market_then_no_trades_and_win_rate_is_nan():
    result = backtest(np.arange(4), np.zeros(4), np.zeros(4), np.full(4, 0.01), fee_bps=5.0, slippage_bps=2.0)

    assert result.trades == 0 and math.isnan(result.win_rate)
    assert result.costs == 0 and result.turnover == 0 and result.net_return == 0


def test_backtest_when_a_row_repeats_or_a_return_is_missing_then_raises():
    rows = hand_rows()
    with pytest.raises(ValueError, match="two rows"):
        backtest(np.array([0, 0]), np.array(["A", "A"]), np.ones(2), np.zeros(2), fee_bps=1.0, slippage_bps=1.0)
    rows["forward_returns"][2] = np.nan
    with pytest.raises(ValueError, match="forward_returns has 1 non-finite"):
        backtest(**rows, fee_bps=1.0, slippage_bps=1.0)


# --- performance figures ------------------------------------------------------------------------


def test_periods_when_calendar_is_nyse_or_crypto_then_bars_per_year_follow_it():
    assert periods_per_year("XNYS", 5) == 252 * 78
    assert periods_per_year("24/7", 1) == 525_600
    assert periods_per_year("24/7", 60) == 8760
    with pytest.raises(ValueError, match="unknown calendar"):
        periods_per_year("XLON", 5)


def test_sharpe_when_computed_then_mean_over_sample_std_annualised_and_nan_when_undefined():
    assert sharpe(np.array([0.01, 0.02, 0.03]), periods_per_year=252) == pytest.approx(2 * math.sqrt(252))
    assert math.isnan(sharpe(np.array([0.01]), 252))
    assert math.isnan(sharpe(np.full(10, 0.001), 252))


def test_drawdown_when_equity_falls_then_the_compounded_fall_from_the_peak():
    assert max_drawdown(np.array([0.1, -0.5, 0.2, -0.1])) == pytest.approx(0.5)
    assert max_drawdown(np.array([-0.1, -0.1])) == pytest.approx(0.19)
    assert max_drawdown(np.array([0.01, 0.02])) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psr_when_returns_are_skewed_and_fat_tailed_then_matches_purgedcv(seed):
    rng = np.random.default_rng(seed)
    returns = 0.0004 + 0.01 * (rng.standard_t(4, 500) + 0.5 * rng.exponential(1, 500) - 0.5)

    for benchmark in (0.0, 0.02, 0.05):
        expected = probabilistic_sharpe_ratio(returns, benchmark_skill=benchmark)
        assert probabilistic_sharpe(returns, benchmark) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert 0.0 < probabilistic_sharpe(returns) < 1.0


def test_dsr_when_more_trials_were_tried_then_matches_purgedcv_and_deflates_more():
    rng = np.random.default_rng(4)
    returns = 0.001 + 0.01 * rng.standard_t(5, 2000)

    values = [deflated_sharpe(returns, trials, 0.02**2) for trials in (1, 10, 100)]

    for trials, value in zip((1, 10, 100), values, strict=True):
        assert value == pytest.approx(deflated_sharpe_ratio(returns, trials, 0.02**2), rel=1e-12, abs=1e-15)
    assert values[0] == pytest.approx(probabilistic_sharpe(returns))
    assert values[0] > values[1] > values[2]


# --- paired PnL test ----------------------------------------------------------------------------


def test_paired_when_series_are_identical_then_not_worse_only_with_enough_samples():
    pnl = np.random.default_rng(6).normal(0, 0.001, 80)

    enough = paired_pnl_test(pnl, pnl.copy(), margin=1e-4, min_samples=50)
    few = paired_pnl_test(pnl[:30], pnl[:30].copy(), margin=1e-4, min_samples=50)

    assert enough.outcome == "not_worse" and enough.samples == 80
    assert few.outcome == "inconclusive" and "fewer than 50" in few.reason


def test_paired_when_candidate_is_clearly_worse_then_worse():
    rng = np.random.default_rng(7)
    baseline = rng.normal(0.0002, 0.002, 300)
    candidate = baseline - 0.001 + rng.normal(0, 0.001, 300)

    verdict = paired_pnl_test(candidate, baseline, margin=1e-4, min_samples=50)

    assert verdict.outcome == "worse"
    assert verdict.mean_difference == pytest.approx(-0.001, abs=2e-4)


def test_paired_when_candidate_tracks_the_baseline_closely_then_not_worse():
    rng = np.random.default_rng(8)
    baseline = rng.normal(0.0002, 0.002, 500)

    verdict = paired_pnl_test(baseline + rng.normal(0, 1e-5, 500), baseline, margin=1e-4, min_samples=50)

    assert verdict.outcome == "not_worse"


def test_paired_when_independent_noise_over_few_samples_then_inconclusive():
    rng = np.random.default_rng(9)

    verdict = paired_pnl_test(rng.normal(0, 0.002, 60), rng.normal(0, 0.002, 60), margin=1e-4, min_samples=50)

    assert verdict.outcome == "inconclusive" and "cannot exclude" in verdict.reason


def test_paired_when_difference_is_constant_but_not_zero_then_inconclusive():
    baseline = np.random.default_rng(10).normal(0, 0.002, 100)

    verdict = paired_pnl_test(baseline - 0.5, baseline, margin=1e-4, min_samples=50)

    assert verdict.outcome == "inconclusive" and "no variance" in verdict.reason


def test_paired_when_bars_are_missing_on_one_side_then_only_paired_bars_count():
    rng = np.random.default_rng(12)
    baseline = rng.normal(0, 0.002, 60)
    candidate = baseline.copy()
    candidate[:20] = np.nan

    verdict = paired_pnl_test(candidate, baseline, margin=1e-4, min_samples=50)

    assert verdict.samples == 40 and verdict.outcome == "inconclusive"


def test_paired_when_differences_are_autocorrelated_then_hac_error_matches_hand_and_exceeds_iid():
    rng = np.random.default_rng(13)
    n, phi = 400, 0.8
    shocks = rng.normal(0, 0.001, n)
    d = np.zeros(n)
    for t in range(1, n):
        d[t] = phi * d[t - 1] + shocks[t]

    verdict = paired_pnl_test(d, np.zeros(n), margin=1e-4, min_samples=50)

    lag = math.floor(4 * (n / 100) ** (2 / 9))  # Newey-West 1994: 5 for 400 bars
    mean = sum(d) / n
    gamma = [sum((d[t] - mean) * (d[t - k] - mean) for t in range(k, n)) / n for k in range(lag + 1)]
    long_run = gamma[0] + 2 * sum((1 - k / (lag + 1)) * gamma[k] for k in range(1, lag + 1))
    assert lag == 5
    assert verdict.standard_error == pytest.approx(math.sqrt(long_run / n), rel=1e-10)
    assert verdict.standard_error > 1.5 * d.std(ddof=1) / math.sqrt(n)  # iid: std / sqrt(n)
