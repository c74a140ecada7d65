"""Emergency stop-loss: on a critical risk alert or an extreme market shock, halt and flatten."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from operators.executors import LATENCY_CRITICAL_EXECUTOR
from operators.stoploss import EmergencyStopOperator, StopLossReportOperator
from operators.tags import EVENT_TRIGGERED
from sensors.kafka_events import event_asset

DOC = """
### Emergency stop-loss (event-triggered, highest priority)

**Starts on** a `critical_alert` in `risk-alerts`, or a `market_shock` in `market-events` whose
|move| reaches `thresholds.extreme_shock_pct` (15 % by default). Several events in one run are
handled together; an event already handled by an earlier run is skipped (redelivery-safe).

**What it does** (one task until the book is flat, so the kill switch pays for one task start)
1. `halt_and_flatten`:
   - validates and claims the events;
   - sets the trading state to **HALTED** first: from here no DAG can open exposure;
   - on every venue at once (a thread per venue): cancels every open order, closes every
     perpetual position with reduce-only market orders (equity venues: sells the held shares),
     and re-checks until flat, up to 5 rounds. A failing venue never holds up the others. The
     venue circuit breaker is bypassed here on purpose. Not flat: the task retries (idempotent).
2. `report`: publishes a `stop_loss_report` to `risk-alerts` and logs it; fails if any venue is
   not flat.

**Where it runs**: on Kubernetes both tasks run on the LocalExecutor inside the scheduler pod
(no worker pod to schedule and start); everything else uses the KubernetesExecutor.

**On call**
- Run FAILED at `report`: read the log line `Emergency stop report`; the venue with
  `"flat": false` needs a human: `tradeops venue positions --venue NAME`,
  `tradeops venue orders --venue NAME`. Clear `halt_and_flatten` to try again once it answers.
- Trading stays HALTED. Going back to ACTIVE is a human decision:
  `tradeops state set ACTIVE --reason "..."` or the `trading_state_control` DAG.
- Replay by hand: `airflow dags trigger emergency_stop_loss_saga --conf '{"events": [<critical_alert event>]}'`.
"""

with DAG(
    dag_id="emergency_stop_loss_saga",
    schedule=event_asset("stop_loss_alerts") | event_asset("stop_loss_shocks"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=[EVENT_TRIGGERED, "risk", "saga"],
    doc_md=DOC,
    dagrun_timeout=timedelta(minutes=10),
    default_args={
        "pool": "emergency",
        "priority_weight": 1000,
        "weight_rule": "absolute",
        "executor": LATENCY_CRITICAL_EXECUTOR,
    },
) as dag:
    stop = EmergencyStopOperator(task_id="halt_and_flatten", event_types=["critical_alert", "market_shock"])
    report = StopLossReportOperator(task_id="report", stop_task_id="halt_and_flatten")
    stop >> report
