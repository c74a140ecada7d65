"""The funding-rate hedge: short perps against the spot held across venues, where funding pays most.

Each stage returns a JSON-safe value, so the stages can run as separate Airflow tasks:

1. ``tradeops.funding_snapshot.snapshot_funding`` reads every crypto venue once: funding rates
   (normalised to one period), marks, perp positions and spot holdings. A venue that fails is
   recorded as unavailable and the others carry on: no single venue blocks the hedge. The
   symbols an unavailable venue may hold (it lists the perp, or trades its base asset in any
   market) are frozen for the round: their spot and positions there are unknown, so no hedge
   change is planned for them.
2. ``plan_hedge`` turns a snapshot into target positions and the order legs that reach them.
   ``HedgePlan.to_saga_steps`` gives the parameters of ``tradeops.position_steps.set_perp_position``:
   each leg carries the *target* position of its venue, and the step orders the difference to the
   live position when it runs (a second run or a retry never doubles the hedge); its undo
   ``undo_set_perp_position`` trades back what the step's order filled.
3. ``verify_hedge`` compares a later snapshot with the positions the plan expected.

``tradeops.funding_events`` builds the funding-rate-deviation events the hedge publishes.

Allocation rule, per symbol
---------------------------
The target net perp position is ``-(hedge_ratio x spot base held on every available venue)``.
Venues are ranked by normalised funding rate, highest first (a short receives positive funding),
ties by venue name. An existing short stays where it is while its venue's rate is within
``keep_within_bps`` (default 1 bp per period) of the best: kept shorts count towards the target in
rank order, whatever is still missing goes to the best venue, and every other position is closed.
Why 1 bp: moving a short costs two taker fees (about 10 bps of its notional, once); a funding gap
of 1 bp per 8 h pays that back only after about three days, and gaps that small come and go with
the market. Chasing them would churn; a gap above that pays a move back within days.

Trading state
-------------
While the state is REDUCING or HALTED no exposure may be added, so every existing short is kept
wherever it is (moving it would close one venue's short without being able to open the other's,
leaving the spot unhedged) and only legs that shrink a position are planned; the others are listed
as skipped with the reason. Reductions are reduce-only orders, which the guard admits even while
HALTED.

Legs and limits
---------------
A position that must change sign becomes two legs: a reduce-only close, then an open. A leg
smaller than ``hedge.min_adjustment[base]`` is skipped (dust). A leg whose notional exceeds
``hedge.max_adjustment_notional`` is refused, never trimmed, and every other leg of that symbol is
refused with it (half of a move would unhedge the spot): a human decides.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, TypeVar, cast

from tradeops.conditions import BPS
from tradeops.config import HedgeConfig, Settings
from tradeops.funding_snapshot import (
    PARSERS,
    FundingSnapshot,
    PerpQuote,
    VenueFailure,
    parse_record,
    venue_scope,
)
from tradeops.model import Side, parse_symbol, to_jsonable
from tradeops.risk import TradingState

log = logging.getLogger(__name__)

ZERO = Decimal(0)
KEEP_WITHIN_BPS = Decimal(1)
# Lease names: one per symbol, so the cron and the event hedge never act on one symbol at once.
HEDGE_LEASE_PREFIX = "hedge:"
# The saga step each hedge leg runs (a string: DAG files must not import venue code to parse).
HEDGE_ACTION = "tradeops.position_steps.set_perp_position"

R = TypeVar("R")


def _text(value: Decimal) -> str:
    """A plain decimal string without exponent or trailing zeros (``4``, ``0.25``)."""
    return "0" if value == 0 else format(value.normalize(), "f")


def _bps(rate: Decimal) -> str:
    return f"{(rate * BPS).quantize(Decimal('0.01'))} bps"


class AdjustmentStatus(enum.StrEnum):
    PLANNED = "planned"
    SKIPPED = "skipped"
    REFUSED = "refused"


_PARSERS: dict[str, Callable[[Any], Any]] = {**PARSERS, "Side": Side, "AdjustmentStatus": AdjustmentStatus}


def _record(cls: type[R], data: Mapping[str, Any]) -> R:
    return parse_record(cls, data, _PARSERS)


# -- plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Adjustment:
    """One order leg moving a venue's position from ``before`` to ``after`` (never across zero)."""

    venue: str
    symbol: str
    side: Side
    amount: Decimal
    before: Decimal
    after: Decimal
    mark_price: Decimal
    reduce_only: bool
    status: AdjustmentStatus = AdjustmentStatus.PLANNED
    reason: str = ""

    @property
    def notional(self) -> Decimal:
        return self.amount * self.mark_price

    def to_step(self) -> dict[str, Any]:
        """Parameters of ``HEDGE_ACTION``: the position this leg ends at, not the delta."""
        return {"venue": self.venue, "symbol": self.symbol, "target": _text(self.after)}


