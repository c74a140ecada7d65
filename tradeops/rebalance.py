"""Rebalancing capital across venues: the cheapest plan of transfers that reaches the targets.

Per asset of ``rebalance.targets``: each venue's target is its weight times the asset's total
over those venues; a venue is fine within ``tolerance_pct`` of that total around its target.
When a venue is outside, ``plan_rebalance`` finds the cheapest set of transfers bringing every
venue inside, exactly (``tradeops.rebalance_milp``): on-chain withdrawals at each network's fee
and Wise legs between fiat accounts at quoted fees, the receiver getting ``amount - fee``.

Rules the plan keeps:
- venues already within tolerance are left alone, unless the others cannot be fixed without
  them (the plan then says so in ``notes``);
- no transfer smaller than ``min_transfer[asset]``; every transfer is funded from the sender's
  balance at planning time, so the saga steps may run in any order; transfers never form a
  cycle (no money going round, no there-and-back between two venues);
- among equally cheap plans: fewest transfers, then receivers on target (senders pay the fees),
  then least money in flight, then the first arcs in (sender, receiver, network) order.

``to_saga_steps`` turns a plan into saga step parameters; ``verify_rebalance`` checks the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from tradeops.config import Settings
from tradeops.errors import TradeopsError
from tradeops.model import to_jsonable
from tradeops.rebalance_graph import Arc, FeeLine, build_arcs, fit_fee_line
from tradeops.wise import WISE_NETWORK, FiatQuoter, wise_quoter

if TYPE_CHECKING:
    from tradeops.rebalance_milp import FlowProblem

ZERO = Decimal(0)
HUNDRED = Decimal(100)
FIAT_QUANTUM = Decimal("0.01")
# Runs every leg of a plan: fiat legs through Wise, the others through ``actions.withdraw``.
TRANSFER_ACTION = "tradeops.saga.actions.rebalance_transfer"

Balances = Mapping[str, Mapping[str, Decimal]]


class RebalanceError(TradeopsError):
    """No plan reaches the targets (no route, amounts below ``min_transfer``, fees too high).

    ``asset`` and ``venues`` name what cannot be balanced. What happens next: fix the
    configuration or move funds by hand; retrying the same plan cannot help.
    """

    def __init__(self, asset: str, venues: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.asset = asset
        self.venues = tuple(venues)


@dataclass(frozen=True, kw_only=True)
class PlannedTransfer:
    from_venue: str
    to_venue: str
    asset: str
    network: str  # a withdrawal network, or "wise" for a fiat leg
    amount: Decimal  # sent (debited from the sender)
    fee: Decimal
    received: Decimal
    settle_seconds: int


@dataclass(frozen=True, kw_only=True)
class Allocation:
    venue: str
    asset: str
    before: Decimal
    target: Decimal
    after: Decimal


@dataclass(frozen=True, kw_only=True)
class RebalancePlan:
    transfers: tuple[PlannedTransfer, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    tolerance_pct: Decimal = ZERO
    notes: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.transfers

    @property
    def total_fees(self) -> dict[str, Decimal]:
        """Fees per asset (fees in different assets do not add up)."""
        fees: dict[str, Decimal] = {}
        for transfer in self.transfers:
            fees[transfer.asset] = fees.get(transfer.asset, ZERO) + transfer.fee
        return fees

    def _column(self, name: str) -> dict[str, dict[str, Decimal]]:
        table: dict[str, dict[str, Decimal]] = {}
        for a in self.allocations:
            table.setdefault(a.asset, {})[a.venue] = getattr(a, name)
        return table

    def before(self) -> dict[str, dict[str, Decimal]]:
        """asset -> venue -> balance at planning time."""
        return self._column("before")

    def after(self) -> dict[str, dict[str, Decimal]]:
        """asset -> venue -> balance once every transfer has settled."""
        return self._column("after")

    def targets(self) -> dict[str, dict[str, Decimal]]:
        return self._column("target")

    def explain(self) -> str:
        return _explain(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (amounts as strings), e.g. for XCom."""
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RebalancePlan:
        return cls(
            transfers=tuple(_transfer_from_dict(t) for t in data.get("transfers", ())),
            allocations=tuple(_allocation_from_dict(a) for a in data.get("allocations", ())),
            tolerance_pct=Decimal(str(data.get("tolerance_pct", "0"))),
            notes=tuple(data.get("notes", ())),
        )


