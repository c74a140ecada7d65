"""Purged walk-forward cross-validation with an embargo, split by time across instruments.

A sample ``i`` is observed at ``starts[i]`` and its label is known at ``ends[i]`` (start plus the
label horizon): its label occupies the closed interval ``[start, end]`` (Lopez de Prado, AFML
7.4.1). Many instruments share timestamps, so the split is by time and never inside a timestamp:
the distinct timestamps are cut into ``folds + 1`` consecutive groups holding about the same number
of samples, and fold ``k`` (1 .. folds) tests group ``k`` and trains on every earlier group
(an expanding window).

Purge: a training sample whose label interval reaches into the test window (``end`` at or after
the window's first timestamp) is dropped, else its label would have been computed from prices of
the test window.

Embargo: in AFML and in ``purgedcv`` an embargo drops training samples right *after* a test
window, whose features were formed from test-window data. A walk-forward fold has no training
data after its test window, so there (``purgedcv.WalkForwardSplit``) the embargo removes nothing.
We give it a meaning instead of a no-op: ``embargo`` widens the purge backwards by that many
sample timestamps, so a training label must be known ``embargo`` steps before the first test
observation. That is the lag between the last label a deployed model was trained on and its
first prediction, and it keeps short-range serial correlation across the boundary out of the
scores. It equals ``purgedcv``'s walk-forward purge padded by the same span of time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Fold:
    """One fold: sorted int positions into the sample arrays."""

    number: int  # 1 .. folds; fold k tests the k-th of the folds + 1 time groups (counting from 0)
    train: np.ndarray
    test: np.ndarray


def purged_walk_forward(starts: np.ndarray, ends: np.ndarray, folds: int = 5, embargo: int = 0) -> list[Fold]:
    """The ``folds`` purged, embargoed walk-forward folds of the samples (rows in any order).

    ``starts``/``ends`` are datetime64 or integer times of the same kind. ``embargo`` counts
    distinct sample timestamps (one instrument's samples), not raw bars. Raises ValueError when
    a fold has no test or no training sample left, naming the fold.
    """
    starts, ends = _validated(starts, ends, folds, embargo)
    times, time_of_row = np.unique(starts, return_inverse=True)
    group_of_time = _time_groups(np.bincount(time_of_row, minlength=len(times)), folds + 1)
    group_of_row = group_of_time[time_of_row]
    result = []
    for number in range(1, folds + 1):
        first_test_time = int(np.searchsorted(group_of_time, number, side="left"))
        test = np.flatnonzero(group_of_row == number)
        if test.size == 0:
            raise ValueError(f"fold {number}: no test sample ({len(times)} distinct times for {folds + 1} groups)")
        cutoff_time = first_test_time - embargo
        train = np.empty(0, dtype=np.int64)
        if cutoff_time > 0:
            train = np.flatnonzero((group_of_row < number) & (ends < times[cutoff_time]))
        if train.size == 0:
            raise ValueError(
                f"fold {number}: no training sample left after purging labels that reach the test window"
                f" and an embargo of {embargo} sample times"
            )
        result.append(Fold(number=number, train=train.astype(np.int64), test=test.astype(np.int64)))
    return result


def _time_groups(samples_per_time: np.ndarray, groups: int) -> np.ndarray:
    """Group (0 .. groups-1) of each distinct time: by the rank of its first sample, so groups
    hold about the same number of samples and a timestamp is never split."""
    before = np.cumsum(samples_per_time) - samples_per_time
    return (before * groups) // int(samples_per_time.sum())


def _validated(starts: np.ndarray, ends: np.ndarray, folds: int, embargo: int) -> tuple[np.ndarray, np.ndarray]:
    starts, ends = np.asarray(starts), np.asarray(ends)
    if starts.ndim != 1 or starts.shape != ends.shape or starts.size == 0:
        raise ValueError(
            f"starts and ends must be non-empty 1-D arrays of one length, got {starts.shape} and {ends.shape}"
        )
    kinds = {starts.dtype.kind, ends.dtype.kind}
    if not (kinds == {"M"} or kinds <= {"i", "u"}):
        raise ValueError(f"starts and ends must both be datetime64 or both integers, got {starts.dtype}, {ends.dtype}")
    if "M" in kinds and (np.isnat(starts).any() or np.isnat(ends).any()):
        raise ValueError("starts and ends must not contain NaT")
    if (ends < starts).any():
        raise ValueError(f"a label ends before it starts at row {int(np.argmax(ends < starts))}")
    if folds < 1 or embargo < 0:
        raise ValueError(f"folds must be >= 1 and embargo >= 0, got folds={folds}, embargo={embargo}")
    return starts, ends
