"""Saga fire drill on the paper venue: a 3-step money-moving saga with an optional injected fault."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from operators.drill import DRILL_ERRORS, UNDO_FILLS, ArmDrillOperator
from operators.saga import SagaStep, saga_chain

DOC = """
### Saga fire drill (paper venue only)

Runs a 3-step saga on the **paper** venue and, on request, makes one step fail, so an operator can
see compensation work end to end in this deployment:

1. `move_usdt`: withdraw USDT from okx to binance (TRC20)
2. `buy_spot`: buy BTC on binance
3. `hedge_perp`: short the BTC perpetual on bybit

`compensate` then undoes the completed steps in reverse order and the run ends **FAILED**
(the expected outcome of a drill with a fault). Reversing the transfer waits for it to settle
(TRC20: 60 s on the paper venue), so `compensate` may retry before it finishes.

Trigger: `airflow dags trigger saga_drill --conf '{"fail_at": "hedge_perp", "error": "insufficient_funds"}'`
Inspect: `tradeops saga show <run_id>` and `tradeops venue balances`.
`error: operational` also sets the trading state to HALTED: reset it with `tradeops state set ACTIVE --reason ...`.
`undo_fill: expire` (or `partial`, `reject`) with `undo_fill_times: N` makes the venue end the next
N orders that trade the spot buy back that way: compensation tries again (up to 5 reverse orders)
and reports "undone" only when the fills add up; after 5 it HALTs and names what is left.
The drill refuses to run if any of its venues is configured as a live venue.
"""

STEP_CALLS = {
    "move_usdt": ("okx", "withdraw"),
    "buy_spot": ("binance", "place_order"),
    "hedge_perp": ("bybit", "place_order"),
}

with DAG(
    dag_id="saga_drill",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["manual", "drill", "saga"],
    doc_md=DOC,
    params={
        "fail_at": Param("none", enum=["none", *STEP_CALLS], description="the step to fail"),
        "error": Param("insufficient_funds", enum=list(DRILL_ERRORS), description="the error the step hits"),
        "phase": Param("before", enum=["before", "after"], description="fail before the call acts, or after"),
        "undo_fill": Param(
            "normal", enum=list(UNDO_FILLS), description="how the orders trading back the spot buy end (compensation)"
        ),
        "undo_fill_times": Param(1, type="integer", minimum=1, maximum=10, description="how many of them end so"),
        "usdt_amount": Param("20000", type="string", description="USDT moved okx -> binance"),
        "btc_amount": Param("0.2", type="string", description="BTC bought and hedged"),
    },
) as dag:
    arm = ArmDrillOperator(
        task_id="arm_drill",
        step_calls=STEP_CALLS,
        fail_at="{{ params.fail_at }}",
        error="{{ params.error }}",
        phase="{{ params.phase }}",
        undo_fill="{{ params.undo_fill }}",
        undo_fill_times="{{ params.undo_fill_times }}",
    )
    steps, _compensate = saga_chain(
        [
            SagaStep(
                "move_usdt",
                "tradeops.saga.actions.withdraw",
                {
                    "venue": "okx",
                    "asset": "USDT",
                    "amount": "{{ params.usdt_amount }}",
                    "to_venue": "binance",
                    "network": "TRC20",
                },
            ),
            SagaStep(
                "buy_spot",
                "tradeops.saga.actions.place_order",
                {
                    "venue": "binance",
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "amount": "{{ params.btc_amount }}",
                },
            ),
            SagaStep(
                "hedge_perp",
                "tradeops.saga.actions.place_order",
                {
                    "venue": "bybit",
                    "symbol": "BTC/USDT:USDT",
                    "side": "sell",
                    "amount": "{{ params.btc_amount }}",
                },
            ),
        ]
    )
    arm >> steps[0]
