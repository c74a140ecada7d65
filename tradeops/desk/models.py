"""Models: which version serves each instrument, MLflow's aliases, the canary, recent changes.

Routes and the change history come from the project database and are always shown. The aliases
come from MLflow (imported lazily, through ``tradeops.models.registry``), read in a daemon thread
bounded by the timeout: an MLflow that does not answer, or a local MLflow store that does not
exist yet (nothing was ever trained here; reading it would create it), gives
``available: false`` with the reason, and the rest of the body as usual.

The deployment keeps its canary progress in Airflow's XCom, outside the project database; what
the database records is each canary route, whose reason the canary writes as "canary stage N of
M: ...". So ``canary`` is derived from the routes with role ``canary``: their version, how many
instruments it serves out of the universe and the routed instruments, ``stage`` from that reason
("N of M", None when the reason does not say), ``started_at`` the first of those routes'
changes; ``dag_run_id`` is None (no project table records the deployment's run).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tradeops.config import Settings
from tradeops.desk.bounded import Reads
from tradeops.model import to_jsonable
from tradeops.models import registry, routing, tracking

MAX_CHANGES = 10
_STAGE = re.compile(r"canary stage (\d+) of (\d+)")
_USERINFO = re.compile(r"//[^/@\s]*@")
_reads = Reads("desk-mlflow")


def snapshot(settings: Settings, *, timeout_seconds: float = 5, engine: Engine | None = None) -> dict[str, Any]:
    routes = routing.routes(engine)
    aliases, error = _aliases(settings, timeout_seconds)
    return {
        "available": error is None,
        "error": error,
        "model": settings.models.registered_model,
        "aliases": aliases,
        "routes": [_route(route) for route in routes.values()],
        "canary": canary(routes, routing.instruments_of(settings.market_data.universe)),
        "changes": changes(settings, engine=engine),
    }


def _aliases(settings: Settings, timeout_seconds: float) -> tuple[dict[str, str], str | None]:
    uri = tracking.tracking_uri(settings)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return {}, f"no MLflow store at {uri.removeprefix('sqlite:///')}: no model was trained here yet"
    shown = _USERINFO.sub("//***@", uri)  # a password in the URI stays out of the page
    key = hashlib.sha256(uri.encode()).hexdigest()[:12]
    read = _reads.start(key, lambda: registry.aliases(settings))
    if not read.wait(timeout_seconds):
        return {}, f"MLflow at {shown} gave no answer within {timeout_seconds:g} s"
    try:
        return dict(read.result()), None
    except Exception as exc:
        return {}, _USERINFO.sub("//***@", f"MLflow at {shown}: {type(exc).__name__}: {exc}"[:1000])


def _route(route: routing.Route) -> dict[str, Any]:
    return {
        "venue": route.venue,
        "symbol": route.symbol,
        "model": route.model,
        "version": route.version,
        "role": route.role,
        "updated_at": to_jsonable(route.updated_at),
        "updated_by": route.updated_by,
        "reason": route.reason,
    }


def canary(
    routes: dict[routing.Instrument, routing.Route], universe: list[routing.Instrument]
) -> dict[str, Any] | None:
    """The canary as the routes show it (see the module docstring), or None when none is routed."""
    on_canary = [route for route in routes.values() if route.role == "canary"]
    if not on_canary:
        return None
    latest = max(on_canary, key=lambda route: route.updated_at)
    mine = [route for route in on_canary if route.version == latest.version]
    stage = _STAGE.search(latest.reason)
    return {
        "version": latest.version,
        "stage": f"{stage.group(1)} of {stage.group(2)}" if stage else None,
        "canary_instruments": len(mine),
        "instruments": len(set(universe) | set(routes)),
        "dag_run_id": None,
        "started_at": to_jsonable(min(route.updated_at for route in mine)),
    }


def changes(settings: Settings, *, engine: Engine | None = None) -> list[dict[str, Any]]:
    """The latest alias moves and route changes together, newest first (at most ``MAX_CHANGES``)."""
    found = [
        {
            "at": change.at,
            "kind": "alias",
            "what": f"{change.alias}: {change.old_version or 'unset'} -> {change.new_version or 'removed'}",
            "actor": change.actor,
            "reason": change.reason,
        }
        for change in registry.alias_history(settings, MAX_CHANGES, engine=engine)
    ]
    found += [
        {
            "at": change.at,
            "kind": "route",
            "what": (
                f"{change.venue} {change.symbol}: {_version(change.old_version, change.old_role) or 'unrouted'}"
                f" -> {_version(change.new_version, change.new_role) or 'removed'}"
            ),
            "actor": change.actor,
            "reason": change.reason,
        }
        for change in routing.history(MAX_CHANGES, engine=engine)
    ]
    found.sort(key=lambda change: change["at"], reverse=True)
    return [{**change, "at": to_jsonable(change["at"])} for change in found[:MAX_CHANGES]]


def _version(version: str | None, role: str | None) -> str | None:
    return None if version is None else f"{version} ({role})"
