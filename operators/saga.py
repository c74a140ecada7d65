"""Airflow-native saga building blocks.

- ``SagaStepOperator``: one money-moving step. Before acting it writes its intent (key, action,
  parameters, undo) to the saga ledger in the project database (a copy goes to XCom, key
  ``compensation``, for the UI); its idempotency key comes from (dag_id, run_id, task_id,
  map_index). A step of a compensated saga refuses to act; so does a key recorded with other
  parameters. Temporary venue errors retry with exponential backoff; invalid orders and
  insufficient funds fail at once; operational errors fail at once and HALT trading.
- ``CompensateOperator``: ends each saga. When a step failed it runs the undos recorded in the
  ledger in reverse step order, carries on past an undo that fails, and then fails, so the run
  ends FAILED. When every step succeeded it is skipped. Runs that Airflow ends without it (a
  timeout, "Mark run as failed", a deleted run) are compensated by ``saga_recovery``.
- ``saga_chain``: wires steps + compensate in a DAG file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context, ExceptionRetryPolicy, RetryAction, RetryRule, TriggerRule
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSkipException,
)

from tradeops.config import settings
from tradeops.errors import IdempotencyKeyReusedError, RunEndedError, SagaClosedError
from tradeops.saga import store
from tradeops.saga.core import (
    CompensationReport,
    StepRef,
    compensate_run,
    compensation_record,
    escalate,
    resolve_action,
    run_action,
)

COMPENSATION_XCOM_KEY = "compensation"

SAGA_RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception="tradeops.errors.TemporaryVenueError",
            action=RetryAction.RETRY,
            reason="temporary venue error: retry with exponential backoff",
        ),
    ],
    default=RetryAction.FAIL,
)

_STEP_DEFAULTS: dict[str, Any] = {
    "retries": 4,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=2),
    "retry_policy": SAGA_RETRY_POLICY,
}

_FAILED_STATES = {"failed", "upstream_failed"}
_DONE_STATES = {"success", "skipped"}
_ORDER_POLL = timedelta(seconds=2)
_SETTLE_POLL = timedelta(seconds=30)
_SETTLE_RECHECK = timedelta(seconds=2)


class SagaStepOperator(BaseOperator):
    """Run one saga step: ``action`` is the dotted path of a ``@saga_step`` function.

    :param action: e.g. ``tradeops.saga.actions.place_order``
    :param step_params: the action's parameters (templated; may be an XComArg or mapped)
    :param step_index: the step's position in its saga (compensation runs in reverse of it)
    """

    template_fields = ("step_params",)
    ui_color = "#d6eaff"

    def __init__(
        self, *, action: str, step_params: dict[str, Any] | None = None, step_index: int, **kwargs: Any
    ) -> None:
        for name, value in _STEP_DEFAULTS.items():
            kwargs.setdefault(name, value)
        super().__init__(**kwargs)
        if step_index < 0:
            raise ValueError("step_index must be >= 0")
        self.action = action
        self.step_params = step_params or {}
        self.step_index = step_index

    def _wait_for_earlier_steps(self, context: Context) -> None:
        """Mapped steps run strictly in map-index order: wait while an earlier one is unfinished,
        and stop the saga's forward progress (skip) once an earlier one failed."""
        ti = context["ti"]
        if ti.map_index <= 0:
            return
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id]).get(ti.run_id, {})
        earlier = [str(states.get(f"{ti.task_id}_{index}")) for index in range(ti.map_index)]
        if any(state in _FAILED_STATES for state in earlier):
            raise AirflowSkipException("an earlier step of this saga failed: not acting; compensation follows")
        if any(state not in _DONE_STATES for state in earlier):
            raise AirflowRescheduleException(datetime.now(UTC) + _ORDER_POLL)

    def execute(self, context: Context) -> dict[str, Any]:
        from operators import credentials

        self._wait_for_earlier_steps(context)
        credentials.install()
        ti = context["ti"]
        ref = StepRef(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=ti.map_index,
            try_number=ti.try_number,
        )
        record = compensation_record(
            ref,
            step=self.task_id,
            step_index=self.step_index,
            action=self.action,
            params=dict(self.step_params),
        )
        ti.xcom_push(key=COMPENSATION_XCOM_KEY, value=record.to_dict())  # a copy for the UI
        self.log.info("Saga step %s (key %s): %s", self.task_id, record.idempotency_key, self.action)
        try:
            return dict(run_action(record, try_number=ti.try_number, run_ended=lambda: _run_ended(ti)))
        except (SagaClosedError, IdempotencyKeyReusedError, RunEndedError) as exc:
            raise AirflowFailException(str(exc)) from exc


def _run_ended(ti: Any) -> str | None:
    """Why this task's run is over (timed out, marked failed, deleted), or None while it runs.
    A state that cannot be read counts as over: not acting is the safe side."""
    try:
        state = ti.get_dagrun_state(dag_id=ti.dag_id, run_id=ti.run_id)
    except Exception as exc:
        return f"the run's state could not be read ({type(exc).__name__}: {exc})"
    return None if state == "running" else f"the run is already {getattr(state, 'value', state)}"


