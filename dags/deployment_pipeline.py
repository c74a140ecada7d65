"""Deploy a challenger: pre-deploy checks, blue/green shadow replay, per-instrument canary, finalize."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from operators.deployment import (
    RESOLVE_TASK,
    CanaryOperator,
    FinalizeOperator,
    PreDeployOperator,
    ResolveReleaseOperator,
    ShadowReplayOperator,
)
from operators.models import CHALLENGER_ASSET
from operators.tags import EVENT_TRIGGERED

DOC = """
### Deployment pipeline (on a new challenger, or manually)

Starts when the training pipeline promotes a version to `challenger` (the `tradeops_challenger`
asset), or by hand with `conf {"version": "N"}`. Blue is the champion, green the new version.

1. `resolve`: green and blue; a `model_deployment` event says the rollout started.
2. `pre_deploy`: green loads from the registry, predicts on the latest stored features (finite,
   in [0, 1]), and the requirements it was logged with match this environment.
3. `shadow_replay`: the last `models.deployment.shadow_days` stored days through both: at least
   `min_valid_share` valid predictions, p99 single-prediction latency at most `max_p99_ms`, and
   green's per-bar PnL never worse than blue's on identical bars.
4. `canary`: `canary_stages` of the universe (most liquid, least volatile first) are routed to
   green; each window is waited out deferred. A stage passes on the logged live predictions:
   error rate, p99 latency and a paired PnL test against the champion on the same bars. Thin
   evidence extends the window up to `max_window_factor`, then **holds** (the task fails with the
   reason, routing stays: decide with `tradeops models rollback` or clear the task).
5. `finalize`: `champion` -> green everywhere, `previous` -> blue (for `tradeops models rollback`).

Any breach rolls back at once: every instrument on the champion, `challenger` removed, the
reason recorded (`tradeops models history`) and published (`model-events`).
"""

with DAG(
    dag_id="deployment_pipeline",
    schedule=[CHALLENGER_ASSET],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=24),
    tags=[EVENT_TRIGGERED, "ml", "deployment"],
    doc_md=DOC,
) as dag:
    resolve = ResolveReleaseOperator(task_id=RESOLVE_TASK)
    pre_deploy = PreDeployOperator(task_id="pre_deploy")
    shadow = ShadowReplayOperator(task_id="shadow_replay")
    canary = CanaryOperator(task_id="canary")
    finalize = FinalizeOperator(task_id="finalize")
    resolve >> pre_deploy >> shadow >> canary >> finalize
