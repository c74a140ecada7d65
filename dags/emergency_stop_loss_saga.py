"""Emergency stop-loss: on a critical risk alert or an extreme market shock, halt and flatten."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from operators.events import ClaimEventsOperator
from operators.stoploss import FlattenVenueOperator, HaltTradingOperator, StopLossReportOperator
from operators.tags import EVENT_TRIGGERED
from sensors.kafka_events import event_asset
from tradeops.config import settings

DOC = """
### Emergency stop-loss (event-triggered, highest priority)

**Starts on** a `critical_alert` in `risk-alerts`, or a `market_shock` in `market-events` whose
|move| reaches `thresholds.extreme_shock_pct` (15 % by default). Several events in one run are
handled together; an event already handled by an earlier run is skipped (redelivery-safe).

**What it does**
1. `claim_events`: validates and claims the events.
2. `halt_trading`: sets the trading state to **HALTED**: from here no DAG can open exposure.
3. `flatten_venue` (one task per venue, in parallel): cancels every open order, closes every
   perpetual position with reduce-only market orders (equity venues: sells the held shares),
   re-checks until flat (up to 5 rounds, then the task retries). A failing venue does not stop
   the others. The venue circuit breaker is bypassed here on purpose.
4. `report`: publishes a `stop_loss_report` to `risk-alerts` and logs it; fails if any venue is
   not flat.

**On call**
- Run FAILED at `report`: read the log line `Emergency stop report`; the venue with
  `"flat": false` needs a human: `tradeops venue positions --venue NAME`,
  `tradeops venue orders --venue NAME`. Clear its task to retry once the venue answers.
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
    default_args={"pool": "emergency", "priority_weight": 1000, "weight_rule": "absolute"},
) as dag:
    claim = ClaimEventsOperator(task_id="claim_events", event_types=["critical_alert", "market_shock"])
    halt = HaltTradingOperator(task_id="halt_trading", events=claim.output)
    flatten = FlattenVenueOperator.partial(task_id="flatten_venue").expand(venue=sorted(settings().venues))
    report = StopLossReportOperator(task_id="report", events=claim.output, flatten_task_id="flatten_venue")
    claim >> halt >> flatten >> report
