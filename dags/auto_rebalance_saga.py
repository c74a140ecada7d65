"""Rebalance funds across venues when capital drops below a floor or the market shocks."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from operators.events import ClaimEventsOperator
from operators.leases import AcquireLeasesSensor, ReleaseLeasesOperator
from operators.rebalance import PlanRebalanceOperator, VerifyRebalanceSensor
from operators.saga import mapped_saga
from operators.tags import EVENT_TRIGGERED
from sensors.kafka_events import event_asset
from tradeops.rebalance import TRANSFER_ACTION

DOC = """
### Auto-rebalance (event-triggered saga)

**Starts on** a `capital_threshold` in `capital-events` whose balance is under its floor
(`capital.floors`), or a `market_shock` in `market-events` with |move| >= 5 %.

1. `claim_events`: validates and claims the events (a redelivered event does nothing twice).
2. `acquire_lease`: one rebalance moves funds at a time. This replaces `max_active_runs=1`,
   which strands asset events (Airflow issue #56050): runs start freely and wait here instead.
3. `plan_rebalance`: on free balances (margin backing perp positions is not movable), target
   allocation per venue from `rebalance.targets`; the cheapest set of
   transfers that reaches it (exact min-cost flow over venues x assets, on-chain fee per network,
   Wise quotes for fiat legs). Skipped while trading is HALTED. The plan is in the task log.
4. `transfer` (one saga step per transfer, in plan order; transfer id = the step's idempotency key)
   then `compensate`: reverse transfers for completed steps if one fails (run ends FAILED).
5. `verify_balances`: waits until every transfer arrived and every venue is within tolerance.
6. `release_lease` (teardown), after `verify_balances` and `compensate` have both finished: no
   other rebalance plans while reverse transfers are still being sent.

**On call**: `tradeops saga show RUN_ID` shows every transfer and undo; `tradeops venue balances`.
A reverse transfer waits for the original to settle, so `compensate` may retry for a while.
"""

# The watched assets; the claiming task reads their recent events too (events Airflow attached to no run).
ASSETS = [event_asset("rebalance_capital"), event_asset("rebalance_shocks")]

with DAG(
    dag_id="auto_rebalance_saga",
    schedule=ASSETS[0] | ASSETS[1],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    dagrun_timeout=timedelta(hours=6),
    tags=[EVENT_TRIGGERED, "rebalancing", "saga"],
    doc_md=DOC,
) as dag:
    claim = ClaimEventsOperator(
        task_id="claim_events", inlets=ASSETS, event_types=["capital_threshold", "market_shock"]
    )
    lease = AcquireLeasesSensor(
        task_id="acquire_lease",
        prefix="auto_rebalance",
        names=["auto_rebalance"],
        ttl=timedelta(hours=3),
        poke_interval=10,
        timeout=6 * 3600,
    )
    plan = PlanRebalanceOperator(task_id="plan_rebalance")
    transfers, compensate = mapped_saga("transfer", TRANSFER_ACTION, plan.output)
    verify = VerifyRebalanceSensor(task_id="verify_balances", plan_task_id="plan_rebalance")
    release = ReleaseLeasesOperator(task_id="release_lease", prefix="auto_rebalance").as_teardown(setups=lease)
    claim >> lease >> plan
    transfers >> verify
    [verify, compensate] >> release  # never before compensation has finished moving funds back
