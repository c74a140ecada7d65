"""Weekly model training on the feature store, with promotion gates (and an optional approval)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, CronTriggerTimetable

from operators.models import (
    CHALLENGER_ASSET,
    TRAIN_TASK,
    NeedsApprovalOperator,
    PromoteChallengerOperator,
    TrainModelOperator,
)
from operators.tags import CRON

DOC = """
### Training pipeline (cron, Sunday 03:00 UTC)

1. `train`: the last `models.training.lookback_days` days of the feature store (through the day
   before the run; `conf {"before": "YYYY-MM-DD"}` to train as of another day). Label: the forward
   log return over `horizon_bars`, net of round-trip costs. Candidates (a logistic baseline and
   boosted trees) are chosen on purged walk-forward CV; the chosen one is backtested on the
   held-out window, per calendar group, and judged by `models.gates`. Everything (parameters,
   metrics, the model, the model card, the feature manifests, the code version) goes to MLflow;
   the model is registered as a new version whatever the verdict. Too little data skips the task.
2. `needs_approval`: with `models.promotion.require_approval: true`, a person answers under
   **Required Actions** (`approve`); a rejection skips the promotion.
3. `promote`: only a version that passed every gate becomes `challenger`; the
   `tradeops_challenger` asset then starts the deployment pipeline. A failed gate skips this
   task with which gate failed by how much (also in `tradeops models versions`).
"""

with DAG(
    dag_id="training_pipeline",
    schedule=CronTriggerTimetable("0 3 * * 0", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    tags=[CRON, "ml"],
    doc_md=DOC,
) as dag:
    train = TrainModelOperator(task_id=TRAIN_TASK, execution_timeout=timedelta(hours=2))
    needs_approval = NeedsApprovalOperator(
        task_id="needs_approval", approval_task_id="approve", promote_task_id="promote"
    )
    approve = ApprovalOperator(
        task_id="approve",
        subject="Promote model version {{ ti.xcom_pull(task_ids='train')['version'] }} to challenger?",
        body=(
            "Version {{ ti.xcom_pull(task_ids='train')['version'] }}"
            " ({{ ti.xcom_pull(task_ids='train')['chosen'] }}) passed every gate."
            " Its model card is in MLflow (run {{ ti.xcom_pull(task_ids='train')['run_id'] }})."
            " Approving makes it the challenger and starts the canary deployment."
        ),
        response_timeout=timedelta(days=2),
        ignore_downstream_trigger_rules=True,
    )
    promote = PromoteChallengerOperator(
        task_id="promote",
        approval_task_id="approve",
        outlets=[CHALLENGER_ASSET],
        trigger_rule="none_failed_min_one_success",
    )
    train >> needs_approval >> [approve, promote]
    approve >> promote
