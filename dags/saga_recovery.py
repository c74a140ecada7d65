"""Every minute: compensate the sagas Airflow ended without compensating (timeout, mark-failed, delete)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from operators.executors import LATENCY_CRITICAL_EXECUTOR
from operators.saga_recovery import SagaRecoveryOperator
from operators.tags import CRON

DOC = """
### Saga recovery (cron, every minute)

A saga's `compensate` task does not run when Airflow ends the run itself: `dagrun_timeout`,
**Mark run as failed**, a run **deleted** from the UI. The saga ledger in the project database
still holds every step's intent, so this DAG finds every saga that is open or mid-compensation
and asks Airflow how its run ended:

- **failed or deleted**: compensates it from the ledger (undos in reverse step order; the ledger
  records `saga_recovery` as who compensated and why). Steps of a compensated saga never act
  again: clearing them fails with "trigger a new run".
- **success**: every step acted means complete; a step that did not (run marked successful by
  hand) is handed to a human and nothing is moved.
- **running**: left alone; the run's own `compensate` will do it.

An undo waiting for a transfer to settle is picked up again each minute, until the route's
settlement time plus `saga.settle_margin_seconds`; an outcome still unknown after 3 passes, or a
transfer that never settles, sets trading to **HALTED** and fails this run naming the saga.
Leases the compensated run held (the rebalance lease) are released once compensation finished.

**On call**: a FAILED run here names the saga that needs a human: `tradeops saga show RUN_ID`
shows every step and undo; check the venues, then resume with `tradeops state set ACTIVE`.
"""

with DAG(
    dag_id="saga_recovery",
    schedule="* * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    tags=[CRON, "saga", "risk"],
    doc_md=DOC,
    default_args={"priority_weight": 900, "executor": LATENCY_CRITICAL_EXECUTOR, "retries": 0},
) as dag:
    SagaRecoveryOperator(task_id="recover_sagas", execution_timeout=timedelta(minutes=9))
