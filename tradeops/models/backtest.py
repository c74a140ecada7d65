"""Vectorised backtest of model positions with fees and slippage, per instrument and as a portfolio.

Each row is one instrument at one sample time: the position taken at that time is held until the
instrument's next sample, over which ``forward_returns`` is the simple return. Changing a position
costs ``(fee_bps + slippage_bps) / 1e4`` per unit of change: entering and leaving each count, and
whatever is held at an instrument's last sample is closed there. The portfolio return of a sample
time is the mean over the instruments present at it (equal weights; moving weight between
instruments is not charged). Trades are round trips per instrument: a run of positions of one sign,
closed by going flat, flipping or the end of the data.

Float arithmetic on purpose: these are research figures for gates and model cards, never amounts
that move money.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Per-step series (one step = one distinct sample time, in time order) and their summary."""

    returns: np.ndarray  # portfolio return per step, net of costs
    times: np.ndarray  # the step's sample time
    trades: int  # closed round trips over all instruments
    win_rate: float  # share of trades with positive net PnL; nan without trades
    turnover: float  # mean over steps of the mean |position change| of the instruments present
    gross_return: float  # compounded portfolio return before costs
    net_return: float  # compounded portfolio return after costs
    costs: float  # sum over steps of the portfolio's cost (in return units)
    gross_returns: np.ndarray  # portfolio return per step before costs
    exposure: float  # share of instrument-steps holding a position
    instruments: int


def positions_from_probabilities(p_up: np.ndarray, threshold: float) -> np.ndarray:
    """+1 where ``p_up > threshold``, -1 where ``p_up < 1 - threshold``, 0 in between and for NaN."""
    if not 0.5 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [0.5, 1], got {threshold}")
    p_up = np.asarray(p_up, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(p_up > threshold, 1.0, np.where(p_up < 1 - threshold, -1.0, 0.0))


def backtest(
    times: np.ndarray,
    instruments: np.ndarray,
    positions: np.ndarray,
    forward_returns: np.ndarray,
    fee_bps: float,
    slippage_bps: float,
) -> BacktestResult:
    """Backtest rows given in any order (sorted here by instrument, then time)."""
    times, instruments, positions, forward_returns = _validated(times, instruments, positions, forward_returns)
    if fee_bps < 0 or slippage_bps < 0:
        raise ValueError(f"fee_bps and slippage_bps must be >= 0, got {fee_bps}, {slippage_bps}")
    order = np.lexsort((times, instruments))
    times, instruments = times[order], instruments[order]
    position, forward = positions[order], forward_returns[order]
    first = np.r_[True, instruments[1:] != instruments[:-1]]
    repeated = ~first & np.r_[False, times[1:] == times[:-1]]
    if repeated.any():
        raise ValueError(f"instrument {instruments[np.argmax(repeated)]} has two rows at {times[np.argmax(repeated)]}")
    last = np.r_[first[1:], True]
    previous = np.where(first, 0.0, np.r_[0.0, position[:-1]])
    change = np.abs(position - previous) + np.where(last, np.abs(position), 0.0)
    rate = (fee_bps + slippage_bps) / 1e4
    gross = position * forward
    cost = rate * change
    trades, win_rate = _trades(position, previous, first, last, gross, rate)
    steps, step_of_row = np.unique(times, return_inverse=True)
    per_step = np.bincount(step_of_row, minlength=len(steps))

    def mean_per_step(values: np.ndarray) -> np.ndarray:
        return np.bincount(step_of_row, weights=values, minlength=len(steps)) / per_step

    gross_steps, cost_steps = mean_per_step(gross), mean_per_step(cost)
    net_steps = gross_steps - cost_steps
    return BacktestResult(
        returns=net_steps,
        times=steps,
        trades=trades,
        win_rate=win_rate,
        turnover=float(mean_per_step(change).mean()),
        gross_return=float(np.prod(1 + gross_steps) - 1),
        net_return=float(np.prod(1 + net_steps) - 1),
        costs=float(cost_steps.sum()),
        gross_returns=gross_steps,
        exposure=float(np.mean(position != 0)),
        instruments=int(first.sum()),
    )


def _trades(
    position: np.ndarray, previous: np.ndarray, first: np.ndarray, last: np.ndarray, gross: np.ndarray, rate: float
) -> tuple[int, float]:
    """Round trips and the share of them with positive net PnL, on rows sorted by instrument.

    A trade opens where a position starts from flat or flips sign; it owns the gross PnL of its
    rows, the cost of opening and resizing, and the cost of closing (where the next row is flat or
    flipped, or at the instrument's last row). A flip's cost splits into its closing and opening
    parts exactly, so the trades' costs add up to the backtest's.
    """
    held = position != 0
    sign = np.sign(position)
    opens = held & (first | (sign != np.sign(previous)))
    if not opens.any():
        return 0, float("nan")
    closes = held & (last | np.r_[sign[1:] != sign[:-1], True])
    trade_of_row = np.cumsum(opens) - 1
    own_cost = rate * np.where(opens, np.abs(position), np.abs(position - previous))
    own_cost += rate * np.where(closes, np.abs(position), 0.0)
    pnl = np.bincount(trade_of_row[held], weights=(gross - own_cost)[held], minlength=int(opens.sum()))
    return int(opens.sum()), float(np.mean(pnl > 0))


def _validated(
    times: np.ndarray, instruments: np.ndarray, positions: np.ndarray, forward_returns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    times, instruments = np.asarray(times), np.asarray(instruments)
    positions, forward_returns = np.asarray(positions, dtype=float), np.asarray(forward_returns, dtype=float)
    shapes = {a.shape for a in (times, instruments, positions, forward_returns)}
    if len(shapes) != 1 or times.ndim != 1 or times.size == 0:
        raise ValueError(
            f"times, instruments, positions, forward_returns must be non-empty 1-D of one length: {shapes}"
        )
    for name, values in (("positions", positions), ("forward_returns", forward_returns)):
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(f"{name} has {int(bad.sum())} non-finite values (first at row {int(np.argmax(bad))})")
    return times, instruments, positions, forward_returns
