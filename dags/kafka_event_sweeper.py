"""Every minute: re-deliver Kafka asset events that no run of their DAG picked up."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG

from operators.sweeper import SweepStrandedEventsOperator
from operators.tags import CRON
from sensors.kafka_events import event_asset

DOC = """
### Kafka event sweeper (cron, every minute)

Airflow attaches asset events to a run when it consumes the DAG's asset queue; an event stored
while that happens is attached to no run and waits for the next event of its asset (seen here
with bursts: the last few events of a burst stranded). This DAG reads the recent events of every
Kafka-watched asset, finds those their DAG never claimed after 30 s, and triggers the DAG with
them in its conf. The DAGs claim each event id first, so a double delivery does nothing twice.

**On call**: a `replay_*` task that runs often means events are being stranded: check the
scheduler's health and the `Created asset-triggered DagRun` lines in its log.
"""

TARGETS = {
    "emergency_stop_loss_saga": ("stop_loss_alerts", "stop_loss_shocks"),
    "auto_rebalance_saga": ("rebalance_capital", "rebalance_shocks"),
    "funding_rate_hedge_event": ("funding_deviation",),
}

with DAG(
    dag_id="kafka_event_sweeper",
    schedule="* * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=5),
    tags=[CRON, "risk"],
    doc_md=DOC,
    default_args={"priority_weight": 500},
) as dag:
    for target, watchers in TARGETS.items():
        sweep = SweepStrandedEventsOperator(
            task_id=f"sweep_{target}", target_dag_id=target, assets=[event_asset(w) for w in watchers]
        )
        TriggerDagRunOperator.partial(task_id=f"replay_{target}", trigger_dag_id=target).expand(conf=sweep.output)
