"""Configuration: YAML in ``config/`` plus ``TRADEOPS__SECTION__KEY`` environment overrides.

Validated once at load: an unknown key or a bad value raises ``ConfigError`` naming the key.
Secrets never live here; live-venue credentials come from Airflow connections / the environment.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tradeops.errors import ConfigError
from tradeops.market_data.drift_config import DriftConfig
from tradeops.market_data.settings import DataFault, MarketDataConfig
from tradeops.model import MarketKind, parse_symbol
from tradeops.models.settings import ModelsConfig

ENV_PREFIX = "TRADEOPS__"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkRoute(_Frozen):
    """Withdrawal fee and settlement delay of one asset over one network."""

    fee: Decimal = Field(ge=0)
    settle_seconds: int = Field(ge=0)


class VenueConfig(_Frozen):
    kind: Literal["paper", "ccxt"] = "paper"
    ccxt_id: str | None = None
    connection_id: str | None = None
    asset_class: Literal["crypto", "equity"] = "crypto"
    taker_fee_bps: Decimal = Field(default=Decimal(5), ge=0)
    maker_fee_bps: Decimal = Field(default=Decimal(2), ge=0)
    funding_interval_hours: int = Field(default=8, gt=0)
    # Venues set funding intervals per symbol (8 h for most, 4 h or 1 h for some): perp -> hours.
    # A perp not listed here uses ``funding_interval_hours``.
    funding_interval_hours_by_symbol: dict[str, int] = Field(default_factory=dict)
    leverage: Decimal = Field(default=Decimal(5), gt=0)
    markets: tuple[str, ...]
    price_offset_bps: Decimal = Decimal(0)
    # Paper venues: where spot fees come from. "quote" (default): every fee is paid in the quote
    # asset. "received": spot buys pay the fee in the base asset they receive, as many exchanges do.
    spot_fee_asset: Literal["quote", "received"] = "quote"
    funding_rates: dict[str, Decimal] = Field(default_factory=dict)
    initial_balances: dict[str, Decimal] = Field(default_factory=dict)
    withdrawal: dict[str, dict[str, NetworkRoute]] = Field(default_factory=dict)
    # This venue's own deposit addresses (asset -> network -> address): where other venues send
    # funds. Public data, not secrets; live venues need them for withdrawals to this venue.
    deposit_addresses: dict[str, dict[str, str]] = Field(default_factory=dict)
    sandbox: bool = False
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("markets")
    @classmethod
    def _markets_are_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for symbol in value:
            parse_symbol(symbol)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> VenueConfig:
        if self.kind == "ccxt" and not self.ccxt_id:
            raise ValueError("a ccxt venue needs ccxt_id")
        perps = {m for m in self.markets if parse_symbol(m)[2] is MarketKind.PERP}
        unknown = set(self.funding_rates) - perps
        if unknown:
            raise ValueError(f"funding_rates for symbols that are not perp markets here: {sorted(unknown)}")
        unknown = set(self.funding_interval_hours_by_symbol) - perps
        if unknown:
            raise ValueError(f"funding_interval_hours_by_symbol: not perp markets here: {sorted(unknown)}")
        bad = sorted(s for s, hours in self.funding_interval_hours_by_symbol.items() if hours <= 0)
        if bad:
            raise ValueError(f"funding_interval_hours_by_symbol must be positive hours: {bad}")
        return self

    def funding_interval(self, symbol: str) -> int:
        """Hours between funding settlements of ``symbol`` here (per-symbol map, else the venue's)."""
        return self.funding_interval_hours_by_symbol.get(symbol, self.funding_interval_hours)


class PaperConfig(_Frozen):
    seed: int = 7
    prices: dict[str, Decimal]
    ohlcv_days: int = Field(default=30, gt=0)
    ohlcv_timeframe: Literal["1h"] = "1h"
    volatility_bps: Decimal = Field(default=Decimal(60), ge=0)
    # Trading sessions of paper equity venues: "always_open" (deterministic, the default) or
    # "xnys" (NYSE regular hours, holidays and early closes; orders outside them wait for the open).
    equity_sessions: Literal["always_open", "xnys"] = "always_open"
    # Defects put on purpose into the minute bars paper venues serve (see tradeops.venues.paper_bars).
    data_faults: tuple[DataFault, ...] = ()


class ThresholdsConfig(_Frozen):
    funding_deviation_bps: Decimal = Field(default=Decimal(20), gt=0)
    funding_period_hours: int = Field(default=8, gt=0)
    market_shock_pct: Decimal = Field(default=Decimal(5), gt=0)
    extreme_shock_pct: Decimal = Field(default=Decimal(15), gt=0)


class CapitalConfig(_Frozen):
    floors: dict[str, dict[str, Decimal]] = Field(default_factory=dict)


class KafkaTopics(_Frozen):
    market_events: str = "market-events"
    capital_events: str = "capital-events"
    funding_rate_events: str = "funding-rate-events"
    risk_alerts: str = "risk-alerts"
    # Drift, stale data, late pipelines: for people and dashboards; no watcher acts on it.
    data_alerts: str = "data-alerts"
    # Model rollouts: stages passed, finished, held, rolled back. For people; no watcher acts on it.
    model_events: str = "model-events"
    # Headlines the trading agents read (news_headline, keyed by news symbol); the local stack's paper
    # feed fills it. No watcher acts on it.
    market_news: str = "market-news"
    dead_letter: str = "tradeops-dead-letter"


# Event types a watcher reads, with the default maximum age (seconds) before an event is stale.
DEFAULT_MAX_EVENT_AGE_SECONDS: dict[str, int] = {
    "critical_alert": 900,
    "market_shock": 300,
    "capital_threshold": 1800,
    "funding_rate_deviation": 900,
}


class KafkaWatchConfig(_Frozen):
    """How the Kafka watchers read: caps applied before parsing, batching, staleness, health."""

    # Bigger messages are dead-lettered unread. Our largest event (a stop-loss report for a few
    # dozen venues) is a few KiB; the broker accepts up to 1 MiB.
    max_message_bytes: int = Field(default=262_144, gt=0, le=8_388_608)
    # Deeper JSON nesting is dead-lettered unparsed (our deepest event nests 4 levels).
    max_nesting_depth: int = Field(default=16, gt=0, le=256)
    # One poll batch (at most this many messages, collected for at most this long after the
    # first) becomes one asset event carrying all of its firing events.
    batch_max_messages: int = Field(default=500, gt=0, le=10_000)
    batch_max_ms: int = Field(default=20, ge=0, le=5_000)
    # An event older than this (event type -> seconds since ``occurred_at``) is recorded as
    # stale and never fires. Types not listed have no maximum age.
    max_event_age_seconds: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MAX_EVENT_AGE_SECONDS))
    # What the dead-letter topic takes whole; a bigger value is stored truncated, with the
    # original's size and SHA-256 in its headers. Below the broker's 1 MiB message limit.
    dead_letter_max_bytes: int = Field(default=900_000, gt=1024, le=8_388_608)
    # How often a watcher records its heartbeat (and lag); a broker unreachable for longer than
    # ``broker_outage_alert_seconds`` raises one ERROR and shows as down.
    heartbeat_seconds: float = Field(default=5.0, gt=0, le=300)
    broker_outage_alert_seconds: float = Field(default=30.0, gt=0)

    @field_validator("max_event_age_seconds")
    @classmethod
    def _ages(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(DEFAULT_MAX_EVENT_AGE_SECONDS))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {sorted(DEFAULT_MAX_EVENT_AGE_SECONDS)}")
        bad = sorted(name for name, seconds in value.items() if seconds <= 0)
        if bad:
            raise ValueError(f"maximum ages must be positive seconds: {bad}")
        return value


