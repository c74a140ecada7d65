"""The read-only trading-desk view served by the Airflow plugin."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient

from operators.desk_api import create_app
from tradeops import risk
from tradeops.saga import ledger


def _client(authenticated: bool) -> TestClient:
    app = create_app()
    if authenticated:
        from airflow.api_fastapi.core_api.security import get_user

        app.dependency_overrides[get_user] = lambda: object()
    return TestClient(app)


def test_desk_when_not_logged_in_then_refused(db_url: str) -> None:
    response = _client(authenticated=False).get("/api/desk")
    assert response.status_code in (401, 403)


def test_desk_when_logged_in_then_shows_state_breakers_and_sagas(db_url: str) -> None:
    risk.set_state(risk.TradingState.HALTED, reason="drill <b>", changed_by="test")
    ledger.record(
        dag_id="d",
        run_id="r-1",
        task_id="t",
        map_index=-1,
        step="t",
        kind="action",
        outcome="succeeded",
        idempotency_key="k",
        detail={"amount": Decimal("1.5")},
    )
    client = _client(authenticated=True)

    desk = client.get("/api/desk").json()
    page = client.get("/")

    assert desk["trading_state"]["state"] == "HALTED"
    assert desk["recent_sagas"][0]["run_id"] == "r-1" and desk["recent_sagas"][0]["steps_succeeded"] == 1
    assert page.status_code == 200 and "HALTED" in page.text
    assert "drill &lt;b&gt;" in page.text  # escaped, never raw HTML
    assert client.get("/api/sagas/r-1").json()[0]["detail"] == {"amount": "1.5"}
    assert client.get("/api/sagas/missing").status_code == 404

