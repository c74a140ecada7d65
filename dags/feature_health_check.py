"""Hourly: do the latest features still look like the ones the models learned from?"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronTriggerTimetable

from operators.market_data import DATA_RETRY_POLICY, FeatureHealthOperator
from operators.tags import CRON

DOC = """
### Feature health check (cron, hourly)

The last hour of features (widened to whole hours until every calendar group can reach
`feature_health.min_samples` bars: a small universe has few bars an hour), computed by the
nightly pipeline's code from the latest bars, against the reference: the stored samples of the
previous `market_data.reference_days` days (later: the champion model's training window).

Per feature: PSI on reference-quantile bins, KS, Jensen-Shannon, missing rate, the share outside
the reference's robust range; correlation stability across features. A feature is flagged only
when the evidence is significant after false-discovery control across features AND the effect is
large (thresholds in `feature_health`), and it escalates to critical only after
`feature_health.consecutive_windows` flagged windows in a row. Alerts are `data_alert` events on
`data-alerts` (never `critical_alert`: drift never flattens the book).

**On call**: the report (markdown, PNGs, JSON) is linked from the task log, under
`reports/health/<window end>/` in the feature store. Re-run an hour with
`conf {"window_end": "2026-11-30T14:00:00Z"}`.
"""

with DAG(
    dag_id="feature_health_check",
    schedule=CronTriggerTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=50),
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "retry_policy": DATA_RETRY_POLICY},
    tags=[CRON, "market-data"],
    doc_md=DOC,
) as dag:
    FeatureHealthOperator(task_id="check_feature_health")