@dataclass(frozen=True, kw_only=True)
class VenueTarget:
    """One venue's position: now, wanted, and after the planned legs (skipped/refused legs differ)."""

    venue: str
    symbol: str
    current: Decimal
    target: Decimal
    expected: Decimal
    tolerance: Decimal


@dataclass(frozen=True, kw_only=True)
class SymbolHedge:
    """The hedge of one symbol: ``target_net = -(hedge_ratio x spot)``."""

    symbol: str
    spot: Decimal
    hedge_ratio: Decimal
    target_net: Decimal
    best_venue: str
    best_rate: Decimal


@dataclass(frozen=True, kw_only=True)
class FrozenSymbol:
    """A hedge symbol left unchanged this round: ``venue`` may hold it but could not be read."""

    symbol: str
    venue: str
    reason: str


def _leg_key(adjustment: Adjustment) -> tuple[int, str, str]:
    return (0 if adjustment.reduce_only else 1, adjustment.venue, adjustment.symbol)


@dataclass(frozen=True, kw_only=True)
class HedgePlan:
    """Targets and order legs; ``to_saga_steps`` lists the planned legs, reductions first."""

    trading_state: TradingState
    period_hours: int
    hedges: tuple[SymbolHedge, ...] = ()
    positions: tuple[VenueTarget, ...] = ()
    adjustments: tuple[Adjustment, ...] = ()
    notes: tuple[str, ...] = ()
    unavailable: tuple[VenueFailure, ...] = ()
    frozen: tuple[FrozenSymbol, ...] = ()

    def with_status(self, status: AdjustmentStatus) -> list[Adjustment]:
        return [adjustment for adjustment in self.adjustments if adjustment.status is status]

    def to_saga_steps(self) -> list[dict[str, Any]]:
        """``HEDGE_ACTION`` parameters: reductions first, then increases, each by venue and symbol."""
        return [leg.to_step() for leg in sorted(self.with_status(AdjustmentStatus.PLANNED), key=_leg_key)]

    def explain(self) -> str:
        return "\n".join(_explain_lines(self))

    def to_dict(self) -> dict[str, Any]:
        return cast(dict[str, Any], to_jsonable(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HedgePlan:
        return cls(
            trading_state=TradingState(data["trading_state"]),
            period_hours=int(data["period_hours"]),
            hedges=tuple(_record(SymbolHedge, item) for item in data["hedges"]),
            positions=tuple(_record(VenueTarget, item) for item in data["positions"]),
            adjustments=tuple(_record(Adjustment, item) for item in data["adjustments"]),
            notes=tuple(str(note) for note in data["notes"]),
            unavailable=tuple(_record(VenueFailure, item) for item in data["unavailable"]),
            frozen=tuple(_record(FrozenSymbol, item) for item in data["frozen"]),
        )


def hedge_lease_names(symbols: Iterable[str]) -> list[str]:
    """The lease of each symbol (``hedge:BTC/USDT:USDT``), in the order every run takes them."""
    return sorted(f"{HEDGE_LEASE_PREFIX}{symbol}" for symbol in set(symbols))


def hedge_symbols(named: Iterable[str], settings: Settings) -> list[str]:
    """The configured hedge symbols among ``named`` (e.g. the symbols of funding-rate events)."""
    return sorted(set(named) & set(settings.hedge.symbols))


def _chosen_symbols(snapshot: FundingSnapshot, settings: Settings, symbols: Sequence[str] | None) -> list[str]:
    named = set(snapshot.symbols if symbols is None else symbols)
    chosen = hedge_symbols(named, settings)
    missing = [symbol for symbol in chosen if symbol not in snapshot.symbols]
    if missing:
        raise ValueError(f"symbols {missing} are not in the snapshot (taken for {list(snapshot.symbols)})")
    bases = [parse_symbol(symbol)[0] for symbol in chosen]
    shared = sorted({base for base in bases if bases.count(base) > 1})
    if shared:
        raise ValueError(f"hedge symbols share base assets {shared}: the same spot would be hedged twice")
    return chosen


def _allocate(ranked: Sequence[PerpQuote], need: Decimal, keep_within: Decimal | None) -> dict[str, Decimal]:
    """Target position per venue; ``keep_within`` None keeps every existing short (no moves)."""
    best = ranked[0]
    remaining = need
    targets: dict[str, Decimal] = {}
    for quote in ranked:
        keep = ZERO
        near_best = keep_within is None or best.normalised_rate - quote.normalised_rate <= keep_within
        if quote.position < 0 and near_best:
            keep = min(-quote.position, remaining)
        targets[quote.venue] = -keep
        remaining -= keep
    targets[best.venue] -= remaining
    return targets


def _leg(quote: PerpQuote, before: Decimal, after: Decimal) -> Adjustment:
    delta = after - before
    return Adjustment(
        venue=quote.venue,
        symbol=quote.symbol,
        side=Side.BUY if delta > 0 else Side.SELL,
        amount=abs(delta),
        before=before,
        after=after,
        mark_price=quote.mark_price,
        reduce_only=abs(after) < abs(before),
    )


def _legs(quote: PerpQuote, target: Decimal) -> list[Adjustment]:
    """The legs from the current position to ``target``: a sign change is a close plus an open."""
    current = quote.position
    if target == current:
        return []
    if current != 0 and target != 0 and (current > 0) != (target > 0):
        return [_leg(quote, current, ZERO), _leg(quote, ZERO, target)]
    return [_leg(quote, current, target)]


def _judge_leg(leg: Adjustment, hedge: HedgeConfig, tolerance: Decimal, state: TradingState) -> Adjustment:
    if leg.amount < tolerance:
        return replace(leg, status=AdjustmentStatus.SKIPPED, reason=f"below min_adjustment {_text(tolerance)}")
    if not leg.reduce_only and state is not TradingState.ACTIVE:
        reason = f"trading state {state.value}: adds exposure, only reductions are planned"
        return replace(leg, status=AdjustmentStatus.SKIPPED, reason=reason)
    limit = hedge.max_adjustment_notional
    if leg.notional > limit:
        reason = (
            f"notional {_text(leg.notional)} exceeds max_adjustment_notional {_text(limit)}; "
            "not trimmed: a human must split it or raise the limit"
        )
        return replace(leg, status=AdjustmentStatus.REFUSED, reason=reason)
    return leg


def _judge(legs: list[Adjustment], hedge: HedgeConfig, tolerance: Decimal, state: TradingState) -> list[Adjustment]:
    """Apply the limits; one refused leg refuses every planned leg of the symbol."""
    judged = [_judge_leg(leg, hedge, tolerance, state) for leg in legs]
    refused = [leg for leg in judged if leg.status is AdjustmentStatus.REFUSED]
    if not refused:
        return judged
    reason = f"refused with the {refused[0].venue} leg (a partial hedge move would unhedge the spot)"
    return [
        replace(leg, status=AdjustmentStatus.REFUSED, reason=reason) if leg.status is AdjustmentStatus.PLANNED else leg
        for leg in judged
    ]


def _expected(quote: PerpQuote, legs: Iterable[Adjustment]) -> Decimal:
    planned = (leg for leg in legs if leg.venue == quote.venue and leg.status is AdjustmentStatus.PLANNED)
    return quote.position + sum((leg.after - leg.before for leg in planned), ZERO)


def _plan_symbol(
    snapshot: FundingSnapshot,
    hedge: HedgeConfig,
    state: TradingState,
    symbol: str,
    keep_within: Decimal,
) -> tuple[SymbolHedge, list[VenueTarget], list[Adjustment]]:
    base = parse_symbol(symbol)[0]
    tolerance = hedge.min_adjustment.get(base, ZERO)
    spot = snapshot.spot_total(base)
    ranked = sorted(snapshot.quotes(symbol), key=lambda quote: (-quote.normalised_rate, quote.venue))
    targets = _allocate(ranked, hedge.hedge_ratio * spot, keep_within if state is TradingState.ACTIVE else None)
    legs = _judge([leg for q in ranked for leg in _legs(q, targets[q.venue])], hedge, tolerance, state)
    venue_targets = [
        VenueTarget(
            venue=q.venue,
            symbol=symbol,
            current=q.position,
            target=targets[q.venue],
            expected=_expected(q, legs),
            tolerance=tolerance,
        )
        for q in sorted(ranked, key=lambda quote: quote.venue)
    ]
    summary = SymbolHedge(
        symbol=symbol,
        spot=spot,
        hedge_ratio=hedge.hedge_ratio,
        target_net=-(hedge.hedge_ratio * spot),
        best_venue=ranked[0].venue,
        best_rate=ranked[0].normalised_rate,
    )
    return summary, venue_targets, legs


def frozen_symbols(snapshot: FundingSnapshot, settings: Settings, symbols: Iterable[str]) -> list[FrozenSymbol]:
    """The symbols among ``symbols`` an unavailable venue may hold: it lists the perp or trades
    its base asset in any market (its configured markets), so its spot or short is unknown."""
    frozen: list[FrozenSymbol] = []
    for failure in snapshot.unavailable:
        listed, assets = venue_scope(settings.venue(failure.venue), sorted(symbols))
        for symbol in sorted(symbols):
            if symbol in listed or parse_symbol(symbol)[0] in assets:
                reason = (
                    f"{failure.venue} unavailable ({failure.error}: {failure.message}) and may hold it: "
                    "no hedge change this round"
                )
                frozen.append(FrozenSymbol(symbol=symbol, venue=failure.venue, reason=reason))
    return frozen


def _general_notes(snapshot: FundingSnapshot, state: TradingState) -> list[str]:
    notes = [f"{failure.venue} unavailable ({failure.error}: {failure.message})" for failure in snapshot.unavailable]
    if state is not TradingState.ACTIVE:
        notes.append(
            f"trading state {state.value}: no exposure is added and no position moves between venues; "
            "only reductions are planned"
        )
    return notes


def plan_hedge(
    snapshot: FundingSnapshot,
    settings: Settings,
    trading_state: TradingState,
    symbols: Sequence[str] | None = None,
    *,
    keep_within_bps: Decimal = KEEP_WITHIN_BPS,
) -> HedgePlan:
    """Targets and legs for the configured hedge symbols among ``symbols`` (default: the snapshot's).

    See the module docstring for the allocation rule and the limits.
    """
    trading_state = TradingState(trading_state)  # an XCom may carry the state as its string value
    notes = _general_notes(snapshot, trading_state)
    named = snapshot.symbols if symbols is None else symbols
    ignored = sorted(set(named) - set(settings.hedge.symbols))
    notes.extend(f"{symbol} is not a hedge symbol (hedge.symbols); ignored" for symbol in ignored)
    hedges: list[SymbolHedge] = []
    positions: list[VenueTarget] = []
    adjustments: list[Adjustment] = []
    chosen = _chosen_symbols(snapshot, settings, symbols)
    frozen = frozen_symbols(snapshot, settings, chosen)
    for item in frozen:
        log.warning("hedge plan: %s frozen: %s", item.symbol, item.reason)
    for symbol in chosen:
        if any(item.symbol == symbol for item in frozen):
            continue
        if not snapshot.quotes(symbol):
            notes.append(f"{symbol}: no available venue lists it; nothing planned")
            continue
        summary, venue_targets, legs = _plan_symbol(
            snapshot, settings.hedge, trading_state, symbol, keep_within_bps / BPS
        )
        hedges.append(summary)
        positions.extend(venue_targets)
        adjustments.extend(legs)
    return HedgePlan(
        trading_state=trading_state,
        period_hours=snapshot.period_hours,
        hedges=tuple(hedges),
        positions=tuple(positions),
        adjustments=tuple(sorted(adjustments, key=_leg_key)),
        notes=tuple(notes),
        unavailable=snapshot.unavailable,
        frozen=tuple(frozen),
    )


def _explain_lines(plan: HedgePlan) -> list[str]:
    lines = [f"Funding-rate hedge plan (trading state {plan.trading_state.value}, rates per {plan.period_hours} h)"]
    lines.extend(f"note: {note}" for note in plan.notes)
    lines.extend(f"FROZEN {item.symbol}: {item.reason}" for item in plan.frozen)
    for hedge in plan.hedges:
        base = parse_symbol(hedge.symbol)[0]
        lines.append(
            f"{hedge.symbol}: spot {_text(hedge.spot)} {base} x {_text(hedge.hedge_ratio)} -> net target "
            f"{_text(hedge.target_net)}; best funding {hedge.best_venue} ({_bps(hedge.best_rate)})"
        )
        lines.extend(
            f"  {t.venue}: {_text(t.current)} -> target {_text(t.target)} (expected {_text(t.expected)})"
            for t in plan.positions
            if t.symbol == hedge.symbol
        )
        lines.extend(_leg_line(leg) for leg in plan.adjustments if leg.symbol == hedge.symbol)
    if not plan.with_status(AdjustmentStatus.PLANNED):
        lines.append("nothing to place")
    return lines


def _leg_line(leg: Adjustment) -> str:
    flag = " reduce-only" if leg.reduce_only else ""
    reason = f": {leg.reason}" if leg.reason else ""
    return (
        f"  {leg.status.value.upper()} {leg.venue} {leg.side.value} {_text(leg.amount)}{flag} "
        f"(notional {_text(leg.notional.quantize(Decimal('0.01')))}){reason}"
    )


# -- verification -------------------------------------------------------------------------------


def verify_hedge(snapshot_after: FundingSnapshot, plan: HedgePlan) -> list[str]:
    """Problems after execution: positions not where the planned legs should have put them.

    Each venue's position must equal its expected position within the symbol's min_adjustment.
    Gaps the plan left on purpose (skipped or refused legs) are in ``plan.explain()``, not here.
    """
    problems: list[str] = []
    for target in plan.positions:
        problem = _position_problem(snapshot_after, target)
        if problem:
            problems.append(problem)
    return problems


def _position_problem(snapshot: FundingSnapshot, target: VenueTarget) -> str | None:
    label = f"{target.venue} {target.symbol}"
    failure = snapshot.failure(target.venue)
    if failure is not None:
        return f"{label}: cannot verify, venue unavailable ({failure.error}: {failure.message})"
    quote = snapshot.quote(target.venue, target.symbol)
    if quote is None:
        return f"{label}: not in the snapshot"
    if abs(quote.position - target.expected) > target.tolerance:
        return (
            f"{label}: position {_text(quote.position)}, expected {_text(target.expected)} "
            f"(target {_text(target.target)}, tolerance {_text(target.tolerance)})"
        )
    return None


__all__ = [
    "HEDGE_ACTION",
    "HEDGE_LEASE_PREFIX",
    "KEEP_WITHIN_BPS",
    "Adjustment",
    "AdjustmentStatus",
    "FrozenSymbol",
    "HedgePlan",
    "SymbolHedge",
    "VenueTarget",
    "frozen_symbols",
    "hedge_lease_names",
    "hedge_symbols",
    "plan_hedge",
    "verify_hedge",
]
