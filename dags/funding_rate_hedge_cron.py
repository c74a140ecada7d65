"""Funding-rate hedge every 15 minutes: keep perp shorts against spot on the best-paying venue."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from operators.hedging import (
    FundingSnapshotOperator,
    PlanHedgeOperator,
    PublishDeviationsOperator,
    VerifyHedgeOperator,
)
from operators.saga import mapped_saga
from operators.tags import CRON
from tradeops.hedging import PLACE_ORDER_ACTION

DOC = """
### Funding-rate hedge (cron, every 15 minutes)

1. `snapshot_funding`: funding rates (normalised to one period, `thresholds.funding_period_hours`),
   marks, perp positions and spot holdings on every crypto venue. A venue that does not answer is
   logged and left out; the others are still hedged.
2. `publish_deviations`: a `funding_rate_deviation` event to `funding-rate-events` for each symbol
   whose venues differ by more than `thresholds.funding_deviation_bps` (20 bps).
3. `plan_hedge`: target short per symbol = `hedge.hedge_ratio` x spot held, placed where shorts
   earn the most funding; existing shorts stay put while their venue is within 1 bp of the best.
   In REDUCING/HALTED only reductions are planned.
4. `adjust_hedge` (saga steps, one per order, in plan order) then `compensate` (undoes completed
   adjustments in reverse if one fails: the run ends FAILED) and `verify_hedge`.

**On call**: the plan is in the `plan_hedge` log; a FAILED run's ledger: `tradeops saga show RUN_ID`.
Adjustments over `hedge.max_adjustment_notional` are refused, never trimmed: check the plan notes.
"""

with DAG(
    dag_id="funding_rate_hedge_cron",
    schedule="*/15 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=14),
    tags=[CRON, "hedging", "saga"],
    doc_md=DOC,
) as dag:
    snapshot = FundingSnapshotOperator(task_id="snapshot_funding")
    deviations = PublishDeviationsOperator(task_id="publish_deviations", snapshot=snapshot.output)
    plan = PlanHedgeOperator(task_id="plan_hedge", snapshot=snapshot.output)
    steps, _compensate = mapped_saga("adjust_hedge", PLACE_ORDER_ACTION, plan.output)
    verify = VerifyHedgeOperator(task_id="verify_hedge", plan_task_id="plan_hedge")
    snapshot >> [deviations, plan]
    steps >> verify
