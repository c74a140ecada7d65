"""Versioned event schemas carried over Kafka, and the one way to parse them.

Every event shares an envelope (``event_id``, ``event_type``, ``schema_version``, ``occurred_at``,
``source``) and adds its own fields. Money, rates and percentages are ``Decimal`` (JSON strings on
the wire); datetimes are timezone-aware. Models are frozen and reject unknown fields, and
``parse_event`` turns every problem into ``EventValidationError`` naming the offending field as a
dotted path (``rates.0.interval_hours``), ``<json>`` for unreadable input and ``event_type`` for an
unknown type.

Bump ``SCHEMA_VERSION`` (and accept the old one explicitly) when a change is not backwards compatible.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from tradeops.config import KafkaTopics, settings
from tradeops.errors import EventValidationError
from tradeops.model import MarketKind, parse_symbol

SCHEMA_VERSION = 1
# How far ahead of our clock ``occurred_at`` may be (clock skew between producers).
MAX_CLOCK_SKEW = timedelta(minutes=5)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Asset = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z0-9]{1,16}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
# What a news source files headlines under: a ticker or a coin (TSLA, IWM, BTC, BRK.B).
NewsSymbol = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,15}$")]


def _new_event_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


class EventBase(BaseModel):
    """The envelope shared by every event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(default_factory=_new_event_id, description="unique id (UUID), for de-duplication")
    event_type: str
    schema_version: int = SCHEMA_VERSION
    occurred_at: AwareDatetime = Field(default_factory=_now)
    source: Name = "tradeops"

    @field_validator("event_id")
    @classmethod
    def _event_id_is_uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be a UUID string") from None

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema version {value}; this build reads version {SCHEMA_VERSION}")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime) -> datetime:
        value = value.astimezone(UTC)
        if value > _now() + MAX_CLOCK_SKEW:
            raise ValueError(f"lies in the future (more than {MAX_CLOCK_SKEW.total_seconds():.0f}s ahead of now)")
        return value


def _check_symbol(value: str, *, perp: bool = False) -> str:
    try:
        kind = parse_symbol(value)[2]
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if perp and kind is not MarketKind.PERP:
        raise ValueError(f"'{value}' is not a perpetual market (funding rates exist only on BASE/QUOTE:QUOTE)")
    return value


class MarketShock(EventBase):
    """A price moved ``move_pct`` percent (signed) within ``window_seconds``."""

    event_type: Literal["market_shock"] = "market_shock"
    symbol: Name
    venue: Name | None = None
    move_pct: Decimal = Field(ge=-100, le=100, description="signed percent move, e.g. -7.5")
    window_seconds: int = Field(gt=0, le=86_400)
    price: Decimal = Field(gt=0, description="price after the move")

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        return _check_symbol(value)


class CapitalThreshold(EventBase):
    """A venue balance of ``asset`` is at ``balance`` against its configured ``floor``."""

    event_type: Literal["capital_threshold"] = "capital_threshold"
    venue: Name
    asset: Asset
    balance: Decimal = Field(ge=0)
    floor: Decimal = Field(ge=0)


class VenueFundingRate(BaseModel):
    """One venue's funding rate per ``interval_hours`` (a fraction: 0.0001 = 1 bp per interval)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    venue: Name
    rate: Decimal = Field(ge=Decimal("-0.1"), le=Decimal("0.1"))
    interval_hours: int = Field(gt=0, le=24)


class FundingRateDeviation(EventBase):
    """Funding rates of ``symbol`` differ across venues by ``deviation_bps`` (normalised)."""

    event_type: Literal["funding_rate_deviation"] = "funding_rate_deviation"
    symbol: Name
    rates: tuple[VenueFundingRate, ...] = Field(min_length=2)
    deviation_bps: Decimal = Field(gt=0, le=10_000)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        return _check_symbol(value, perp=True)

    @field_validator("rates")
    @classmethod
    def _distinct_venues(cls, value: tuple[VenueFundingRate, ...]) -> tuple[VenueFundingRate, ...]:
        venues = [rate.venue for rate in value]
        duplicates = sorted({venue for venue in venues if venues.count(venue) > 1})
        if duplicates:
            raise ValueError(f"venue listed more than once: {duplicates}")
        return value


class CriticalAlert(EventBase):
    """Something needs the emergency path now (halt trading, call a human)."""

    event_type: Literal["critical_alert"] = "critical_alert"
    severity: Literal["critical"] = "critical"
    reason: Text
    scope: Name | None = Field(default=None, description="what is affected: a venue, a symbol, 'global'")


class AssetExposureState(BaseModel):
    """One base asset: spot + perp = net, in base units and in ``quote`` (None: no price here).
    ``flat``: the spot leg is within ``dust`` and the perp leg is zero (desk-wide: |net| <= dust)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    asset: Asset
    quote: Asset | None = None
    spot: Decimal
    perp: Decimal
    net: Decimal
    net_quote: Decimal | None = None
    dust: Decimal = Field(default=Decimal(0), ge=0)
    flat: bool


