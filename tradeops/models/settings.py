"""Configuration of training, promotion gates, serving and deployment of the models.

Pydantic models only (imported by ``tradeops.config`` at start, so nothing heavy here): frozen,
unknown keys rejected, so a typo fails at start with the key named.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingConfig(_Frozen):
    """What the weekly training reads and how it judges candidates."""

    # Days of the feature store read, ending the day before the run.
    lookback_days: int = Field(default=90, gt=1)
    # The label: the forward log return over this many bars of the instrument, net of the fees
    # of a round trip (so "up" means "up by more than it costs to trade").
    horizon_bars: int = Field(default=15, gt=0)
    # One sample every this many bars per instrument: overlapping labels carry little new
    # information and a week of minute bars of the whole universe does not fit a 2-core box.
    sample_every: int = Field(default=5, gt=0)
    # Purged walk-forward cross-validation: folds, and bars dropped after each test window.
    folds: int = Field(default=5, ge=2)
    embargo_bars: int = Field(default=60, ge=0)
    # The last share of the samples (in time) is held out for the test metrics and the gates.
    test_share: float = Field(default=0.2, gt=0, lt=0.5)
    seed: int = 7

    @model_validator(mode="after")
    def _whole_steps(self) -> TrainingConfig:
        if self.horizon_bars % self.sample_every:
            raise ValueError(
                f"horizon_bars ({self.horizon_bars}) must be a multiple of sample_every ({self.sample_every}):"
                " a label spans whole sampling steps"
            )
        return self


class BacktestConfig(_Frozen):
    """The vectorised backtest of the held-out window (and of the shadow replay)."""

    fee_bps: float = Field(default=5.0, ge=0)  # per unit of turnover, each side
    slippage_bps: float = Field(default=2.0, ge=0)  # per unit of turnover, each side
    # Long above this predicted probability of "up", short below 1 - it, flat in between.
    threshold: float = Field(default=0.55, gt=0.5, lt=1)


class GatesConfig(_Frozen):
    """All must pass on the held-out window for a model to become the challenger."""

    min_sharpe: float = 2.0  # annualised on the instrument's calendar
    max_drawdown: float = Field(default=0.15, gt=0, lt=1)
    min_win_rate: float = Field(default=0.55, ge=0, le=1)
    min_trades: int = Field(default=100, ge=0)
    min_psr: float = Field(default=0.95, ge=0, le=1)  # probabilistic Sharpe, deflated for the trials


class PromotionConfig(_Frozen):
    # A person approves a model that passed the gates (Airflow's Required Actions) before it
    # becomes the challenger.
    require_approval: bool = False


class DeploymentConfig(_Frozen):
    """Blue/green replay and the per-instrument canary."""

    shadow_days: int = Field(default=3, gt=0)  # days of features replayed through blue and green
    min_valid_share: float = Field(default=0.95, gt=0, le=1)
    max_p99_ms: float = Field(default=200.0, gt=0)
    # Shares of the universe on the challenger, stage by stage; the last must be 1.
    canary_stages: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
    # How long each stage is watched (the first, then the others); tests use seconds.
    first_window_seconds: float = Field(default=3600.0, gt=0)
    window_seconds: float = Field(default=1800.0, gt=0)
    # Thin evidence extends a window, up to this many times its length, then the rollout holds.
    max_window_factor: float = Field(default=4.0, ge=1)
    min_samples: int = Field(default=50, gt=1)  # paired predictions per stage before a verdict
    max_error_rate: float = Field(default=0.01, ge=0, lt=1)
    # The paired PnL test: how much worse per bar (in return units) still counts as "not worse".
    pnl_margin: float = Field(default=0.0001, ge=0)
    # The replaced champion stays registered as "previous" at least this long for a rollback.
    keep_previous_hours: float = Field(default=24.0, ge=0)

    @field_validator("canary_stages")
    @classmethod
    def _stages(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(not 0 < s <= 1 for s in value) or list(value) != sorted(set(value)) or value[-1] != 1:
            raise ValueError(f"canary_stages must rise strictly within (0, 1] and end at 1, got {list(value)}")
        return value


class ModelsConfig(_Frozen):
    """Where models are tracked and registered, and how they get there."""

    # MLflow: a path under the project (a SQLite file), or any tracking URI (http://..., postgresql://...).
    tracking_uri: str = ".local/mlflow/mlflow.db"
    # Where runs store artifacts when the tracking URI is a local file (a path under the project).
    artifact_root: str = ".local/mlflow/artifacts"
    registered_model: str = "tradeops_direction"
    training: TrainingConfig = TrainingConfig()
    backtest: BacktestConfig = BacktestConfig()
    gates: GatesConfig = GatesConfig()
    promotion: PromotionConfig = PromotionConfig()
    deployment: DeploymentConfig = DeploymentConfig()

    @model_validator(mode="after")
    def _name(self) -> ModelsConfig:
        if not self.registered_model.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"registered_model must be letters, digits, - and _, got '{self.registered_model}'")
        return self
