"""Model tasks: the Airflow side of ``tradeops.models`` (the logic lives there).

Training returns a small JSON summary (version, gates, what failed by how much); promotion moves
the ``challenger`` alias and emits the ``tradeops_challenger`` asset event the deployment
pipeline is scheduled on. Nothing here carries a model or data through XCom.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk import Asset, BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from operators.market_data import store_root
from tradeops.config import settings

log = logging.getLogger(__name__)

# One event per model that passed every gate (and its approval): the deployment follows it.
CHALLENGER_ASSET = Asset(name="tradeops_challenger", uri="tradeops://models/challenger")
TRAIN_TASK = "train"


def training_before(context: Context) -> date:
    """The run trains on the days before this one: ``conf["before"]`` or the run's logical date
    (a Sunday 03:00 run reads through Saturday, stored at 02:00). Never the wall clock."""
    dag_run = context["dag_run"]
    configured = (dag_run.conf or {}).get("before")
    if configured:
        try:
            return date.fromisoformat(str(configured)[:10])
        except ValueError as exc:
            raise ValueError(f"conf 'before' {configured!r} is not a YYYY-MM-DD day") from exc
    logical = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    if logical is None:
        raise ValueError("this run has no logical date and no conf 'before': which days does it train on?")
    return logical.astimezone(UTC).date()


class TrainModelOperator(BaseOperator):
    """Train, evaluate, log to MLflow and register one model version; judge the gates.

    A failed gate is a result, not an error: the task succeeds, says which gate failed by how
    much, and promotion is skipped. Too little data skips the task with the reason."""

    ui_color = "#ece3f5"

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.models.dataset import NotEnoughData
        from tradeops.models.training_run import run_training

        loaded = settings()
        try:
            outcome = run_training(loaded, training_before(context), root=store_root(loaded))
        except NotEnoughData as exc:
            raise AirflowSkipException(f"not trained: {exc}") from exc
        return outcome.to_dict()


class PromoteChallengerOperator(BaseOperator):
    """Point the ``challenger`` alias at the trained version when every gate passed (and, when
    ``models.promotion.require_approval``, a person approved); else skip with the reason."""

    ui_color = "#ece3f5"

    def __init__(self, *, approval_task_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.approval_task_id = approval_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.models.training_run import promote

        outcome = context["ti"].xcom_pull(task_ids=TRAIN_TASK)
        if not outcome:
            raise AirflowSkipException("nothing was trained in this run")
        if not outcome["passed"]:
            raise AirflowSkipException(f"version {outcome['version']} failed gates: " + "; ".join(outcome["failed"]))
        actor, reason = self._who(context, outcome)
        promote(settings(), outcome["version"], actor=actor, reason=reason)
        context["outlet_events"][CHALLENGER_ASSET].extra = {"version": outcome["version"]}
        return {"challenger": outcome["version"], "actor": actor, "at": datetime.now(UTC).isoformat()}

    def _who(self, context: Context, outcome: dict[str, Any]) -> tuple[str, str]:
        dag_run = context["dag_run"]
        reason = f"passed every gate (run {dag_run.run_id})"
        if self.approval_task_id:
            answer = context["ti"].xcom_pull(task_ids=self.approval_task_id)
            if answer:
                user = answer.get("responded_by_user") or {}
                name = user.get("name") or user.get("id") or "unknown approver"
                return str(name), f"{reason}; approved in the Airflow UI"
        return "training_pipeline", reason


class NeedsApprovalOperator(BaseBranchOperator):
    """Branch: to the approval step when ``models.promotion.require_approval``, else straight to
    promotion (read at run time, so changing the config needs no DAG change)."""

    def __init__(self, *, approval_task_id: str, promote_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.approval_task_id = approval_task_id
        self.promote_task_id = promote_task_id

    def choose_branch(self, context: Context) -> str:
        outcome = context["ti"].xcom_pull(task_ids=TRAIN_TASK)
        if not outcome or not outcome["passed"]:
            return self.promote_task_id  # promotion skips itself with the reason
        return self.approval_task_id if settings().models.promotion.require_approval else self.promote_task_id
