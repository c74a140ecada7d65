"""The Desk's JSON API (operators/desk_api.py) in-process: login, headers, hostile text, the HALT
action. The views on top are tested in a real browser in tests/test_desk_browser.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from tradeops import risk
from tradeops.db import get_engine, transaction

HOSTILE = '<img src=x onerror=alert(1)> "quoted" & </script>'
HALT = {"X-Tradeops-Action": "halt"}


@pytest.fixture(scope="module")
def auth_manager() -> Any:
    from airflow.api_fastapi.app import init_auth_manager

    return init_auth_manager()


def _client(auth_manager: Any, role: str | None = "admin", name: str = "alice") -> TestClient:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    from operators.desk_api import create_app

    app = create_app()
    if role is not None:
        app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username=name, role=role)
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def anonymous(db_url: str, auth_manager: Any) -> Iterator[TestClient]:
    yield _client(auth_manager, role=None)


@pytest.fixture
def operator(db_url: str, auth_manager: Any) -> Iterator[TestClient]:
    yield _client(auth_manager)


READS = ["/api/state", "/api/venues", "/api/stops", "/api/dead-letters", "/api/watchers", "/api/models"]
READS += ["/api/agents", "/api/sagas", "/api/saga?dag_id=d&run_id=r", "/api/me"]


@pytest.mark.parametrize("path", READS)
def test_desk_api_when_no_session_then_401_json_never_data(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path, headers={"Accept": "application/json"})

    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert response.headers["cache-control"] == "no-store"


def test_desk_api_when_a_browser_without_session_navigates_then_sent_to_the_login_and_back(
    anonymous: TestClient,
) -> None:
    page = anonymous.get("/api/state", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})

    assert page.status_code == 303
    assert "/auth/login" in page.headers["location"]
    assert "next=http%3A%2F%2Ftestserver%2Fapi%2Fstate" in page.headers["location"]
    assert anonymous.post("/api/state/halt", json={"reason": "xyz"}).status_code == 401


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_desk_api_when_docs_asked_then_not_served_even_logged_in(operator: TestClient, path: str) -> None:
    response = operator.get(path)

    assert response.status_code == 404
    assert "swagger" not in response.text.lower() and "cdn" not in response.text.lower()


def test_desk_api_when_logged_in_then_every_read_answers_json_with_no_store(operator: TestClient) -> None:
    for path in READS:
        response = operator.get(path)
        assert response.status_code in (200, 404), (path, response.text)
        assert response.headers["content-type"].startswith("application/json"), path
        assert response.headers["cache-control"] == "no-store", path
        assert response.headers["x-content-type-options"] == "nosniff", path
    assert operator.get("/api/me").json() == {"user": "alice"}
    assert operator.get("/").headers["location"] == "../plugin/tradeops-desk"


def test_state_when_reason_is_hostile_then_returned_verbatim_as_json_data(operator: TestClient) -> None:
    risk.set_state(risk.TradingState.REDUCING, reason=HOSTILE, changed_by=f"ops {HOSTILE}")

    body = operator.get("/api/state").json()

    assert body["state"]["state"] == "REDUCING" and body["state"]["known"] is True
    assert body["state"]["reason"] == HOSTILE and body["history"][0]["changed_by"] == f"ops {HOSTILE}"


def test_state_when_an_unknown_value_is_stored_then_answered_as_unknown_not_500(operator: TestClient) -> None:
    risk.set_state(risk.TradingState.ACTIVE, reason="before", changed_by="test")
    with transaction(get_engine()) as conn:
        conn.execute(update(risk.trading_state_table).values(state="PAUSED_BY_HAND"))

    response = operator.get("/api/state")

    assert response.status_code == 200
    assert response.json()["state"]["state"] == "PAUSED_BY_HAND"
    assert response.json()["state"]["known"] is False


def test_halt_when_confirmed_then_halted_by_the_airflow_user_and_in_the_history(operator: TestClient) -> None:
    risk.set_state(risk.TradingState.ACTIVE, reason="trading", changed_by="test")

    response = operator.post("/api/state/halt", json={"reason": "  INC-9 venue down  "}, headers=HALT)

    assert response.status_code == 200, response.text
    assert response.json()["state"]["state"] == "HALTED"
    current = risk.get_state()
    assert (current.state, current.reason, current.changed_by) == (
        risk.TradingState.HALTED,
        "INC-9 venue down",
        "airflow:alice:desk",
    )
    assert [h.changed_by for h in risk.history(2)] == ["airflow:alice:desk", "test"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "detail"),
    [
        ({"reason": "INC-9"}, {}, 400, "X-Tradeops-Action: halt"),
        ({"reason": "INC-9"}, {"X-Tradeops-Action": "request"}, 400, "X-Tradeops-Action: halt"),
        ({"reason": "no"}, HALT, 400, "reason"),
        ({}, HALT, 400, "reason"),
    ],
)
def test_halt_when_header_or_reason_missing_then_refused_and_state_unchanged(
    operator: TestClient, body: dict[str, str], headers: dict[str, str], status: int, detail: str
) -> None:
    risk.set_state(risk.TradingState.ACTIVE, reason="trading", changed_by="test")

    response = operator.post("/api/state/halt", json=body, headers=headers)

    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert risk.get_state().state is risk.TradingState.ACTIVE


def test_halt_when_user_may_only_read_then_403_and_state_unchanged(db_url: str, auth_manager: Any) -> None:
    risk.set_state(risk.TradingState.ACTIVE, reason="trading", changed_by="test")
    viewer = _client(auth_manager, role="viewer", name="victor")

    assert viewer.get("/api/state").status_code == 200
    response = viewer.post("/api/state/halt", json={"reason": "just looking"}, headers=HALT)

    assert response.status_code == 403 and "trading_state_control" in response.json()["detail"]
    assert risk.get_state().state is risk.TradingState.ACTIVE


def test_request_when_state_is_not_a_loosening_one_then_400_naming_the_field(operator: TestClient) -> None:
    response = operator.post(
        "/api/state/request", json={"state": "HALTED", "reason": "use halt"}, headers={"X-Tradeops-Action": "request"}
    )

    assert response.status_code == 400 and "state" in response.json()["detail"]
