"""A read-only "trading desk" view mounted in the Airflow API server by ``plugins/tradeops_plugin.py``.

Shows what an on-call engineer needs first: the trading state and its history, the venues'
circuit breakers and the recent saga runs. Every route requires an authenticated Airflow user
(the Airflow session cookie or a bearer token). Nothing here changes state: changes go through
the ``trading_state_control`` DAG or the ``tradeops`` CLI, which keep an audit trail.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from tradeops import risk
from tradeops.model import to_jsonable
from tradeops.saga import breaker, ledger


def _authenticated() -> Any:
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return Depends(requires_authenticated())


def desk_snapshot() -> dict[str, Any]:
    return {
        "trading_state": to_jsonable(risk.get_state()),
        "history": to_jsonable(risk.history(10)),
        "breakers": to_jsonable(breaker.all_statuses()),
        "recent_sagas": to_jsonable(ledger.recent_runs(20)),
    }


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or '<tr><td>none</td></tr>'}</tbody></table>"


def render_desk(snapshot: dict[str, Any]) -> str:
    state = snapshot["trading_state"]
    colour = {"ACTIVE": "#1b7f3b", "REDUCING": "#b26a00", "HALTED": "#b00020"}[state["state"]]
    history = [[h["changed_at"], h["state"], h["changed_by"], h["reason"]] for h in snapshot["history"]]
    breakers = [
        [b["venue"], b["state"], b["consecutive_failures"], b["opened_until"] or ""] for b in snapshot["breakers"]
    ]
    saga_headers = ["last entry", "dag", "run", "steps ok", "steps failed", "undone", "undo failed"]
    sagas = [
        [
            s["last_at"],
            s["dag_id"],
            s["run_id"],
            s["steps_succeeded"],
            s["steps_failed"],
            s["undone"],
            s["undo_failed"],
        ]
        for s in snapshot["recent_sagas"]
    ]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>tradeops desk</title>
<style>body{{font-family:sans-serif;margin:1.5rem}}table{{border-collapse:collapse;margin-bottom:1.5rem}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}.state{{color:#fff;background:{colour};
padding:.4rem .8rem;border-radius:4px;font-weight:bold}}</style></head><body>
<h1>Trading state: <span class="state">{html.escape(state["state"])}</span></h1>
<p>{html.escape(state["reason"])} (by {html.escape(state["changed_by"])} at {html.escape(str(state["changed_at"]))})</p>
<p>Change it with the <code>trading_state_control</code> DAG or <code>tradeops state set</code>.</p>
<h2>State history</h2>{_table(["when", "state", "by", "reason"], history)}
<h2>Venue circuit breakers</h2>{_table(["venue", "state", "consecutive failures", "open until"], breakers)}
<h2>Recent saga runs</h2>{_table(saga_headers, sagas)}
<p>Details of a run: <code>tradeops saga show RUN_ID</code> or <code>/tradeops/api/sagas/RUN_ID</code>.</p>
</body></html>"""


def create_app() -> FastAPI:
    app = FastAPI(title="tradeops desk", dependencies=[_authenticated()])

    @app.get("/", response_class=HTMLResponse)
    def desk_page() -> str:
        return render_desk(desk_snapshot())

    @app.get("/api/desk")
    def desk_json() -> dict[str, Any]:
        return desk_snapshot()

    @app.get("/api/sagas/{run_id}")
    def saga_entries(run_id: str) -> list[dict[str, Any]]:
        entries = ledger.entries(run_id)
        if not entries:
            raise HTTPException(status_code=404, detail=f"no saga ledger entries for run '{run_id}'")
        return to_jsonable(entries)

    return app
