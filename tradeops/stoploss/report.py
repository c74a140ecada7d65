"""The ``stop_loss_report`` event from the venue reports: per venue, and the desk's net exposure.

``all_flat`` needs every venue flat (no open order, no perp position, every spot leg within
dust, no share waiting for the open) and, per base asset across the desk, |spot + perp| within
that asset's dust.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from tradeops.events import Event, build_event

ZERO = Decimal(0)
Stage = Literal["first", "final"]


def _venue_line(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("venue", "flat", "status", "rounds", "orders_canceled", "positions_closed", "open_positions", "open_orders")
    line = {key: report[key] for key in keys}
    line["exposures"] = report["exposures"]
    line["pending_open"] = report["pending_open"]
    line["unsellable"] = report["unsellable"]
    line["error"] = "; ".join(report["errors"])[:1000] or None
    return line


def desk_exposure(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spot, perp and net of each (base asset, quote asset) summed over every venue."""
    totals: dict[tuple[str, str | None], dict[str, Any]] = {}
    for report in reports:
        for item in report["exposures"]:
            key = (item["asset"], item["quote"])
            total = totals.setdefault(
                key, {"asset": key[0], "quote": key[1], "spot": ZERO, "perp": ZERO, "net_quote": ZERO, "dust": ZERO}
            )
            total["spot"] += Decimal(item["spot"])
            total["perp"] += Decimal(item["perp"])
            total["dust"] = max(total["dust"], Decimal(item["dust"]))
            if total["net_quote"] is not None:
                value = item["net_quote"]
                total["net_quote"] = None if value is None else total["net_quote"] + Decimal(value)
    lines = []
    for key in sorted(totals, key=lambda k: (k[0], k[1] or "")):
        total = totals[key]
        net = total["spot"] + total["perp"]
        lines.append(
            {
                **{k: str(v) if isinstance(v, Decimal) else v for k, v in total.items()},
                "net": str(net),
                "flat": abs(net) <= total["dust"],
            }
        )
    return lines


def build_report(
    reports: list[dict[str, Any]],
    *,
    stage: Stage,
    trading_state: str,
    trigger_event_ids: list[str],
    run_id: str,
    source: str,
) -> Event:
    """The ``stop_loss_report`` event for ``reports`` (one per venue, as ``FlattenReport.to_dict``)."""
    net = desk_exposure(reports)
    return build_event(
        "stop-loss-report",
        {
            "stage": stage,
            "trading_state": trading_state,
            "trigger_event_ids": trigger_event_ids,
            "venues": [_venue_line(r) for r in reports],
            "net_exposure": net,
            "all_flat": all(r["flat"] for r in reports) and all(line["flat"] for line in net),
            "run_id": run_id,
            "source": source,
        },
    )