def _transfer_from_dict(data: Mapping[str, Any]) -> PlannedTransfer:
    return PlannedTransfer(
        **{k: data[k] for k in ("from_venue", "to_venue", "asset", "network")},
        **{k: Decimal(str(data[k])) for k in ("amount", "fee", "received")},
        settle_seconds=int(data["settle_seconds"]),
    )


def _allocation_from_dict(data: Mapping[str, Any]) -> Allocation:
    return Allocation(
        venue=data["venue"],
        asset=data["asset"],
        **{k: Decimal(str(data[k])) for k in ("before", "target", "after")},
    )


# -- planning ---------------------------------------------------------------------------------


@dataclass
class _Quotes:
    """The quoter, created only when a fiat leg needs pricing."""

    settings: Settings
    quoter: FiatQuoter | None
    lines: dict[str, FeeLine] = field(default_factory=dict)

    def get(self) -> FiatQuoter:
        if self.quoter is None:
            self.quoter = wise_quoter(self.settings)
        return self.quoter

    def line(self, currency: str, low: Decimal, high: Decimal) -> FeeLine:
        if currency not in self.lines:
            default_settle = self.settings.wise.paper_settle_seconds
            self.lines[currency] = fit_fee_line(self.get(), currency, low, high, default_settle)
        return self.lines[currency]


@dataclass(frozen=True, kw_only=True)
class _AssetPlan:
    transfers: list[PlannedTransfer]
    allocations: list[Allocation]
    note: str | None = None


def plan_rebalance(balances: Balances, settings: Settings, quotes: FiatQuoter | None = None) -> RebalancePlan:
    """The cheapest transfers bringing every venue within tolerance of its target, per asset.

    ``balances`` is venue -> asset -> total; missing entries count as zero. ``quotes`` prices
    fiat legs (default: ``wise_quoter(settings)``, asked only when a fiat leg is possible).
    Raises ``RebalanceError`` naming the asset and venues when no plan reaches the targets.
    """
    pricing = _Quotes(settings, quotes)
    parts = [_plan_asset(asset, balances, settings, pricing) for asset in sorted(settings.rebalance.targets)]
    return RebalancePlan(
        transfers=tuple(t for p in parts for t in p.transfers),
        allocations=tuple(a for p in parts for a in p.allocations),
        tolerance_pct=settings.rebalance.tolerance_pct,
        notes=tuple(p.note for p in parts if p.note),
    )


def _balance(balances: Balances, venue: str, asset: str) -> Decimal:
    return Decimal(balances.get(venue, {}).get(asset, ZERO))


def _quantum(settings: Settings, asset: str, total: Decimal) -> Decimal:
    """Amounts are rounded to this: cents for fiat, else the total's 9th significant digit
    (at most a cent, at least 1e-8): well above the solver's float error, below any fee."""
    if asset in settings.rebalance.fiat_accounts.values():
        return FIAT_QUANTUM
    digits = Decimal(1).scaleb(total.adjusted() - 8)
    return min(max(digits, Decimal("1e-8")), FIAT_QUANTUM)


