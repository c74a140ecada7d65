"""The trading desk's JSON API, mounted under ``/tradeops`` in the Airflow API server by
``plugins/tradeops_plugin.py``; the React views in the Airflow UI (ui/) read it.

- Every route needs an Airflow login (the UI's session cookie or a bearer token). A browser
  without a session asking for a page is sent to the login; an API call gets 401 JSON.
- Every response carries ``Cache-Control: no-store``; there are no docs or OpenAPI pages.
- Reads are one ``tradeops.desk`` function per section (docs of the bodies: the functions).
- Two actions, both audited in the state history with the Airflow user's name:
  ``POST api/state/halt`` (the safe direction, applied at once) and ``POST api/state/request``
  (ACTIVE or REDUCING: triggers ``trading_state_control``, which waits for an approval under
  Required Actions). Both need the ``X-Tradeops-Action`` header, which a cross-site form cannot
  send, and the right to trigger that DAG.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from tradeops import risk
from tradeops.config import settings
from tradeops.desk import state as desk_state

# Module level: the routes' annotations are strings (PEP 563) that FastAPI resolves here.
User = Annotated[Any, Depends(get_user)]
Action = Annotated[str | None, Header(alias="X-Tradeops-Action")]

STATE_DAG = "trading_state_control"
DESK_PAGE = "plugin/tradeops-desk"
ACTION_HEADER = "X-Tradeops-Action"


def _authenticated() -> Any:
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return Depends(requires_authenticated())


class HaltRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


class StateRequest(BaseModel):
    state: Literal["ACTIVE", "REDUCING"]
    reason: str = Field(min_length=3, max_length=500)


def _wants_page(request: Request) -> bool:
    """A browser navigating (not the views' fetch calls, which ask for JSON)."""
    accept = request.headers.get("accept", "")
    return request.method == "GET" and "text/html" in accept and "application/json" not in accept


def _login_url(request: Request) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    login = get_auth_manager().get_url_login()
    return f"{login}?{urlencode({'next': str(request.url)})}"


def _user_name(user: Any) -> str:
    name = str(user.get_name() or user.get_id() or "").strip()
    if not name:
        raise HTTPException(status_code=403, detail="the Airflow user has no name: refused")
    return name


def _require_trigger_right(user: Any) -> None:
    """The right to trigger ``trading_state_control`` (viewers can read the desk, not act)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    allowed = get_auth_manager().is_authorized_dag(
        method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=STATE_DAG), user=user
    )
    if not allowed:
        raise HTTPException(status_code=403, detail=f"you may not trigger {STATE_DAG}: ask an operator")


def _require_action(value: str | None, expected: str) -> None:
    if value != expected:
        raise HTTPException(status_code=400, detail=f"the {ACTION_HEADER}: {expected} header is required")


def trigger_state_request(state: str, reason: str, user_name: str) -> dict[str, str]:
    """Trigger ``trading_state_control`` for ``user_name``; 409 when the DAG cannot run now."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound
    from airflow.models.dag import DagModel
    from airflow.utils.types import DagRunTriggeredByType

    model = DagModel.get_current(STATE_DAG)
    if model is None:
        raise HTTPException(status_code=409, detail=f"{STATE_DAG} is not loaded: check the DAG import errors")
    if model.is_paused:
        raise HTTPException(status_code=409, detail=f"{STATE_DAG} is paused: unpause it first")
    try:
        run = trigger_dag(
            STATE_DAG,
            triggered_by=DagRunTriggeredByType.UI,
            triggering_user_name=user_name,
            conf={"state": state, "reason": reason},
            note=f"requested on the Desk by {user_name}",
        )
    except DagNotFound as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    if run is None:
        raise HTTPException(status_code=409, detail=f"{STATE_DAG} did not start a run")
    return {"dag_id": STATE_DAG, "run_id": run.run_id, "url": f"dags/{STATE_DAG}/runs/{run.run_id}"}


def _read_routes(app: FastAPI) -> None:
    from operators import credentials
    from tradeops.desk import agents, letters, models, sagas, state, stops, venues, watchers

    credentials.install()  # a live venue's balances need its Airflow connection, as in the tasks

    @app.get("/api/state")
    def state_body() -> dict[str, Any]:
        return state.snapshot(limit=20)

    @app.get("/api/venues")
    def venues_body() -> dict[str, Any]:
        return venues.snapshot(settings(), timeout_seconds=5)

    @app.get("/api/stops")
    def stops_body(limit: int = Query(5, ge=1, le=50)) -> dict[str, Any]:
        return stops.snapshot(limit)

    @app.get("/api/dead-letters")
    def letters_body(
        topic: str | None = Query(None, max_length=250),
        q: str | None = Query(None, max_length=200),
        limit: int = Query(50, ge=1, le=500),
    ) -> dict[str, Any]:
        return letters.snapshot(topic or None, q or None, limit)

    @app.get("/api/watchers")
    def watchers_body() -> dict[str, Any]:
        return watchers.snapshot(settings(), timeout_seconds=3)

    @app.get("/api/models")
    def models_body() -> dict[str, Any]:
        return models.snapshot(settings())

    @app.get("/api/agents")
    def agents_body() -> dict[str, Any]:
        return agents.snapshot(settings())

    @app.get("/api/sagas")
    def sagas_body(limit: int = Query(30, ge=1, le=200)) -> dict[str, Any]:
        return sagas.recent(limit)

    @app.get("/api/saga")
    def saga_body(dag_id: str = Query(..., max_length=250), run_id: str = Query(..., max_length=250)) -> Any:
        body = sagas.run(dag_id, run_id)
        if body is None:
            raise HTTPException(status_code=404, detail=f"no saga ledger entry for run '{run_id}' of '{dag_id}'")
        return body


def _action_routes(app: FastAPI) -> None:
    @app.get("/api/me")
    def me(user: User) -> dict[str, str]:
        return {"user": _user_name(user)}

    @app.post("/api/state/halt")
    def halt(
        body: HaltRequest,
        user: User,
        action: Action = None,
    ) -> dict[str, Any]:
        _require_action(action, "halt")
        _require_trigger_right(user)
        name = _user_name(user)
        record = risk.set_state(risk.TradingState.HALTED, reason=body.reason.strip(), changed_by=f"airflow:{name}:desk")
        return {"state": desk_state.record_of(record)}

    @app.post("/api/state/request")
    def request_state(
        body: StateRequest,
        user: User,
        action: Action = None,
    ) -> dict[str, str]:
        _require_action(action, "request")
        _require_trigger_right(user)
        return trigger_state_request(body.state, body.reason.strip(), _user_name(user))


def create_app() -> FastAPI:
    app = FastAPI(
        title="tradeops desk",
        dependencies=[_authenticated()],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.middleware("http")
    async def no_store(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.exception_handler(HTTPException)
    async def login_or_json(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (401, 403) and _wants_page(request) and "Authorization" not in request.headers:
            return RedirectResponse(_login_url(request), status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(problems)}, status_code=400)

    @app.get("/")
    def desk_page() -> RedirectResponse:
        return RedirectResponse(f"../{DESK_PAGE}", status_code=307)

    _read_routes(app)
    _action_routes(app)
    return app
