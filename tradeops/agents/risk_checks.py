"""``validate_risk``: the agent's order against its limits and the desk's trading state.

Rules, in the order they are checked (the first that fails rejects the order and is named):

- ``trading_state``: HALTED blocks every agent order; REDUCING allows only sells (they shrink
  the agent's long position);
- ``unreconciled_run``: an earlier run of this agent acted at the venue but never logged what
  happened: no new order until a person looks (``tradeops saga show``);
- ``run_too_late``: the run started trading more than ``max_delay_seconds`` after its time;
- ``stale_market_data``: the last bar is older than ``STALE_BAR_SECONDS`` at the decision;
- ``bad_market_data``: the fetched bars failed a data check whose policy is not ``warn``
  (``market_data.validation``: OHLC, prices, volume, duplicates, outliers, stale prices); the
  reason names venue, symbol, check and the first bars;
- ``max_position`` / ``max_notional``: the agent's position after a buy, in base units / at the
  decision price;
- ``max_drawdown``: the agent's equity has fallen ``max_drawdown`` of its capital below its
  peak: only sells pass;
- ``max_venue_exposure``: everything but cash held on the venue, plus a buy, at mark prices;
- ``available_balance``: the venue account has the quote (with the taker fee) for a buy, or the
  base for a sell.

Holds are not checked (no order). Pure: ``RiskContext`` holds what the checks read, logged with
the verdict, so a replay reaches the same verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradeops.agents.decision import BUY, HOLD, Decision
from tradeops.agents.settings import RiskLimits

STALE_BAR_SECONDS = 300


@dataclass(frozen=True, kw_only=True)
class RiskContext:
    trading_state: str  # ACTIVE, REDUCING, HALTED
    trading_state_reason: str
    position: Decimal  # the agent's base position
    equity: Decimal  # the agent's cash flow + position at the decision price
    peak_equity: Decimal  # the highest equity it logged (0 at the start)
    capital: Decimal
    venue_exposure: Decimal  # quote value of all non-cash holdings on the venue
    quote_free: Decimal
    base_free: Decimal
    taker_fee_bps: Decimal
    run_delay_seconds: float
    max_delay_seconds: float
    last_bar_age_seconds: float | None
    unreconciled_runs: tuple[str, ...] = ()
    # Checks the fetched bars failed whose policy (market_data.validation.policy) is not "warn".
    data_findings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            name: (str(value) if isinstance(value, Decimal) else list(value) if isinstance(value, tuple) else value)
            for name, value in self.__dict__.items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskContext:
        decimals = {"position", "equity", "peak_equity", "capital", "venue_exposure", "quote_free", "base_free"}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name in decimals or name == "taker_fee_bps":
                values[name] = Decimal(value)
            elif name in {"unreconciled_runs", "data_findings"}:
                values[name] = tuple(value)
            else:
                values[name] = value
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class RiskVerdict:
    approved: bool
    rule: str | None
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"approved": self.approved, "rule": self.rule, "reason": self.reason, "checks": list(self.checks)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskVerdict:
        return cls(approved=data["approved"], rule=data["rule"], reason=data["reason"], checks=list(data["checks"]))


def _rules(decision: Decision, ctx: RiskContext, limits: RiskLimits, symbol: str) -> list[tuple[str, bool, str]]:
    """Every rule as (name, passed, detail), in order."""
    buy = decision.action == BUY
    amount, price = decision.amount or Decimal(0), decision.price
    after = ctx.position + amount if buy else ctx.position - amount
    state = ctx.trading_state
    drawdown = (ctx.peak_equity - ctx.equity) / ctx.capital
    notional = amount * price
    gross = ctx.venue_exposure + (notional if buy else Decimal(0))
    cost = notional * (1 + ctx.taker_fee_bps / Decimal(10_000))
    age = ctx.last_bar_age_seconds
    return [
        (
            "trading_state",
            state == "ACTIVE" or (state == "REDUCING" and not buy),
            f"trading is {state} ({ctx.trading_state_reason})"
            + ("" if state != "REDUCING" else ": only orders that reduce the position pass"),
        ),
        (
            "unreconciled_run",
            not ctx.unreconciled_runs,
            f"earlier runs acted at the venue without a logged outcome: {', '.join(ctx.unreconciled_runs) or 'none'}",
        ),
        (
            "run_too_late",
            ctx.run_delay_seconds <= ctx.max_delay_seconds,
            f"the decision came {ctx.run_delay_seconds:.0f} s after the scheduled time "
            f"(limit {ctx.max_delay_seconds:.0f} s)",
        ),
        (
            "stale_market_data",
            age is not None and age <= STALE_BAR_SECONDS,
            "no bars" if age is None else f"the last bar is {age:.0f} s old (limit {STALE_BAR_SECONDS} s)",
        ),
        (
            "bad_market_data",
            not ctx.data_findings,
            "; ".join(ctx.data_findings) or "the fetched bars pass the data checks",
        ),
        (
            "max_position",
            not buy or after <= limits.max_position,
            f"position after the order {after} {symbol.split('/')[0]} (limit {limits.max_position})",
        ),
        (
            "max_notional",
            not buy or after * price <= limits.max_notional,
            f"position value after the order {after * price:.2f} (limit {limits.max_notional})",
        ),
        (
            "max_drawdown",
            not buy or drawdown < limits.max_drawdown,
            f"drawdown {drawdown:.2%} of capital {ctx.capital} from the peak equity {ctx.peak_equity:.2f} "
            f"(limit {limits.max_drawdown:.2%}; only sells pass beyond it)",
        ),
        (
            "max_venue_exposure",
            not buy or gross <= limits.max_venue_exposure,
            f"non-cash holdings on the venue after the order {gross:.2f} (limit {limits.max_venue_exposure})",
        ),
        (
            "available_balance",
            ctx.quote_free >= cost if buy else ctx.base_free >= amount,
            f"needs {cost:.2f} quote with fees, has {ctx.quote_free}"
            if buy
            else f"needs {amount} base, has {ctx.base_free}",
        ),
    ]


def validate(decision: Decision, ctx: RiskContext | None, limits: RiskLimits, symbol: str) -> RiskVerdict:
    """The verdict on ``decision``'s order: approved, or rejected with the first failing rule.
    A hold has no order: nothing is checked (``ctx`` may be None)."""
    if decision.action == HOLD:
        return RiskVerdict(approved=False, rule=None, reason="hold: no order to check")
    if ctx is None:
        raise ValueError("an order needs its risk context")
    checks = [
        {"rule": name, "passed": passed, "detail": detail}
        for name, passed, detail in _rules(decision, ctx, limits, symbol)
    ]
    failed = next((check for check in checks if not check["passed"]), None)
    if failed is None:
        return RiskVerdict(approved=True, rule=None, reason="every rule passed", checks=checks)
    return RiskVerdict(
        approved=False, rule=failed["rule"], reason=f"rejected by {failed['rule']}: {failed['detail']}", checks=checks
    )