def _plan_asset(asset: str, balances: Balances, settings: Settings, pricing: _Quotes) -> _AssetPlan:
    weights = settings.rebalance.targets[asset]
    before = {v: _balance(balances, v, asset) for v in sorted(weights)}
    total = sum(before.values(), ZERO)
    targets = {v: weights[v] * total for v in before}
    band = settings.rebalance.tolerance_pct / HUNDRED * total
    outside = [v for v in before if abs(before[v] - targets[v]) > band]
    if total <= 0 or not outside:
        return _AssetPlan(transfers=[], allocations=_allocations(asset, before, targets, before))
    quantum = _quantum(settings, asset, total)
    low = max(settings.rebalance.min_transfer.get(asset, ZERO), Decimal(100))
    arcs = build_arcs(settings, asset, before, quantum, lambda: pricing.line(asset, low, max(total, 2 * low)))
    from tradeops.rebalance_milp import FlowProblem, solve_flow  # numpy/scipy: only when planning

    problem = FlowProblem(
        venues=tuple(before),
        before=before,
        targets=targets,
        band=band,
        arcs=tuple(arcs),
        margin_per_arc=3 * quantum,  # rounding the amount, the quoted fee and what arrives
    )
    note = None
    solved = _without_venues(problem, set(before) - set(outside))
    solution = solve_flow(solved)
    if solution is None:
        solved, solution = problem, solve_flow(problem)
        note = f"{asset}: venues within tolerance had to take part: {', '.join(outside)} could not be fixed alone"
    if solution is None:
        raise _unreachable(asset, outside, arcs, before, targets, settings.rebalance.tolerance_pct)
    transfers = [_transfer(solved.arcs[i], amount, quantum, pricing) for i, amount in sorted(solution.items())]
    after = _after(before, transfers)
    _check_inside(asset, after, targets, band)
    return _AssetPlan(transfers=transfers, allocations=_allocations(asset, before, targets, after), note=note)


def _without_venues(problem: FlowProblem, frozen: set[str]) -> FlowProblem:
    arcs = tuple(a for a in problem.arcs if a.source not in frozen and a.target not in frozen)
    return replace(problem, arcs=arcs)


def _transfer(arc: Arc, amount: float, quantum: Decimal, pricing: _Quotes) -> PlannedTransfer:
    rounded = Decimal(repr(amount)).quantize(quantum, ROUND_HALF_EVEN)
    sent = min(max(rounded, arc.min_amount.quantize(quantum)), arc.max_amount)
    if arc.network == WISE_NETWORK:
        quote = pricing.get().quote(arc.asset, arc.asset, sent)
        fee, received = quote.fee, quote.target_amount
    else:
        fee, received = arc.fixed_fee, sent - arc.fixed_fee
    return PlannedTransfer(
        from_venue=arc.source,
        to_venue=arc.target,
        asset=arc.asset,
        network=arc.network,
        amount=sent,
        fee=fee,
        received=received,
        settle_seconds=arc.settle_seconds,
    )


def _after(before: Mapping[str, Decimal], transfers: Iterable[PlannedTransfer]) -> dict[str, Decimal]:
    after = dict(before)
    for t in transfers:
        after[t.from_venue] -= t.amount
        after[t.to_venue] += t.received
    return after


def _allocations(
    asset: str, before: Mapping[str, Decimal], targets: Mapping[str, Decimal], after: Mapping[str, Decimal]
) -> list[Allocation]:
    return [
        Allocation(venue=v, asset=asset, before=before[v], target=targets[v], after=after[v]) for v in sorted(before)
    ]


def _check_inside(asset: str, after: Mapping[str, Decimal], targets: Mapping[str, Decimal], band: Decimal) -> None:
    """The exact result (rounded amounts, re-quoted fiat fees) must be inside the band: the
    solver worked in floats, on a fee line fitted from two quotes."""
    outside = [v for v in sorted(after) if abs(after[v] - targets[v]) > band]
    if outside:
        raise RebalanceError(
            asset, outside, f"{asset}: the exact amounts (rounded, fees re-quoted) leave {outside} outside tolerance"
        )


def _unreachable(
    asset: str,
    outside: Sequence[str],
    arcs: Sequence[Arc],
    before: Mapping[str, Decimal],
    targets: Mapping[str, Decimal],
    tolerance_pct: Decimal,
) -> RebalanceError:
    stuck = []
    for venue in outside:
        if before[venue] < targets[venue] and not any(a.target == venue for a in arcs):
            stuck.append((venue, f"no route brings {asset} to {venue} (it needs funds)"))
        elif before[venue] > targets[venue] and not any(a.source == venue for a in arcs):
            stuck.append((venue, f"no route takes {asset} out of {venue} (it holds too much)"))
    if stuck:
        return RebalanceError(asset, [v for v, _ in stuck], f"{asset}: " + "; ".join(why for _, why in stuck))
    return RebalanceError(
        asset,
        outside,
        f"{asset}: no set of transfers brings {', '.join(outside)} within {tolerance_pct}% of target "
        "(routes, min_transfer, fees or balances do not allow it)",
    )


# -- execution and verification ---------------------------------------------------------------


