"""Manual control of the trading state from the Airflow UI, the Desk or the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param

from operators.state import RouteStateChangeOperator, SetTradingStateOperator
from tradeops.config import settings

DOC = """
### Trading state control (manual)

Sets the desk-wide trading state that every order is checked against:

| state | effect |
|---|---|
| `ACTIVE` | normal trading |
| `REDUCING` | only orders that reduce exposure |
| `HALTED` | no new orders; only reduce-only exits and saga compensation |

- **HALTED** is the safe direction: `route` sends it straight to `set_trading_state`.
- **ACTIVE** and **REDUCING** wait in `approve` under **Required Actions** until someone approves
  (`trading_state.approval_timeout_hours`; unanswered, the task fails and nothing changes). With
  `trading_state.distinct_approver` the approver must be another Airflow user than the one who
  triggered the run. "Reject" skips `set_trading_state`: the state stays as it was.
- The state history names who asked, who approved and why (`tradeops state show`, the Desk).

The emergency stop sets `HALTED` by itself; going back to `ACTIVE` is **always** a human action:
here (or "Request ACTIVE" on the Desk, which triggers this DAG), or with the CLI's own audited
path `tradeops state set ACTIVE --reason "..."`.

Trigger with config, e.g.
`airflow dags trigger trading_state_control --conf '{"state": "ACTIVE", "reason": "INC-42 resolved"}'`.
"""

APPROVE = "approve"
SET = "set_trading_state"

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
    route = RouteStateChangeOperator(
        task_id="route", state="{{ params.state }}", approval_task_id=APPROVE, set_task_id=SET, priority_weight=100
    )
    approve = ApprovalOperator(
        task_id=APPROVE,
        subject="Set the trading state to {{ params.state }}?",
        body=(
            "**{{ dag_run.triggering_user_name or 'someone' }}** asks to set the desk's trading state to"
            " **{{ params.state }}**.\n\nReason: {{ params.reason }}\n\n"
            "Approving changes it at once; every order is checked against it."
        ),
        response_timeout=timedelta(hours=settings().trading_state.approval_timeout_hours),
        ignore_downstream_trigger_rules=True,
    )
    set_state = SetTradingStateOperator(
        task_id=SET,
        state="{{ params.state }}",
        reason="{{ params.reason }}",
        approval_task_id=APPROVE,
        trigger_rule="none_failed_min_one_success",
        priority_weight=100,
    )
    route >> [approve, set_state]
    approve >> set_state
