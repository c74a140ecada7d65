"""Manual control of the trading state from the Airflow UI or CLI."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from operators.state import SetTradingStateOperator

DOC = """
### Trading state control (manual)

Sets the desk-wide trading state that every order is checked against:

| state | effect |
|---|---|
| `ACTIVE` | normal trading |
| `REDUCING` | only orders that reduce exposure |
| `HALTED` | no new orders; only reduce-only exits and saga compensation |

The emergency stop sets `HALTED` by itself; going back to `ACTIVE` is **always** a human action,
here or with `tradeops state set ACTIVE --reason "..."`.

Trigger with config, e.g.
`airflow dags trigger trading_state_control --conf '{"state": "ACTIVE", "reason": "INC-42 resolved"}'`.
Check the result with `tradeops state show`.
"""

with DAG(
    dag_id="trading_state_control",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["manual", "risk"],
    doc_md=DOC,
    params={
        "state": Param("HALTED", enum=["ACTIVE", "REDUCING", "HALTED"], description="the new trading state"),
        "reason": Param(type="string", minLength=3, description="why (kept in the state history)"),
    },
) as dag:
    SetTradingStateOperator(
        task_id="set_trading_state",
        state="{{ params.state }}",
        reason="{{ params.reason }}",
        priority_weight=100,
    )
