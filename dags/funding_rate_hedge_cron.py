"""Funding-rate hedge every 15 minutes: keep perp shorts against spot on the best-paying venue."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from operators.hedging import (
    HEDGE_STEP_RETRIES,
    AcquireHedgeLeasesSensor,
    FundingSnapshotOperator,
    PlanHedgeOperator,
    PublishDeviationsOperator,
    VerifyHedgeOperator,
)
from operators.leases import ReleaseLeasesOperator
from operators.saga import mapped_saga
from operators.tags import CRON
from tradeops.hedging import HEDGE_ACTION, HEDGE_LEASE_PREFIX

DOC = """
### Funding-rate hedge (cron, every 15 minutes)

1. `acquire_leases`: the lease of every hedge symbol (`hedge:<symbol>`, sorted order), so this
   run and `funding_rate_hedge_event` never act on one symbol at once. Waits without a worker
   slot (reschedule); a lease whose holder died expires after 20 minutes.
2. `snapshot_funding`: funding rates (normalised to one period, `thresholds.funding_period_hours`;
   each symbol at its own interval), marks, perp positions and spot holdings on every crypto venue.
   A venue that does not answer freezes the symbols it may hold: no hedge change for them this
   round (the plan says so); the others are still hedged.
3. `publish_deviations`: a `funding_rate_deviation` event to `funding-rate-events` for each symbol
   whose venues differ by more than `thresholds.funding_deviation_bps` (20 bps).
4. `plan_hedge`: target short per symbol = `hedge.hedge_ratio` x spot held, placed where shorts
   earn the most funding; existing shorts stay put while their venue is within 1 bp of the best.
   In REDUCING/HALTED only reductions are planned.
5. `adjust_hedge` (saga steps, one per leg, in plan order): each leg carries its venue's target
   position and orders the difference to the live position when it runs, so a retry or a second
   run never doubles the hedge. Then `compensate` (undoes completed legs in reverse if one fails:
   the run ends FAILED) and `verify_hedge`.
6. `release_leases` (teardown), after `compensate` and `verify_hedge` have both finished.

**On call**: the plan is in the `plan_hedge` log; a FAILED run's ledger: `tradeops saga show RUN_ID`.
Adjustments over `hedge.max_adjustment_notional` are refused, never trimmed: check the plan notes.
Who holds a symbol: the `acquire_leases` log names the holding run.
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
    leases = AcquireHedgeLeasesSensor(task_id="acquire_leases", timeout=timedelta(minutes=10).total_seconds())
    snapshot = FundingSnapshotOperator(task_id="snapshot_funding")
    deviations = PublishDeviationsOperator(task_id="publish_deviations", snapshot=snapshot.output)
    plan = PlanHedgeOperator(task_id="plan_hedge", snapshot=snapshot.output)
    steps, compensate = mapped_saga("adjust_hedge", HEDGE_ACTION, plan.output, **HEDGE_STEP_RETRIES)
    verify = VerifyHedgeOperator(task_id="verify_hedge", plan_task_id="plan_hedge")
    release = ReleaseLeasesOperator(task_id="release_leases", prefix=HEDGE_LEASE_PREFIX).as_teardown(setups=leases)
    leases >> snapshot >> [deviations, plan]
    steps >> verify
    [verify, compensate, deviations] >> release
