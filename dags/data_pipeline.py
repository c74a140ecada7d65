"""Nightly market data: the day's 1-minute bars, validated, as features in the partitioned store."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, AsyncCallback, CronPartitionTimetable, DeadlineAlert, DeadlineReference

from operators.market_data import (
    DATA_RETRY_POLICY,
    FEATURES_ASSET,
    ArchiveBarsOperator,
    CheckDataHealthOperator,
    CleanStagingOperator,
    ComputeFeaturesOperator,
    ExtractBarsOperator,
    LoadFeaturesOperator,
    ValidateBarsOperator,
)
from operators.tags import CRON

DOC = """
### Market-data pipeline (cron, 02:00 UTC, one run per day)

Each run is for one day, the run's partition key (`YYYY-MM-DD`: the day that just ended), or
`conf {"day": "YYYY-MM-DD"}` to (re)build a past day. Never the wall clock.

1. `extract`: every symbol of `market_data.universe`, 1-minute bars of the day plus
   `warmup_bars` before it, through each venue (paper: seeded; live: ccxt, paginated). Temporary
   venue errors are retried, then the task retries with backoff.
2. `validate`: types, OHLC, volume, duplicates, bars outside the session, missing bars and gaps
   against the instrument's calendar (NYSE holidays and early closes are not missing), outliers,
   stale prices. `market_data.validation.policy` says what fails the run, what quarantines the
   symbol (the rest go on), what only warns. Every finding names venue, symbol, check, first bars.
3. `features`: the registry's features (`tradeops.market_data.registry`), warm-up included.
4. `load`: the day's partition is replaced atomically (manifest swap) and the
   `tradeops_features` asset gets an event for the day's partition.
5. `archive`: the raw bars, gzip Parquet, `raw/date=YYYY-MM-DD/` (idempotent).
6. `check_data_health`: freshness per symbol and drift against the previous days, into the
   manifest and the log; `data_alert` events for what needs a look.

**On call**: quarantined symbols and why: the `validate` log or the manifest
(`tradeops data show DAY`). A run not finished 2 h after it was queued raises a critical
`data_alert` (deadline). Re-running a day is safe: it replaces the partition.
"""

DEADLINE = timedelta(hours=2)

with DAG(
    dag_id="data_pipeline",
    schedule=CronPartitionTimetable("0 2 * * *", timezone="UTC", run_offset=-1, key_format="%Y-%m-%d"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=15),
        "retry_policy": DATA_RETRY_POLICY,
    },
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=DEADLINE,
        callback=AsyncCallback(
            "operators.market_data.pipeline_late", kwargs={"hours": DEADLINE.total_seconds() / 3600}
        ),
    ),
    tags=[CRON, "market-data"],
    doc_md=DOC,
) as dag:
    extract = ExtractBarsOperator(task_id="extract")
    validate = ValidateBarsOperator(task_id="validate")
    features = ComputeFeaturesOperator(task_id="features")
    load = LoadFeaturesOperator(task_id="load", outlets=[FEATURES_ASSET])
    archive = ArchiveBarsOperator(task_id="archive")
    health = CheckDataHealthOperator(task_id="check_data_health")
    clean = CleanStagingOperator(task_id="clean_staging")
    extract >> validate >> features >> load >> archive >> health >> clean
