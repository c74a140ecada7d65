"""The agents' book: their positions and PnL from what the venue confirms, and the decision log.

An agent's position and cash are running totals over its own logged runs, never the venue
account's balances (the account also holds the desk's inventory and other agents' trades). What
a run changed is read back from the venue when it is logged: the order found by its client order
id, plus every reverse order of a saga undo, so the log holds what happened, not what was asked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from tradeops.agents.agent_tables import agent_decisions
from tradeops.db import get_engine, insert_unless_exists, transaction
from tradeops.model import Order, parse_symbol

ZERO = Decimal(0)


@dataclass(frozen=True, kw_only=True)
class AgentBook:
    """An agent's running totals after its latest logged run."""

    position: Decimal
    cash: Decimal  # quote cash flow since its first run (negative after buying)
    peak_equity: Decimal  # the highest logged equity, at least 0 (where every agent starts)
    runs: int

    def equity_at(self, price: Decimal) -> Decimal:
        return self.cash + self.position * price


def book(agent: str, *, excluding_run: str | None = None, engine: Engine | None = None) -> AgentBook:
    """``agent``'s position, cash and peak equity from its decision log, leaving out the row of
    run ``excluding_run`` (the run being decided or logged again)."""
    table = agent_decisions
    mine = table.c.agent == agent
    if excluding_run is not None:
        mine = mine & (table.c.run_id != excluding_run)
    with transaction(engine or get_engine()) as conn:
        last = conn.execute(
            select(table.c.position_after, table.c.cash_after).where(mine).order_by(table.c.id.desc())
        ).first()
        equities = conn.execute(select(table.c.equity_after).where(mine)).scalars().all()
        runs = conn.execute(select(func.count()).select_from(table).where(mine)).scalar_one()
    if last is None:
        return AgentBook(position=ZERO, cash=ZERO, peak_equity=ZERO, runs=0)
    return AgentBook(
        position=last.position_after, cash=last.cash_after, peak_equity=max([ZERO, *equities]), runs=int(runs)
    )


def unreconciled_runs(dag_id: str, current_run_id: str, engine: Engine | None = None) -> tuple[str, ...]:
    """Earlier runs of ``dag_id`` whose saga recorded a step but which logged no decision."""
    from tradeops.saga.store import saga_steps

    logged = select(agent_decisions.c.run_id).where(agent_decisions.c.dag_id == dag_id)
    query = (
        select(saga_steps.c.run_id)
        .where(saga_steps.c.dag_id == dag_id, saga_steps.c.run_id != current_run_id, saga_steps.c.run_id.not_in(logged))
        .distinct()
        .order_by(saga_steps.c.run_id)
    )
    with transaction(engine or get_engine()) as conn:
        return tuple(conn.execute(query).scalars().all())


@dataclass(frozen=True, kw_only=True)
class FillSummary:
    """What a run's orders (the original and any reverse orders) did to the agent's book."""

    base_change: Decimal
    cash_change: Decimal
    fee_quote: Decimal
    filled: Decimal  # base units the original order filled
    fill_price: Decimal | None
    order_status: str | None


def summarize_fills(original: Order | None, reverses: list[Order]) -> FillSummary:
    """Net base and quote change of ``original`` and its ``reverses``, fees in quote units."""
    from tradeops.saga.actions import base_change

    base_delta = cash_delta = fees = ZERO
    for order in [o for o in [original, *reverses] if o is not None]:
        if order.filled == 0:
            continue
        base, quote, _kind = parse_symbol(order.symbol)
        price = order.average_price if order.average_price is not None else order.price or ZERO
        base_delta += base_change(order)  # a fee taken in the base asset is already out of it
        cash_delta -= order.side.sign * order.filled * price
        if order.fee_asset == quote:
            cash_delta -= order.fee
            fees += order.fee
        elif order.fee_asset == base:
            fees += order.fee * price
    return FillSummary(
        base_change=base_delta,
        cash_change=cash_delta,
        fee_quote=fees,
        filled=original.filled if original is not None else ZERO,
        fill_price=original.average_price if original is not None else None,
        order_status=original.status.value if original is not None else None,
    )


def record(row: Mapping[str, Any], engine: Engine | None = None) -> bool:
    """Write one run's row; a retried log of the same run replaces its row. True when new."""
    values = dict(row)
    values["inputs"] = json.dumps(values["inputs"], sort_keys=True, default=str)
    table = agent_decisions
    same_run = (table.c.dag_id == values["dag_id"]) & (table.c.run_id == values["run_id"])
    with transaction(engine or get_engine()) as conn:
        exists = conn.execute(select(table.c.id).where(same_run)).first() is not None
        if not exists and insert_unless_exists(conn, insert(table).values(**values)):
            return True
        conn.execute(update(table).where(same_run).values(**values))
    return False


def row_of(dag_id: str, run_id: str, engine: Engine | None = None) -> dict[str, Any] | None:
    """The logged row of one run (``inputs`` parsed), or None."""
    table = agent_decisions
    with transaction(engine or get_engine()) as conn:
        found = conn.execute(select(table).where(table.c.dag_id == dag_id, table.c.run_id == run_id)).first()
    return None if found is None else _parsed(found._mapping)


def rows_of_run(run_id: str, engine: Engine | None = None) -> list[dict[str, Any]]:
    """Every logged row with ``run_id`` (one per agent DAG that used that run id)."""
    table = agent_decisions
    with transaction(engine or get_engine()) as conn:
        found = conn.execute(select(table).where(table.c.run_id == run_id).order_by(table.c.id)).all()
    return [_parsed(item._mapping) for item in found]


def _parsed(mapping: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(mapping)
    row["inputs"] = json.loads(row["inputs"])
    return row