class KafkaConfig(_Frozen):
    bootstrap_servers: str = "127.0.0.1:19092"
    controller_port: int = Field(default=19093, gt=0, lt=65536)
    partitions: int = Field(default=3, gt=0)
    topics: KafkaTopics = KafkaTopics()
    delivery_timeout_seconds: float = Field(default=15.0, gt=0)
    watch: KafkaWatchConfig = KafkaWatchConfig()


class SagaConfig(_Frozen):
    """Runtime settings of the saga layer (retry counts are task arguments, set in the DAGs)."""

    breaker_failure_threshold: int = Field(default=5, gt=0)
    breaker_cooldown_seconds: float = Field(default=60.0, ge=0)
    # The undo of a transfer waits for it to arrive: its route's settlement time plus this margin.
    settle_margin_seconds: int = Field(default=900, ge=0)
    # A live withdrawal whose answer was lost counts as "not sent" only when the venue's history
    # still does not show it this long after the attempt (venues list withdrawals with a delay).
    withdrawal_history_lag_seconds: int = Field(default=120, ge=0)


class TradingStateConfig(_Frozen):
    """Changes of the desk-wide trading state made through Airflow (``trading_state_control``).

    HALTED is the safe direction and applies at once; ACTIVE and REDUCING wait for an approval
    under Required Actions, by someone other than the requester when ``distinct_approver``.
    """

    approval_timeout_hours: float = Field(default=4.0, gt=0, le=72)
    distinct_approver: bool = True


