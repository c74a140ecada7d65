"""``config/agents.yaml``: the trading agents, validated at load like the main configuration.

One entry per agent under ``agents:``; ``defaults:`` is merged under every entry (a nested key of
an entry wins), so a new agent is a venue, a symbol, a schedule and a calendar. Unknown keys and
bad values raise ``ConfigError`` naming the key (``agents.tsla.risk.max_position``). Checks that
need the main configuration (the venue exists, lists the symbol, its calendar fits the venue)
are in ``check_against``; the DAG factory runs both at parse time, so a bad entry is an import
error in the Airflow UI naming the key. Pydantic and the standard library only: this module is
imported while DAG files are parsed.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tradeops.errors import ConfigError

AGENTS_CONFIG_ENV = "TRADEOPS_AGENTS_CONFIG"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
# The 1-minute bars an agent reads must cover the longest feature window of the registry
# (tradeops.market_data.registry.MAX_WINDOW, 241 bars); checked against it in a test.
MIN_HISTORY_BARS = 242


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Frozen):
    """How sentiment and the technical picture are weighted in the decision (they sum to 1)."""

    sentiment: float = Field(default=0.6, ge=0, le=1)
    technical: float = Field(default=0.4, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Weights:
        if abs(self.sentiment + self.technical - 1) > 1e-9:
            raise ValueError(f"sentiment + technical must be 1, got {self.sentiment + self.technical}")
        return self


class RiskLimits(_Frozen):
    """What ``validate_risk`` enforces before an order, and the fill check after it."""

    max_position: Decimal = Field(gt=0)  # base units the agent may hold
    max_notional: Decimal = Field(gt=0)  # quote value of the agent's position after the order
    # The agent's equity (its PnL) may fall this share of its capital below its peak; past it only
    # orders that reduce the position pass.
    max_drawdown: Decimal = Field(gt=0, lt=1)
    # Gross quote value of everything but cash held on the venue after the order (all agents and
    # the desk's own holdings): a venue-concentration limit.
    max_venue_exposure: Decimal = Field(gt=0)
    # A fill this far from the price the decision was made at fails the step after the order, and
    # the saga's undo trades the fill back.
    max_slippage_bps: Decimal = Field(default=Decimal(50), gt=0)


class Sizing(_Frozen):
    """How big an order is: ``order_notional`` (quote) at full conviction, in whole lots."""

    order_notional: Decimal = Field(gt=0)
    lot_size: Decimal = Field(gt=0)  # the base increment an amount is rounded down to
    # Scale the notional by the decision's conviction (|score| x confidence, 0..1).
    scale_by_conviction: bool = True
    # Orders worth less than this are not sent (the decision is recorded as a hold).
    min_order_notional: Decimal = Field(default=Decimal(0), ge=0)


class AgentConfig(_Frozen):
    """One agent: what it trades, when, and how it decides, sizes and limits its orders."""

    venue: str
    symbol: str
    schedule: str  # a cron expression, in ``timezone``
    timezone: str = "UTC"
    calendar: Literal["XNYS", "24/7"]
    # The symbol the news source files headlines under; default: the base asset (TSLA, BTC).
    news_symbol: str | None = None
    capital: Decimal = Field(gt=0)  # quote allocated: the drawdown limit is a share of it
    weights: Weights = Weights()
    # The routed model's share of the final score when a model serves the instrument.
    model_weight: float = Field(default=0.3, ge=0, le=1)
    # |score| at least this (and a fitting position) buys or sells; below it the agent holds.
    entry_threshold: float = Field(default=0.15, gt=0, lt=1)
    history_bars: int = Field(default=600, ge=MIN_HISTORY_BARS, le=20_000)  # 1-minute bars read
    # A run that starts trading later than this after its scheduled time does not trade: its
    # signals are stale and the next run is due.
    max_delay_seconds: int = Field(default=240, gt=0)
    risk: RiskLimits
    sizing: Sizing

    @field_validator("symbol")
    @classmethod
    def _spot_symbol(cls, value: str) -> str:
        from tradeops.model import MarketKind, parse_symbol

        if parse_symbol(value)[2] is not MarketKind.SPOT:
            raise ValueError(f"'{value}': agents trade spot markets (BASE/QUOTE)")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"'{value}' is not a cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'") from None
        return value

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1]

    @property
    def headline_symbol(self) -> str:
        return self.news_symbol or self.base


class NewsConfig(_Frozen):
    """Where headlines come from: ``kafka`` (the ``market_news`` topic of the main configuration,
    which the paper setup fills) or ``module.path:ClassName`` of a ``NewsSource`` built with
    ``options``."""

    source: str = "kafka"
    options: dict[str, Any] = Field(default_factory=dict)
    lookback_minutes: int = Field(default=240, gt=0, le=7 * 24 * 60)
    max_headlines: int = Field(default=50, gt=0, le=1000)
    # A headline's weight halves every this many minutes of age.
    half_life_minutes: float = Field(default=90.0, gt=0)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value != "kafka" and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError(f"'{value}': use 'kafka' or 'package.module:ClassName'")
        return value


class PaperFeedConfig(_Frozen):
    """The deterministic headlines the local stack publishes for every agent's news symbol."""

    every_minutes: int = Field(default=10, gt=0, le=24 * 60)
    seed: int = 7


