"""The trading state and its history, as stored, whatever the stored text is.

The rows are read straight from the risk tables instead of through ``risk.get_state`` and
``risk.history``, which turn the text into a ``TradingState`` and raise on a value this code does
not know (written by a newer release, or by hand). The desk must show such a value, flagged
``known: false``, rather than fail: it is exactly what the person on call needs to see.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from tradeops import risk
from tradeops.db import get_engine, transaction
from tradeops.model import to_jsonable

KNOWN_STATES = frozenset(state.value for state in risk.TradingState)
MAX_HISTORY = 500


def snapshot(limit: int = 20, *, engine: Engine | None = None) -> dict[str, Any]:
    """``{"state": Record, "history": [Record, ...newest first]}``, at most ``limit`` in the history."""
    engine = engine or get_engine()
    current, history = risk.trading_state_table, risk.trading_state_history
    with transaction(engine) as conn:
        row = conn.execute(select(current).where(current.c.id == 1)).first()
        rows = conn.execute(select(history).order_by(history.c.id.desc()).limit(max(1, min(limit, MAX_HISTORY)))).all()
    state = record_of(row) if row is not None else record_of(risk.get_state(engine))  # never set: ACTIVE
    return {"state": state, "history": [record_of(r) for r in rows]}


def record_of(row: Any) -> dict[str, Any]:
    """A state row (or ``risk.StateRecord``) as the desk shows it."""
    text = str(row.state)
    return {
        "state": text,
        "known": text in KNOWN_STATES,
        "reason": row.reason,
        "changed_by": row.changed_by,
        "changed_at": to_jsonable(row.changed_at),
    }
