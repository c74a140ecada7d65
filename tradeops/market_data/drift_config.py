"""Configuration of the feature health check (``Settings.feature_health``).

Pydantic only: ``tradeops.config`` imports it at start, so nothing heavy here. Frozen and strict
like the rest of the configuration; a bad value fails naming its field. What each number means,
and why the defaults are what they are, is in ``tradeops.market_data.drift``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


def _above(info: ValidationInfo, value: float, lower_field: str) -> float:
    """``value`` (a critical threshold) must exceed ``lower_field`` (its warning threshold)."""
    lower = info.data.get(lower_field)  # absent when that field itself failed validation
    if lower is not None and value <= lower:
        raise ValueError(f"must be greater than {lower_field} ({lower})")
    return value


class DriftConfig(BaseModel):
    """Thresholds and statistics of the drift check. Defaults are the desk's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Reference-quantile bins for PSI and Jensen-Shannon (deciles: the scale PSI thresholds assume).
    bins: int = Field(default=10, ge=2, le=100)
    # Fewer rows than this in the window (or non-missing values in a feature): nothing is decided.
    # From scripts/bench_drift.py: a doubled variance of a t(3) return is critical within 3 windows
    # in 18 % of trials at 180 rows, 88 % at 500, 98 % at 1,000; at 60 and 180 rows noise alone
    # also raises warnings in 8.5 % and 4.5 % of windows (none from 500 rows on).
    min_samples: int = Field(default=1000, ge=20)
    # Benjamini-Hochberg false-discovery rate across every test of one window.
    fdr_alpha: float = Field(default=0.05, gt=0, lt=1)
    # A feature is critical only when flagged in this many windows in a row, with an effect at or
    # above its critical threshold in the last one.
    consecutive_windows: int = Field(default=3, ge=1)
    psi_warning: float = Field(default=0.2, gt=0)
    psi_critical: float = Field(default=0.3, gt=0)
    # Missing values: the rise of the window's missing share over the reference's.
    missing_warning: float = Field(default=0.05, gt=0, lt=1)
    missing_critical: float = Field(default=0.10, gt=0, le=1)
    # Shift: how far the median moved, in robust standard deviations of the reference (interdecile
    # range / 2.563). Critical below 0.5 so that a 0.5-sigma shift is caught with margin for noise.
    shift_warning: float = Field(default=0.25, gt=0)
    shift_critical: float = Field(default=0.4, gt=0)
    # Spread: the window's interdecile range over the reference's (or its inverse, if it shrank).
    # Critical below sqrt(2) so that a doubled variance is caught with margin for noise.
    spread_warning: float = Field(default=1.2, gt=1)
    spread_critical: float = Field(default=1.3, gt=1)
    # The reference's robust range (reported: the share of the window's values outside it).
    range_quantiles: tuple[float, float] = (0.005, 0.995)
    # Spearman correlation of a pair of features: absolute change from the reference.
    correlation_warning: float = Field(default=0.2, gt=0, le=2)
    correlation_critical: float = Field(default=0.4, gt=0, le=2)
    # Rows of each sample used for the correlations (evenly spaced); 10,000 give +-0.01.
    correlation_rows: int = Field(default=10_000, ge=100)

    @field_validator("min_samples")
    @classmethod
    def _enough_per_bin(cls, value: int, info: ValidationInfo) -> int:
        bins = info.data.get("bins")
        if bins is not None and value < 5 * bins:
            raise ValueError(f"must be at least 5 per bin (5 x bins = {5 * bins}) for the bin test")
        return value

    @field_validator("correlation_rows")
    @classmethod
    def _enough_rows(cls, value: int, info: ValidationInfo) -> int:
        floor = info.data.get("min_samples")
        if floor is not None and value < floor:
            raise ValueError(f"must be at least min_samples ({floor}): fewer rows decide no pair")
        return value

    @field_validator("psi_critical", "missing_critical", "shift_critical", "spread_critical", "correlation_critical")
    @classmethod
    def _critical_above_warning(cls, value: float, info: ValidationInfo) -> float:
        return _above(info, value, str(info.field_name).replace("_critical", "_warning"))

    @field_validator("range_quantiles")
    @classmethod
    def _range_order(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low < 0.5 < high < 1:
            raise ValueError("must be two quantiles with 0 < low < 0.5 < high < 1")
        return value