class AgentsFile(_Frozen):
    news: NewsConfig = NewsConfig()
    paper_feed: PaperFeedConfig = PaperFeedConfig()
    agents: dict[str, AgentConfig]

    @field_validator("agents")
    @classmethod
    def _names(cls, value: dict[str, AgentConfig]) -> dict[str, AgentConfig]:
        for name in value:
            if not NAME_PATTERN.fullmatch(name):
                raise ValueError(f"agent name '{name}' must be lower case letters, digits and _ (dag_id part)")
        return value

    def agent(self, name: str) -> AgentConfig:
        try:
            return self.agents[name]
        except KeyError:
            raise ConfigError(f"agents.{name}", f"no such agent; known: {sorted(self.agents)}") from None


def dag_id(name: str) -> str:
    """The DAG of agent ``name``."""
    return f"agent_{name}_trading"


def default_agents_path() -> Path:
    """``TRADEOPS_AGENTS_CONFIG``, else ``agents.yaml`` beside the main configuration file (the
    image copies config/ away from the installed package)."""
    from tradeops.config import default_config_path

    configured = os.environ.get(AGENTS_CONFIG_ENV)
    return Path(configured) if configured else default_config_path().with_name("agents.yaml")


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    defaults = data.pop("defaults", None) or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError("defaults", "must be a mapping")
    agents = data.get("agents")
    if not isinstance(agents, Mapping) or not agents:
        raise ConfigError("agents", "must be a mapping of at least one agent")
    for name, entry in agents.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"agents.{name}", "must be a mapping")
    data["agents"] = {name: _merge(defaults, entry) for name, entry in agents.items()}
    return data


def load_agents(path: Path | None = None) -> AgentsFile:
    """Read and validate the agents file; ``ConfigError`` names the bad key."""
    path = path or default_agents_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(AGENTS_CONFIG_ENV, f"file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "top level must be a mapping")
    try:
        return AgentsFile.model_validate(_with_defaults(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "<root>"
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(key, message) from None


def check_against(agents: AgentsFile, settings: Any) -> None:
    """Raise ``ConfigError`` when an agent names what the main configuration does not have."""
    for name, agent in agents.agents.items():
        key = f"agents.{name}"
        if agent.venue not in settings.venues:
            raise ConfigError(f"{key}.venue", f"no such venue '{agent.venue}'; known: {sorted(settings.venues)}")
        venue = settings.venues[agent.venue]
        if agent.symbol not in venue.markets:
            raise ConfigError(
                f"{key}.symbol", f"'{agent.symbol}' is not a market of {agent.venue}: {list(venue.markets)}"
            )
        expected = "XNYS" if venue.asset_class == "equity" else "24/7"
        if agent.calendar != expected:
            raise ConfigError(
                f"{key}.calendar", f"{agent.venue} trades {venue.asset_class}: its instruments follow {expected}"
            )


@functools.lru_cache(maxsize=1)
def agents() -> AgentsFile:
    """The process-wide agents file, checked against the main configuration (loaded once)."""
    from tradeops.config import settings

    loaded = load_agents()
    check_against(loaded, settings())
    return loaded
