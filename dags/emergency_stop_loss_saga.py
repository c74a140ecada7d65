"""Emergency stop-loss: on a critical risk alert or an extreme market shock, halt and flatten."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from operators.executors import LATENCY_CRITICAL_EXECUTOR
from operators.stoploss import STOP_RUN_TIMEOUT, EmergencyStopOperator, StopLossReportOperator
from operators.tags import EVENT_TRIGGERED
from sensors.kafka_events import event_asset

DOC = """
### Emergency stop-loss (event-triggered, highest priority)

**Starts on** a `critical_alert` in `risk-alerts`, or a `market_shock` in `market-events` whose
|move| reaches `thresholds.extreme_shock_pct` (15 % by default). Several events in one run are
handled together; an event already handled by an earlier run is skipped (redelivery-safe).
The Kafka watcher sets **HALTED** itself the moment it reads such an event (or an unreadable
message claiming to be a `critical_alert`), before this run even exists; events older than
`kafka.watch.max_event_age_seconds` never start it (`tradeops kafka stale` lists them).

**Flat** means, on every venue: no open order, no perpetual position, no balance of a non-cash
asset (crypto spot, shares) above its dust threshold (`stop_loss.dust`). Cash is every market's
quote asset (USDT, USD) plus `stop_loss.cash_assets`.

**What it does** (one task until the book is flat, so the kill switch pays for one task start)
1. `halt_and_flatten`:
   - sets the trading state to **HALTED** first, before any other I/O: from here no DAG can
     open exposure;
   - validates and claims the events. If every event was already handled by an earlier run, the
     state from before is put back, but only while it is still exactly this run's HALTED
     (compare-and-set, logged); trading is never resumed automatically otherwise;
   - on every venue at once (a thread per venue), round after round: cancels every open order,
     closes both legs of each asset in the same round (perps with reduce-only market orders,
     spot sold for the quote asset and shares sold with exit-only market orders), re-checks.
     Errors (429/503, timeouts) end a round, never the loop: it backs off
     (`stop_loss.backoff_*`, one progress log line per round) and keeps trying until the venue
     is flat or `stop_loss.max_duration_seconds` (30 min; counted from the run's start, retries
     included) runs out. The venue circuit breaker is bypassed here on purpose.
   - a first `stop_loss_report` (`"stage": "first"`: what is flat, what is not yet) goes to
     `risk-alerts` within seconds (`stop_loss.first_report_after_seconds`).
   - Equities outside NYSE regular hours: the sell orders wait for the open; the venue is
     reported `"status": "pending_open"`, never flat.
   - Ends FAILED (no retry) naming every venue that is not flat and why.
2. `report`: publishes the final `stop_loss_report` (`"stage": "final"`: per venue, per base
   asset spot + perp = net in base units and quote value, and the desk's net exposure) and logs
   it; fails unless `all_flat`.

**Where it runs**: on Kubernetes both tasks run on the LocalExecutor inside the scheduler pod
(no worker pod to schedule and start); everything else uses the KubernetesExecutor.

**On call**
- Run FAILED: read the log line `Emergency stop report (final)`; each venue with
  `"flat": false` needs a human: `tradeops venue positions --venue NAME`,
  `tradeops venue orders --venue NAME`, `tradeops venue balances --venue NAME`.
  `pending_open`: the share sales are queued for the next NYSE open; check them after it.
  `unsellable`: an asset no market on that venue can sell; move or sell it by hand.
  Clear `halt_and_flatten` to try again once the venue answers.
- Trading stays HALTED. Going back to ACTIVE is a human decision:
  `tradeops state set ACTIVE --reason "..."` or the `trading_state_control` DAG.
- Replay by hand: `airflow dags trigger emergency_stop_loss_saga --conf '{"events": [<critical_alert event>]}'`.
"""

# The watched assets; the claiming task reads their recent events too (events Airflow attached to no run).
ASSETS = [event_asset("stop_loss_alerts"), event_asset("stop_loss_shocks")]

with DAG(
    dag_id="emergency_stop_loss_saga",
    schedule=ASSETS[0] | ASSETS[1],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=[EVENT_TRIGGERED, "risk", "saga"],
    doc_md=DOC,
    dagrun_timeout=STOP_RUN_TIMEOUT,
    default_args={
        "pool": "emergency",
        "priority_weight": 1000,
        "weight_rule": "absolute",
        "executor": LATENCY_CRITICAL_EXECUTOR,
    },
) as dag:
    stop = EmergencyStopOperator(
        task_id="halt_and_flatten", inlets=ASSETS, event_types=["critical_alert", "market_shock"]
    )
    report = StopLossReportOperator(task_id="report", stop_task_id="halt_and_flatten")
    stop >> report
