"""Recovery: compensate the sagas that Airflow ended without compensating.

``dagrun_timeout``, "Mark run as failed" and a run deleted from the UI all end a run without its
``compensate`` task doing its work (Airflow sets it SKIPPED, or removes it). The saga ledger
still knows which steps may have moved money, so a recovery pass (the ``saga_recovery`` DAG,
every minute) looks at every saga that is open or mid-compensation, asks Airflow how its run
ended, and:

- run FAILED or gone: compensates it from the ledger, recording who compensated and why;
- run SUCCESS: every step acted means the saga is complete; a step that did not (somebody
  marked the run successful by hand) is handed to a human, nothing is moved;
- run still going: left alone (its own ``compensate`` task will run).

An undo that waits for a transfer to settle is taken up again by the next pass, until the
settlement window plus ``saga.settle_margin_seconds``; an undo whose outcome stays unknown for
``UNKNOWN_PASSES`` passes, or a transfer that never settles, HALTs trading and goes to a human.
Leases held by a compensated run (the rebalance lease) are released only then.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import timedelta

from tradeops import leases
from tradeops.config import settings as load_settings
from tradeops.db import utcnow
from tradeops.saga import ledger, store
from tradeops.saga.core import CompensationReport, compensate_run, escalate

log = logging.getLogger(__name__)

UNKNOWN_PASSES = 3


class RunOutcome(enum.StrEnum):
    """How Airflow says a saga's run stands."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    MISSING = "missing"  # no such run any more (deleted)


def run_outcome(state: str | None) -> RunOutcome:
    """Airflow's DagRun state (``None`` when the run does not exist) as a ``RunOutcome``."""
    if state is None:
        return RunOutcome.MISSING
    if state == "success":
        return RunOutcome.SUCCESS
    if state == "failed":
        return RunOutcome.FAILED
    return RunOutcome.RUNNING


class Verdict(enum.StrEnum):
    LEFT_RUNNING = "left_running"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    IN_PROGRESS = "in_progress"  # some undo waits or will be retried by the next pass
    NEEDS_HUMAN = "needs_human"


@dataclass(frozen=True)
class Recovery:
    dag_id: str
    run_id: str
    outcome: RunOutcome
    verdict: Verdict
    detail: str


def _unknown_passes(dag_id: str, run_id: str) -> int:
    return sum(1 for e in ledger.entries(run_id, dag_id) if e.kind == "undo" and e.outcome == "unknown")


def _settlement_deadline_passed(report: CompensationReport, dag_id: str, run_id: str) -> bool:
    """Past the transfers' due time plus the margin; when none says when it is due, once the
    passes that waited (one a minute) have used up the margin."""
    margin = load_settings().saga.settle_margin_seconds
    deadline = report.settlement_deadline(timedelta(seconds=margin))
    if deadline is None:
        waited = sum(1 for e in ledger.entries(run_id, dag_id) if e.kind == "undo" and e.outcome == "waiting")
        return waited * 60 > margin
    return utcnow() > deadline


def _compensate(saga: store.SagaRun, outcome: RunOutcome, by: str) -> Recovery:
    why = "the run was deleted" if outcome is RunOutcome.MISSING else "the run ended FAILED without compensating"
    report = compensate_run(saga.dag_id, saga.run_id, by=by, reason=f"saga recovery: {why}")

    def result(verdict: Verdict, detail: str) -> Recovery:
        return Recovery(saga.dag_id, saga.run_id, outcome, verdict, detail)

    if report.already_closed is not None:
        return result(Verdict(report.already_closed.status.value), "already closed")
    if report.unknown and _unknown_passes(saga.dag_id, saga.run_id) >= UNKNOWN_PASSES:
        return result(Verdict.NEEDS_HUMAN, escalate(saga.dag_id, saga.run_id, report, by=by, why="outcome unknown"))
    if report.waiting and _settlement_deadline_passed(report, saga.dag_id, saga.run_id):
        message = escalate(saga.dag_id, saga.run_id, report, by=by, why="transfers not settled in their window")
        return result(Verdict.NEEDS_HUMAN, message)
    if report.pending:
        return result(Verdict.IN_PROGRESS, report.summary())
    if report.failed:
        return result(Verdict.NEEDS_HUMAN, escalate(saga.dag_id, saga.run_id, report, by=by, why="an undo failed"))
    released = leases.release_held(f"{saga.dag_id}/{saga.run_id}", "")  # every lease the run holds
    detail = report.summary() + (f"; released leases {released}" if released else "")
    return result(Verdict.COMPENSATED, detail)


def _succeeded(saga: store.SagaRun, by: str) -> Recovery:
    rows = store.steps(saga.dag_id, saga.run_id)
    unfinished = [row.task_id for row in rows if row.status is not store.StepStatus.ACTED]
    if not unfinished:
        store.mark_completed(saga.dag_id, saga.run_id, by=by)
        return Recovery(saga.dag_id, saga.run_id, RunOutcome.SUCCESS, Verdict.COMPLETED, "every step acted")
    message = (
        f"run {saga.dag_id}/{saga.run_id} is SUCCESS but steps {unfinished} did not complete "
        "(marked successful by hand?): nothing is undone automatically, check the venues"
    )
    store.finish_compensation(saga.dag_id, saga.run_id, store.SagaStatus.NEEDS_HUMAN, by=by, reason=message)
    return Recovery(saga.dag_id, saga.run_id, RunOutcome.SUCCESS, Verdict.NEEDS_HUMAN, message)


def recover(saga: store.SagaRun, airflow_state: str | None, *, by: str) -> Recovery:
    """Bring one unfinished saga to its end, given its run's Airflow state (None: no such run)."""
    outcome = run_outcome(airflow_state)
    if outcome is RunOutcome.RUNNING:
        return Recovery(saga.dag_id, saga.run_id, outcome, Verdict.LEFT_RUNNING, f"run is {airflow_state}")
    if outcome is RunOutcome.SUCCESS:
        return _succeeded(saga, by)
    return _compensate(saga, outcome, by)