class CompensateOperator(BaseOperator):
    """Undo the completed steps of a failed saga in reverse order, then fail the run.

    The steps to undo come from the saga ledger in the project database, not from XCom. An undo
    waiting for a transfer to settle reschedules this task (no worker slot is held) until the
    transfer's settlement window plus ``saga.settle_margin_seconds`` has passed; an undo whose
    outcome is unknown or that hits a temporary error is retried; what still cannot be settled
    after the retries HALTs trading and is handed to a human.
    """

    ui_color = "#ffd6d6"

    def __init__(self, *, step_task_ids: Sequence[str], **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=30))
        kwargs.setdefault("retry_exponential_backoff", 2.0)
        super().__init__(**kwargs)
        if not step_task_ids:
            raise ValueError("a saga needs at least one step")
        self.step_task_ids = list(step_task_ids)

    def _failed_steps(self, context: Context) -> list[str]:
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=self.step_task_ids, run_ids=[ti.run_id])
        per_task = states.get(ti.run_id, {})
        return sorted(task for task, state in per_task.items() if str(state) in _FAILED_STATES)

    def execute(self, context: Context) -> None:
        from operators import credentials

        ti = context["ti"]
        by = f"airflow:{ti.dag_id}/{ti.task_id}"
        failed = self._failed_steps(context)
        if not failed:
            store.mark_completed(ti.dag_id, ti.run_id, by=by)
            raise AirflowSkipException("every saga step succeeded: nothing to compensate")
        credentials.install()
        self.log.warning("Saga failed at %s; compensating the steps recorded in the saga ledger", failed)
        report = compensate_run(
            ti.dag_id, ti.run_id, by=by, reason=f"step(s) {failed} failed", try_number=ti.try_number
        )
        if report.already_closed is not None:
            closed = report.already_closed
            raise AirflowFailException(
                f"saga failed at {failed}; it was already {closed.status} by {closed.closed_by} "
                f"({closed.close_reason}): nothing is undone twice. Trigger a new run to try again"
            )
        self.log.warning("Compensation: %s", report.summary())
        if report.waiting and not report.unknown and not report.temporary:
            self._wait_for_settlement(ti, report, by)
        if report.pending:
            if ti.try_number <= self.retries:
                raise AirflowException(f"compensation not finished, will be retried: {report.summary()}")
            why = f"undos still unsettled after {ti.try_number} tries"
            message = escalate(ti.dag_id, ti.run_id, report, by=by, why=why)
            raise AirflowFailException(message)
        summary = f"saga failed at {failed}; {report.summary()}"
        if report.failed:
            message = escalate(ti.dag_id, ti.run_id, report, by=by, why="an undo failed")
            raise AirflowFailException(f"{summary}; UNDO FAILED (needs a human): {message}")
        raise AirflowFailException(summary)

    def _wait_for_settlement(self, ti: Any, report: CompensationReport, by: str) -> None:
        """Reschedule while the transfers being undone can still be on their way: look again when
        they are due (at least every _SETTLE_POLL), and hand over to a human past the deadline.
        Without a due time it returns, and the task's retries bound the wait instead."""
        deadline = report.settlement_deadline(timedelta(seconds=settings().saga.settle_margin_seconds))
        due = report.due()
        if deadline is None or due is None:
            return
        now = datetime.now(UTC)
        if now < deadline:
            self.log.info("Waiting for settlement until at most %s: %s", deadline.isoformat(), report.waiting)
            raise AirflowRescheduleException(min(deadline, max(due, now + _SETTLE_RECHECK), now + _SETTLE_POLL))
        message = escalate(ti.dag_id, ti.run_id, report, by=by, why=f"transfers not settled by {deadline.isoformat()}")
        raise AirflowFailException(message)


@dataclass(frozen=True)
class SagaStep:
    """A step for ``saga_chain``: a task id, a ``@saga_step`` action and its parameters."""

    task_id: str
    action: str
    params: dict[str, Any] | Any = field(default_factory=dict)
    operator_kwargs: dict[str, Any] = field(default_factory=dict)


def saga_chain(
    steps: Sequence[SagaStep], *, compensate_task_id: str = "compensate"
) -> tuple[list[BaseOperator], CompensateOperator]:
    """Create the step tasks in order and the compensate task that ends the saga.

    Must be called inside a DAG context. Returns (step tasks, compensate task).
    """
    if not steps:
        raise ValueError("a saga needs at least one step")
    tasks: list[BaseOperator] = []
    for index, step in enumerate(steps):
        resolve_action(step.action)  # fail at parse time on a typo, before any money moves
        task = SagaStepOperator(
            task_id=step.task_id,
            action=step.action,
            step_params=step.params,
            step_index=index,
            **step.operator_kwargs,
        )
        if tasks:
            tasks[-1] >> task
        tasks.append(task)
    compensate_task = CompensateOperator(task_id=compensate_task_id, step_task_ids=[s.task_id for s in steps])
    tasks >> compensate_task
    return tasks, compensate_task


def mapped_saga(
    task_id: str,
    action: str,
    step_params: Any,
    *,
    compensate_task_id: str = "compensate",
    **operator_kwargs: Any,
) -> tuple[Any, CompensateOperator]:
    """One saga step mapped over a runtime list of parameters (an XComArg), plus compensate.

    The mapped steps run one at a time in map-index order (``max_active_tis_per_dagrun=1``, and a
    step waits while an earlier one is unfinished), so the list's order is the execution order;
    after a failure the later steps are skipped and compensation undoes the completed ones in
    reverse map-index order.
    An empty list maps to no step: the saga is skipped, nothing to compensate.
    """
    resolve_action(action)
    operator_kwargs.setdefault("max_active_tis_per_dagrun", 1)
    # .partial() never runs SagaStepOperator.__init__, so its retry defaults are set here.
    for name, value in _STEP_DEFAULTS.items():
        operator_kwargs.setdefault(name, value)
    steps = SagaStepOperator.partial(task_id=task_id, action=action, step_index=0, **operator_kwargs).expand(
        step_params=step_params
    )
    compensate_task = CompensateOperator(task_id=compensate_task_id, step_task_ids=[task_id])
    steps >> compensate_task
    return steps, compensate_task
