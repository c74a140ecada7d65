"""The latest emergency-stop reports, from ``stop_reports`` (``tradeops.stoploss.report_store``).

The stop stores each ``stop_loss_report`` (``first`` and ``final``) before publishing it, so
this shows the per-venue figures a stop really reported: each venue's status, rounds, orders
canceled, legs closed, what is still open, its spot/perp/net per base asset, and the desk's net
exposure, as the event carries them (amounts as decimal strings).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from tradeops.model import to_jsonable
from tradeops.stoploss.report_store import StoredStopReport, recent_reports

MAX_REPORTS = 100


def snapshot(limit: int = 5, *, engine: Engine | None = None) -> dict[str, Any]:
    """``{"reports": [Stop, ...newest first]}``, at most ``limit``."""
    stored = recent_reports(max(1, min(limit, MAX_REPORTS)), engine=engine)
    return {"reports": [_stop(report) for report in stored]}


def _stop(stored: StoredStopReport) -> dict[str, Any]:
    event = stored.report
    return {
        "event_id": stored.event_id,
        "dag_id": stored.dag_id,
        "run_id": stored.run_id,
        "stage": stored.stage,
        "at": to_jsonable(stored.occurred_at),
        "all_flat": stored.all_flat,
        "trading_state": stored.trading_state,
        "trigger_event_ids": list(event.get("trigger_event_ids") or []),
        "venues": list(event.get("venues") or []),
        "net_exposure": list(event.get("net_exposure") or []),
    }
