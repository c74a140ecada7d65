"""``trading_state_control`` on real Airflow (``dag.test()``): HALTED at once; ACTIVE and REDUCING
only after an approval under Required Actions, by another user than the requester."""

from __future__ import annotations

import pytest

from tests.dag_files import load_dag
from tests.fixtures.approval import Approver
from tradeops import risk
from tradeops.config import settings

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _run(state: str, reason: str) -> dict[str, str]:
    run = load_dag("trading_state_control").test(run_conf={"state": state, "reason": reason})
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_state_control_when_halted_asked_then_set_at_once_without_approval(db_url: str, airflow_db: object) -> None:
    states = _run("HALTED", "desk drill")

    assert states == {"route": "success", "approve": "skipped", "set_trading_state": "success"}
    current = risk.get_state()
    assert current.state is risk.TradingState.HALTED
    assert (current.reason, current.changed_by) == ("desk drill", "airflow:dag_test:trading_state_control")


@pytest.mark.parametrize("state", ["ACTIVE", "REDUCING"])
def test_state_control_when_another_user_approves_then_set_naming_approver_and_requester(
    db_url: str, airflow_db: object, state: str
) -> None:
    risk.set_state(risk.TradingState.HALTED, reason="stop-loss", changed_by="emergency_stop_loss_saga")

    with Approver("Approve", "carol") as approver:
        states = _run(state, "INC-42 resolved")

    assert approver.answered is not None, approver.errors
    assert states == {"route": "success", "approve": "success", "set_trading_state": "success"}
    current = risk.get_state()
    assert current.state is risk.TradingState(state)
    assert current.changed_by == "airflow:carol:trading_state_control"
    assert current.reason == "INC-42 resolved (requested by dag_test, approved by carol)"


def test_state_control_when_rejected_then_state_unchanged(db_url: str, airflow_db: object) -> None:
    risk.set_state(risk.TradingState.HALTED, reason="stop-loss", changed_by="emergency_stop_loss_saga")

    with Approver("Reject", "carol"):
        states = _run("ACTIVE", "let us trade")

    assert states == {"route": "success", "approve": "success", "set_trading_state": "skipped"}
    assert risk.get_state().state is risk.TradingState.HALTED
    assert [h.reason for h in risk.history(5)] == ["stop-loss"]


def test_state_control_when_requester_approves_own_request_then_refused_unless_config_allows(
    db_url: str, airflow_db: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    risk.set_state(risk.TradingState.HALTED, reason="stop-loss", changed_by="emergency_stop_loss_saga")

    with Approver("Approve", "dag_test"):
        states = _run("ACTIVE", "my own approval")

    assert states["set_trading_state"] == "failed"
    assert risk.get_state().state is risk.TradingState.HALTED

    monkeypatch.setenv("TRADEOPS__TRADING_STATE__DISTINCT_APPROVER", "false")
    settings.cache_clear()
    with Approver("Approve", "dag_test"):
        states = _run("ACTIVE", "a one-person desk")

    assert states["set_trading_state"] == "success"
    assert risk.get_state().state is risk.TradingState.ACTIVE
