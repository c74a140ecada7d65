"""The recovery task: compensate every saga whose run Airflow ended without compensating it."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from tradeops.saga import store
from tradeops.saga.recovery import Recovery, Verdict, recover


def airflow_run_state(ti: Any, dag_id: str, run_id: str) -> str | None:
    """The DagRun's state as Airflow reports it, or None when there is no such run (deleted)."""
    if not ti.get_dr_count(dag_id=dag_id, run_ids=[run_id]):
        return None
    state = ti.get_dagrun_state(dag_id=dag_id, run_id=run_id)
    return str(getattr(state, "value", state))  # a DagRunState enum, or its value


class SagaRecoveryOperator(BaseOperator):
    """Look at every open saga in the ledger; compensate those whose run failed or is gone.

    Fails (so the run shows red) when a saga had to be handed to a human this pass; every saga
    it looked at is in the log and in the returned list.
    """

    def execute(self, context: Context) -> list[dict[str, str]]:
        from operators import credentials

        credentials.install()
        ti = context["ti"]
        results: list[Recovery] = []
        for saga in store.unfinished_runs():
            if saga.dag_id == ti.dag_id:
                continue
            state = airflow_run_state(ti, saga.dag_id, saga.run_id)
            result = recover(saga, state, by=f"airflow:{ti.dag_id}")
            self.log.warning(
                "Saga %s/%s (run %s, saga %s): %s - %s",
                saga.dag_id,
                saga.run_id,
                result.outcome.value,
                saga.status.value,
                result.verdict.value,
                result.detail,
            )
            results.append(result)
        handed_over = [r for r in results if r.verdict is Verdict.NEEDS_HUMAN]
        if handed_over:
            raise AirflowFailException(
                "sagas handed to a human: " + "; ".join(f"{r.dag_id}/{r.run_id}: {r.detail}" for r in handed_over)
            )
        return [
            {"dag_id": r.dag_id, "run_id": r.run_id, "outcome": r.outcome.value, "verdict": r.verdict.value}
            for r in results
        ]