class VenueFlatState(BaseModel):
    """How one venue stands in an emergency stop. ``status``: ``flat``; ``pending_open`` (only
    equity exit orders waiting for the next regular session are left: not flat); ``not_flat``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    venue: Name
    flat: bool
    status: Literal["flat", "not_flat", "pending_open"] | None = None
    rounds: int = Field(default=0, ge=0)
    orders_canceled: int = Field(ge=0)
    positions_closed: int = Field(ge=0)
    open_positions: int = Field(ge=0)
    open_orders: int = Field(ge=0)
    exposures: tuple[AssetExposureState, ...] = ()
    pending_open: tuple[Name, ...] = ()
    unsellable: tuple[Asset, ...] = ()
    error: Text | None = None


class StopLossReport(EventBase):
    """The state of an emergency stop, published to ``risk-alerts`` (informational: it never
    triggers another stop). ``stage``: ``first`` is sent within seconds of the start (what is flat,
    what is not yet), ``final`` when the stop ended. ``net_exposure`` adds up every venue."""

    event_type: Literal["stop_loss_report"] = "stop_loss_report"
    stage: Literal["first", "final"] = "final"
    trading_state: Literal["ACTIVE", "REDUCING", "HALTED"]
    trigger_event_ids: tuple[str, ...] = ()
    venues: tuple[VenueFlatState, ...] = Field(min_length=1)
    net_exposure: tuple[AssetExposureState, ...] = ()
    all_flat: bool
    run_id: str | None = Field(default=None, max_length=250)


class DataAlert(EventBase):
    """Market data or features need a look: drift, stale or missing data, a late pipeline.

    Published to ``data-alerts``, never to ``risk-alerts``: no watcher starts a trade or a stop on
    it (drift must not flatten the book). ``level`` says how urgent: critical (a person today),
    warning (watch it), info (for the record)."""

    event_type: Literal["data_alert"] = "data_alert"
    level: Literal["critical", "warning", "info"]
    check: Literal["feature_drift", "freshness", "validation", "deadline"]
    scope: Name = Field(description="what it is about: a calendar group, 'venue symbol', a DAG")
    message: Text
    features: tuple[Name, ...] = Field(default=(), max_length=64)
    report: Annotated[str, StringConstraints(max_length=1000)] | None = Field(
        default=None, description="where the full report is (object-store URL)"
    )


class ModelDeployment(EventBase):
    """A model deployment moved: a canary stage passed, the rollout finished, held or rolled back.

    Published to ``model-events`` for people and dashboards; no watcher trades on it. A rollback
    has already happened when this is sent (routing is back on the champion)."""

    event_type: Literal["model_deployment"] = "model_deployment"
    status: Literal["started", "stage_passed", "finalized", "held", "rolled_back"]
    model: Name
    version: Name
    champion: Name | None = None
    stage: int | None = Field(default=None, ge=0, le=100)
    instruments: int | None = Field(default=None, ge=0)
    reason: Text


class NewsHeadline(EventBase):
    """A news headline about ``symbol`` (a news symbol: TSLA, IWM, BTC), published at ``published_at``.

    Published to ``market-news`` (keyed by ``symbol``, the Kafka timestamp set to ``published_at``)
    for the trading agents, which read a time window of it; no watcher acts on it. The envelope's
    ``source`` says who published the headline (``paper-feed``, a wire service); ``headline_id`` is
    that publisher's own id, and readers keep one headline per id, so publishing one again is
    harmless. ``tradeops.agents.news`` derives ``event_id`` from ``headline_id``."""

    event_type: Literal["news_headline"] = "news_headline"
    headline_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    symbol: NewsSymbol
    title: Text
    published_at: AwareDatetime

    @field_validator("published_at")
    @classmethod
    def _published_not_in_future(cls, value: datetime) -> datetime:
        value = value.astimezone(UTC)
        if value > _now() + MAX_CLOCK_SKEW:
            raise ValueError(f"lies in the future (more than {MAX_CLOCK_SKEW.total_seconds():.0f}s ahead of now)")
        return value


Event = (
    MarketShock
    | CapitalThreshold
    | FundingRateDeviation
    | CriticalAlert
    | StopLossReport
    | DataAlert
    | ModelDeployment
    | NewsHeadline
)


@dataclass(frozen=True)
class EventSpec:
    model: type[EventBase]
    topic_attr: str  # attribute name of ``KafkaTopics``
    example: dict[str, Any]  # the fields a publisher gives (envelope defaults left out)


REGISTRY: dict[str, EventSpec] = {
    "market_shock": EventSpec(
        MarketShock,
        "market_events",
        {
            "symbol": "BTC/USDT",
            "venue": "binance",
            "move_pct": "-7.5",
            "window_seconds": 300,
            "price": "60125.5",
        },
    ),
    "capital_threshold": EventSpec(
        CapitalThreshold,
        "capital_events",
        {"venue": "bybit", "asset": "USDT", "balance": "61000", "floor": "75000"},
    ),
    "funding_rate_deviation": EventSpec(
        FundingRateDeviation,
        "funding_rate_events",
        {
            "symbol": "BTC/USDT:USDT",
            "deviation_bps": "25",
            "rates": [
                {"venue": "binance", "rate": "0.0001", "interval_hours": 8},
                {"venue": "bybit", "rate": "0.0004", "interval_hours": 4},
            ],
        },
    ),
    "critical_alert": EventSpec(
        CriticalAlert,
        "risk_alerts",
        {"severity": "critical", "reason": "exchange API keys revoked", "scope": "okx"},
    ),
    "data_alert": EventSpec(
        DataAlert,
        "data_alerts",
        {
            "level": "warning",
            "check": "feature_drift",
            "scope": "24/7",
            "message": "rv_30 drifted: psi 0.35 > 0.3, ks q=1e-6, 3 consecutive windows",
            "features": ["rv_30"],
        },
    ),
    "model_deployment": EventSpec(
        ModelDeployment,
        "model_events",
        {
            "status": "rolled_back",
            "model": "tradeops_direction",
            "version": "7",
            "champion": "6",
            "stage": 1,
            "instruments": 1,
            "reason": "canary stage 1: error rate 3.1% > 1.0% (4 of 130)",
        },
    ),
    "news_headline": EventSpec(
        NewsHeadline,
        "market_news",
        {
            "headline_id": "wire-20260105-1430-tsla-1",
            "symbol": "TSLA",
            "title": "Tesla beats delivery estimates and raises guidance",
            "published_at": "2026-01-05T14:30:00Z",
            "source": "newswire",
        },
    ),
    "stop_loss_report": EventSpec(
        StopLossReport,
        "risk_alerts",
        {
            "stage": "final",
            "trading_state": "HALTED",
            "all_flat": True,
            "venues": [
                {
                    "venue": "binance",
                    "flat": True,
                    "status": "flat",
                    "orders_canceled": 1,
                    "positions_closed": 2,
                    "open_positions": 0,
                    "open_orders": 0,
                }
            ],
        },
    ),
}


def event_type_name(name: str) -> str:
    """The event type for a CLI name (``market-shock`` -> ``market_shock``); raise if unknown."""
    event_type = name.strip().replace("-", "_")
    if event_type not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise EventValidationError("event_type", f"unknown event type '{name}'; known: {known}")
    return event_type


def cli_name(event_type: str) -> str:
    return event_type.replace("_", "-")


def topic_for(event_type: str, topics: KafkaTopics | None = None) -> str:
    """The topic carrying ``event_type`` (hyphenated names accepted)."""
    topics = topics or settings().kafka.topics
    return str(getattr(topics, REGISTRY[event_type_name(event_type)].topic_attr))


def partition_key(event: EventBase) -> str | None:
    """The ordering key: events about one symbol (else one venue, else one scope, else one model)
    stay in order."""
    for attribute in ("symbol", "venue", "scope", "model"):
        value = getattr(event, attribute, None)
        if value:
            return str(value)
    return None


def _field_path(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "<root>"


def _reason(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _decode(raw: bytes | str | Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
    """The event as a mapping, plus the JSON text when it came as text."""
    if isinstance(raw, Mapping):
        return raw, None
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventValidationError("<json>", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventValidationError("<json>", f"expected a JSON object, got {type(data).__name__}")
    return data, text


def parse_event(raw: bytes | str | Mapping[str, Any]) -> Event:
    """Validate an event; raise ``EventValidationError`` naming the first offending field."""
    data, text = _decode(raw)
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or event_type not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise EventValidationError("event_type", f"unknown or missing event type {event_type!r}; known: {known}")
    model = REGISTRY[event_type].model
    try:
        event = model.model_validate_json(text) if text is not None else model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "<json>" if first["type"] == "json_invalid" else _field_path(first)
        raise EventValidationError(field, _reason(first)) from None
    return cast(Event, event)


def build_event(event_type: str, fields: Mapping[str, Any]) -> Event:
    """An event of ``event_type`` (CLI name accepted) from its fields; envelope defaults filled in."""
    event_type = event_type_name(event_type)
    given = fields.get("event_type")
    if given is not None and given != event_type:
        raise EventValidationError("event_type", f"'{given}' contradicts the requested type '{event_type}'")
    return parse_event({**fields, "event_type": event_type})


def to_json(event: EventBase) -> str:
    """The wire form: compact JSON, decimals as strings, ISO-8601 datetimes."""
    return event.model_dump_json()
