"""Configuration of the market-data pipeline: the universe, the store, the validation policy.

Pydantic models only (imported by ``tradeops.config`` at start, so nothing heavy here). Like the
rest of the configuration they are frozen and reject unknown keys, so a typo fails at start with
the key named.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CheckName = Literal[
    "schema", "ohlc", "negative_volume", "duplicates", "off_calendar", "missing", "gap", "outliers", "stale"
]
CHECKS: tuple[CheckName, ...] = (
    "schema",
    "ohlc",
    "negative_volume",
    "duplicates",
    "off_calendar",
    "missing",
    "gap",
    "outliers",
    "stale",
)
Action = Literal["fail", "quarantine", "warn"]
FaultKind = Literal["missing", "high_below_low", "negative_volume", "stale", "spike", "duplicate"]

# What a real desk does with each finding: broken bars keep the symbol out of the day's features
# (the rest go on); scattered missing minutes, outliers and flat prices are worth a look, not a stop.
DEFAULT_POLICY: dict[CheckName, Action] = {
    "schema": "quarantine",
    "ohlc": "quarantine",
    "negative_volume": "quarantine",
    "duplicates": "quarantine",
    "off_calendar": "quarantine",
    "missing": "warn",
    "gap": "quarantine",
    "outliers": "warn",
    "stale": "warn",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValidationConfig(_Frozen):
    """Which checks fail the run, quarantine the symbol, or only warn, and their parameters."""

    policy: dict[CheckName, Action] = Field(default_factory=lambda: dict(DEFAULT_POLICY))
    # A run of at least this many consecutive missing minutes is a gap (fewer: scattered misses).
    gap_minutes: int = Field(default=15, gt=0)
    # A 1-minute log return this many robust sigmas (median absolute deviation) out is an outlier.
    outlier_sigmas: float = Field(default=12.0, gt=0)
    # This many consecutive bars with the same open, high, low and close is a stale price.
    stale_bars: int = Field(default=30, gt=1)
    # More quarantined symbols than this share of the universe fails the run (a systemic problem).
    max_quarantined_share: float = Field(default=0.5, gt=0, le=1)
    # Missing minutes are never filled silently: "ffill" adds flat bars at the previous close with
    # zero volume, marked ``filled``, for runs up to ``max_fill_bars``; "none" leaves them missing.
    fill: Literal["none", "ffill"] = "none"
    max_fill_bars: int = Field(default=5, gt=0)
    # How many offending timestamps a finding lists.
    examples: int = Field(default=5, gt=0)

    @field_validator("policy")
    @classmethod
    def _every_check(cls, value: dict[CheckName, Action]) -> dict[CheckName, Action]:
        return {**DEFAULT_POLICY, **value}


class MarketDataConfig(_Frozen):
    """The nightly pipeline: what it fetches, where the features go, how bars are judged."""

    # venue -> symbols (each a market of that venue).
    universe: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # Where the feature store, the archive and the reports live: a path (relative to the project
    # root), a file:// URL, or s3://bucket/prefix with ``store_conn_id`` (an Airflow AWS connection).
    store_url: str = ".local/feature-store"
    store_conn_id: str | None = None
    # Bars read before the day so the longest feature window has no gap at midnight.
    warmup_bars: int = Field(default=600, ge=0)
    # The health check's reference when no champion model exists: this many days of the store.
    reference_days: int = Field(default=30, gt=0)
    validation: ValidationConfig = ValidationConfig()

    @field_validator("store_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if "://" in value and value.split("://", 1)[0] not in ("file", "s3"):
            raise ValueError(f"store_url must be a path, file:// or s3:// URL, got '{value}'")
        return value

    @model_validator(mode="after")
    def _s3_needs_connection(self) -> MarketDataConfig:
        if self.store_url.startswith("s3://") and not self.store_conn_id:
            raise ValueError("an s3:// store_url needs store_conn_id (an Airflow AWS connection)")
        return self


class DataFault(_Frozen):
    """A defect the paper venue puts into the bars it serves, to see validation work end to end."""

    venue: str
    symbol: str
    kind: FaultKind
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _range(self) -> DataFault:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a timezone (e.g. 2026-11-27T15:00:00Z)")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self
