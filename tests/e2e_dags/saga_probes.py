"""Test-only DAGs for the end-to-end suite: two-step sagas on the paper equity venue whose second
step keeps hitting temporary errors (the test arms them), so the run is still going when Airflow
ends it: by ``dagrun_timeout`` (``saga_probe_timeout``) or by a person (``saga_probe_stall``:
"Mark run as failed", or a deleted run)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from operators.saga import SagaStep, saga_chain

PLACE_ORDER = "tradeops.saga.actions.place_order"
STALLING = {"retries": 60, "retry_delay": timedelta(seconds=2), "retry_exponential_backoff": 0}

for dag_id, timeout in (("saga_probe_timeout", timedelta(seconds=40)), ("saga_probe_stall", None)):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        dagrun_timeout=timeout,
        tags=["manual", "saga"],
    ) as dag:
        saga_chain(
            [
                SagaStep(
                    "buy_tsla", PLACE_ORDER, {"venue": "alpaca", "symbol": "TSLA/USD", "side": "buy", "amount": "2"}
                ),
                SagaStep(
                    "buy_iwm",
                    PLACE_ORDER,
                    {"venue": "alpaca", "symbol": "IWM/USD", "side": "buy", "amount": "3"},
                    operator_kwargs=STALLING,
                ),
            ]
        )
    globals()[dag_id] = dag