# The longest an emergency stop may keep trying (the DAG's timeouts are sized from it).
STOP_LOSS_MAX_DURATION_LIMIT_SECONDS = 2700


class StopLossConfig(_Frozen):
    """The emergency stop: how long it keeps trying, how it backs off, what counts as flat."""

    max_duration_seconds: float = Field(default=1800.0, gt=0, le=STOP_LOSS_MAX_DURATION_LIMIT_SECONDS)
    backoff_initial_seconds: float = Field(default=1.0, gt=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    backoff_max_seconds: float = Field(default=15.0, gt=0)
    # The first stop_loss_report goes out once every venue finished its first round, or after this.
    first_report_after_seconds: float = Field(default=5.0, gt=0)
    # A balance at or under its asset's threshold (base units) counts as flat; unlisted assets: 0.
    dust: dict[str, Decimal] = Field(default_factory=dict)
    # Assets held as cash besides the quote assets of the configured markets (never sold).
    cash_assets: tuple[str, ...] = ()

    @field_validator("dust")
    @classmethod
    def _dust_not_negative(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        negative = sorted(asset for asset, amount in value.items() if amount < 0)
        if negative:
            raise ValueError(f"dust thresholds must not be negative: {negative}")
        return value

    def dust_of(self, asset: str) -> Decimal:
        return self.dust.get(asset, Decimal(0))

    def backoff(self, round_number: int) -> float:
        """Seconds to wait after round ``round_number`` (1-based) before the next one."""
        exponent = min(round_number - 1, 64)
        return float(min(self.backoff_initial_seconds * self.backoff_factor**exponent, self.backoff_max_seconds))


class HedgeConfig(_Frozen):
    """The funding-rate hedge: short perps against the spot held across venues."""

    symbols: tuple[str, ...] = ("BTC/USDT:USDT", "ETH/USDT:USDT")
    hedge_ratio: Decimal = Field(default=Decimal(1), ge=0, le=Decimal(2))
    # Adjustments smaller than this (in base units) are left alone: no churn on dust.
    min_adjustment: dict[str, Decimal] = Field(default_factory=dict)
    # No single hedge adjustment may exceed this notional (quote units): a fat-finger guard.
    max_adjustment_notional: Decimal = Field(default=Decimal(2_000_000), gt=0)

    @field_validator("symbols")
    @classmethod
    def _perps(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for symbol in value:
            if parse_symbol(symbol)[2] is not MarketKind.PERP:
                raise ValueError(f"'{symbol}' is not a perpetual (BASE/QUOTE:QUOTE)")
        return value


class WiseConfig(_Frozen):
    """Fiat legs through Wise. ``paper`` quotes from a fee model; ``live`` calls the Wise API with
    the token of Airflow connection ``connection_id`` (never in YAML)."""

    kind: Literal["paper", "live"] = "paper"
    connection_id: str = "tradeops_wise"
    profile_id: int | None = None
    base_url: str = "https://api.wise.com"
    paper_fee_pct: Decimal = Field(default=Decimal("0.43"), ge=0, lt=100)
    paper_fixed_fee: Decimal = Field(default=Decimal("1.10"), ge=0)
    paper_settle_seconds: int = Field(default=3600, ge=0)

    @model_validator(mode="after")
    def _live_needs_profile(self) -> WiseConfig:
        if self.kind == "live" and self.profile_id is None:
            raise ValueError("a live Wise client needs profile_id")
        return self


class RebalanceConfig(_Frozen):
    """Target allocation of each asset across venues, as weights that sum to 1 per asset."""

    targets: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    tolerance_pct: Decimal = Field(default=Decimal(2), ge=0, lt=100)
    min_transfer: dict[str, Decimal] = Field(default_factory=dict)
    # Fiat venues reachable through Wise: venue -> fiat currency it banks in.
    fiat_accounts: dict[str, str] = Field(default_factory=dict)

    @field_validator("targets")
    @classmethod
    def _weights_sum_to_one(cls, value: dict[str, dict[str, Decimal]]) -> dict[str, dict[str, Decimal]]:
        for asset, weights in value.items():
            if any(w < 0 for w in weights.values()):
                raise ValueError(f"{asset}: weights must not be negative")
            if sum(weights.values()) != 1:
                raise ValueError(f"{asset}: weights sum to {sum(weights.values())}, not 1")
        return value


class Settings(_Frozen):
    venues: dict[str, VenueConfig]
    paper: PaperConfig
    thresholds: ThresholdsConfig = ThresholdsConfig()
    capital: CapitalConfig = CapitalConfig()
    kafka: KafkaConfig = KafkaConfig()
    saga: SagaConfig = SagaConfig()
    hedge: HedgeConfig = HedgeConfig()
    rebalance: RebalanceConfig = RebalanceConfig()
    wise: WiseConfig = WiseConfig()
    stop_loss: StopLossConfig = StopLossConfig()
    trading_state: TradingStateConfig = TradingStateConfig()
    market_data: MarketDataConfig = MarketDataConfig()
    feature_health: DriftConfig = DriftConfig()
    models: ModelsConfig = ModelsConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        self._check_market_data()
        for venue in self.capital.floors:
            if venue not in self.venues:
                raise ValueError(f"capital.floors names unknown venue '{venue}'")
        for asset, weights in self.rebalance.targets.items():
            unknown = sorted(set(weights) - set(self.venues))
            if unknown:
                raise ValueError(f"rebalance.targets.{asset} names unknown venues {unknown}")
        for venue in self.rebalance.fiat_accounts:
            if venue not in self.venues:
                raise ValueError(f"rebalance.fiat_accounts names unknown venue '{venue}'")
        for name, venue in self.venues.items():
            for asset, routes in venue.withdrawal.items():
                if not routes:
                    raise ValueError(f"venues.{name}.withdrawal.{asset} lists no network")
            if venue.kind == "paper":
                missing = {parse_symbol(m)[0] for m in venue.markets} - set(self.paper.prices)
                if missing:
                    raise ValueError(f"paper.prices has no price for {sorted(missing)} (venue '{name}')")
        return self

    def _check_market_data(self) -> None:
        for venue, symbols in self.market_data.universe.items():
            if venue not in self.venues:
                raise ValueError(f"market_data.universe names unknown venue '{venue}'")
            unknown = sorted(set(symbols) - set(self.venues[venue].markets))
            if unknown:
                raise ValueError(f"market_data.universe.{venue}: not markets of the venue: {unknown}")
        for index, fault in enumerate(self.paper.data_faults):
            if fault.venue not in self.venues or fault.symbol not in self.venues[fault.venue].markets:
                raise ValueError(f"paper.data_faults.{index}: no market {fault.symbol} on venue '{fault.venue}'")

    def deposit_addresses(self) -> dict[tuple[str, str, str], str]:
        """Every configured deposit address as (venue, asset, network) -> address."""
        return {
            (venue, asset, network): address
            for venue, config in self.venues.items()
            for asset, networks in config.deposit_addresses.items()
            for network, address in networks.items()
        }

    def cash_assets(self) -> frozenset[str]:
        """Assets the emergency stop keeps: every quote asset of a configured market, plus
        ``stop_loss.cash_assets`` (so a venue's fiat account is cash even where it quotes nothing)."""
        quotes = {parse_symbol(m)[1] for config in self.venues.values() for m in config.markets}
        return frozenset(quotes | set(self.stop_loss.cash_assets))

    def venue(self, name: str) -> VenueConfig:
        try:
            return self.venues[name]
        except KeyError:
            raise ConfigError(f"venues.{name}", f"no such venue; known: {sorted(self.venues)}") from None


def default_config_path() -> Path:
    return Path(os.environ.get("TRADEOPS_CONFIG", PROJECT_ROOT / "config" / "tradeops.yaml"))


def _match_key(node: dict[str, Any], part: str) -> str:
    """The existing key ``part`` names, ignoring case (``usdt`` finds ``USDT``), else ``part``."""
    for key in node:
        if str(key).lower() == part:
            return str(key)
    return part


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            raise ConfigError(name, "malformed override name; use TRADEOPS__SECTION__KEY")
        node = data
        for part in path[:-1]:
            child = node.setdefault(_match_key(node, part), {})
            if not isinstance(child, dict):
                raise ConfigError(".".join(path), f"'{part}' is not a section")
            node = child
        node[_match_key(node, path[-1])] = yaml.safe_load(raw) if raw.strip() else raw
    return data


def _key_of(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "<root>"


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, override and validate the configuration; raise ``ConfigError`` naming the bad key."""
    path = path or default_config_path()
    env = os.environ if env is None else env
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError("TRADEOPS_CONFIG", f"file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "top level must be a mapping")
    data = _apply_env_overrides(data, env)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise ConfigError(_key_of(first), message) from None


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings (loaded once, on first use; never at DAG parse time)."""
    return load_settings()
