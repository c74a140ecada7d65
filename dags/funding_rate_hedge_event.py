"""Immediate hedge when a funding-rate deviation event arrives on Kafka."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from operators.events import ClaimEventsOperator
from operators.hedging import (
    HEDGE_STEP_RETRIES,
    AcquireHedgeLeasesSensor,
    FundingSnapshotOperator,
    PlanHedgeOperator,
    VerifyHedgeOperator,
)
from operators.leases import ReleaseLeasesOperator
from operators.saga import mapped_saga
from operators.tags import EVENT_TRIGGERED
from sensors.kafka_events import event_asset
from tradeops.hedging import HEDGE_ACTION, HEDGE_LEASE_PREFIX

DOC = """
### Funding-rate hedge on a deviation event (event-triggered)

**Starts on** a `funding_rate_deviation` in `funding-rate-events` whose venues' rates, normalised
to one period, differ by more than `thresholds.funding_deviation_bps` (20 bps; recomputed from the
rates, the publisher's own figure is not trusted). Hedges only the symbols the events name, at
once, with the same planner and saga as `funding_rate_hedge_cron`.

`acquire_leases` waits (reschedule, no worker slot) for the lease of each named symbol
(`hedge:<symbol>`): while `funding_rate_hedge_cron` works on a symbol, this run waits, then plans
on what the venues hold by then. `release_leases` (teardown) gives them back after `compensate`
and `verify_hedge` have finished.

Events already handled by an earlier run are skipped. Replay by hand:
`airflow dags trigger funding_rate_hedge_event --conf '{"events": [<funding_rate_deviation event>]}'`.
"""

# The watched assets; the claiming task reads their recent events too (events Airflow attached to no run).
ASSETS = [event_asset("funding_deviation")]

with DAG(
    dag_id="funding_rate_hedge_event",
    schedule=ASSETS[0],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    dagrun_timeout=timedelta(minutes=10),
    tags=[EVENT_TRIGGERED, "hedging", "saga"],
    doc_md=DOC,
    default_args={"priority_weight": 100},
) as dag:
    claim = ClaimEventsOperator(task_id="claim_events", inlets=ASSETS, event_types=["funding_rate_deviation"])
    leases = AcquireHedgeLeasesSensor(
        task_id="acquire_leases", events=claim.output, timeout=timedelta(minutes=7).total_seconds()
    )
    snapshot = FundingSnapshotOperator(task_id="snapshot_funding", events=claim.output)
    plan = PlanHedgeOperator(task_id="plan_hedge", snapshot=snapshot.output)
    steps, compensate = mapped_saga("adjust_hedge", HEDGE_ACTION, plan.output, **HEDGE_STEP_RETRIES)
    verify = VerifyHedgeOperator(task_id="verify_hedge", plan_task_id="plan_hedge")
    release = ReleaseLeasesOperator(task_id="release_leases", prefix=HEDGE_LEASE_PREFIX).as_teardown(setups=leases)
    claim >> leases >> snapshot
    steps >> verify
    [verify, compensate] >> release