def to_saga_steps(plan: RebalancePlan) -> list[dict[str, str]]:
    """One step per transfer, in plan order, with ``tradeops.saga.actions.withdraw``'s parameters.

    Run them as ``TRANSFER_ACTION`` steps: it hands on-chain legs to ``withdraw`` and sends fiat
    legs (network ``wise``) through Wise. Every leg is funded from the sender's balance at
    planning time, so the order is free; plan order keeps it deterministic.
    """
    return [
        {
            "venue": t.from_venue,
            "asset": t.asset,
            "amount": str(t.amount),
            "to_venue": t.to_venue,
            "network": t.network,
        }
        for t in plan.transfers
    ]


def verify_rebalance(balances_after: Balances, plan: RebalancePlan, settings: Settings) -> list[str]:
    """Problems found after the transfers (empty: done). Checks every planned venue is within
    tolerance of its target and every receiver holds at least what the plan said it would."""
    problems: list[str] = []
    for asset, allocations in _by_asset(plan.allocations).items():
        total = sum((a.before for a in allocations), ZERO)
        band = settings.rebalance.tolerance_pct / HUNDRED * total
        for a in allocations:
            actual = _balance(balances_after, a.venue, asset)
            if abs(actual - a.target) > band:
                problems.append(
                    f"{a.venue}: {actual} {asset} is {actual - a.target:+} from its target {a.target} "
                    f"(tolerance +-{band}, {settings.rebalance.tolerance_pct}%)"
                )
    problems.extend(_missing_receipts(balances_after, plan))
    return problems


def _by_asset(allocations: Iterable[Allocation]) -> dict[str, list[Allocation]]:
    grouped: dict[str, list[Allocation]] = {}
    for a in allocations:
        grouped.setdefault(a.asset, []).append(a)
    return grouped


def _missing_receipts(balances_after: Balances, plan: RebalancePlan) -> list[str]:
    planned = {(a.venue, a.asset): a.after for a in plan.allocations}
    problems = []
    for venue, asset in sorted({(t.to_venue, t.asset) for t in plan.transfers}):
        actual = _balance(balances_after, venue, asset)
        expected = planned[(venue, asset)]
        if actual < expected:
            senders = sorted(t.from_venue for t in plan.transfers if (t.to_venue, t.asset) == (venue, asset))
            problems.append(
                f"{venue}: holds {actual} {asset}, the plan expects {expected} after receiving from "
                f"{', '.join(senders)}: {expected - actual} {asset} has not arrived"
            )
    return problems


# -- explanation ------------------------------------------------------------------------------


def _explain(plan: RebalancePlan) -> str:
    if plan.is_empty:
        head = "Rebalance: every venue is within tolerance; no transfer needed."
    else:
        fees = ", ".join(f"{fee} {asset}" for asset, fee in sorted(plan.total_fees.items()))
        head = f"Rebalance: {len(plan.transfers)} transfer(s), fees {fees}."
    lines = [head]
    for asset, allocations in _by_asset(plan.allocations).items():
        total = sum((a.before for a in allocations), ZERO)
        lines.append(
            f"{asset}: total {total}, tolerance {plan.tolerance_pct}% = +-{plan.tolerance_pct * total / HUNDRED}"
        )
        lines.extend(_allocation_line(a) for a in allocations)
        lines.extend(_transfer_line(t) for t in plan.transfers if t.asset == asset)
    lines.extend(f"note: {note}" for note in plan.notes)
    return "\n".join(lines)


def _allocation_line(a: Allocation) -> str:
    return (
        f"  {a.venue:<10} before {a.before:>14}  target {a.target:>14}  after {a.after:>14}  ({a.after - a.target:+})"
    )


def _transfer_line(t: PlannedTransfer) -> str:
    return (
        f"  {t.from_venue} -> {t.to_venue}: send {t.amount} {t.asset} over {t.network}, "
        f"fee {t.fee}, arrives {t.received} (~{t.settle_seconds} s)"
    )


__all__ = [
    "TRANSFER_ACTION",
    "Allocation",
    "PlannedTransfer",
    "RebalanceError",
    "RebalancePlan",
    "plan_rebalance",
    "to_saga_steps",
    "verify_rebalance",
]
