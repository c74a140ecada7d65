"""``tradeops data days | show DAY | health``: what the feature store holds and how healthy it is."""

from __future__ import annotations

import argparse
import json
from datetime import date
from typing import Any

from tradeops.cli.output import print_json, print_table


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = subparsers.add_parser(
        "data",
        help="the feature store: stored days, one day's manifest, the hourly health state",
        description="Read the market-data feature store (market_data.store_url): which days are stored, "
        "what validation quarantined and why, freshness and drift.",
    )
    actions = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    days = actions.add_parser("days", help="one line per stored day: rows, symbols, quarantined, health")
    days.add_argument("--json", action="store_true", help="print JSON")
    days.set_defaults(func=_days)
    show = actions.add_parser("show", help="one day's manifest: files, quarantined symbols and why, findings, health")
    show.add_argument("day", help="YYYY-MM-DD")
    show.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    show.set_defaults(func=_show)
    health = actions.add_parser("health", help="the hourly feature health check: last windows, levels, streaks")
    health.add_argument("--json", action="store_true", help="print JSON")
    health.set_defaults(func=_health)


def _store() -> Any:
    from tradeops.config import settings
    from tradeops.market_data.store import FeatureStore, open_root

    return FeatureStore(open_root(settings()))


def _health_level(manifest: dict[str, Any]) -> str:
    from tradeops.market_data.drift import worst

    drift = manifest.get("health", {}).get("drift")
    return "-" if drift is None else worst([group["level"] for group in drift])


def _days(args: argparse.Namespace) -> int:
    store = _store()
    rows = []
    for day in store.days():
        manifest = store.manifest(day) or {}
        quarantined = manifest.get("validation", {}).get("quarantined", {})
        rows.append(
            {
                "day": day.isoformat(),
                "rows": manifest.get("rows"),
                "symbols": len(manifest.get("symbols", [])),
                "quarantined": len(quarantined),
                "health": _health_level(manifest),
                "version": manifest.get("version"),
            }
        )
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"no stored days under {store.root}")
    else:
        print_table(list(rows[0]), [list(r.values()) for r in rows])
    return 0


def _show(args: argparse.Namespace) -> int:
    store = _store()
    manifest = store.manifest(date.fromisoformat(args.day))
    if manifest is None:
        print(f"no partition for {args.day} under {store.root}")
        return 1
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
        return 0
    print(
        f"{manifest['day']}: {manifest['rows']} rows, {len(manifest['symbols'])} symbols, version {manifest['version']}"
    )
    print(f"feature registry {manifest['feature_registry_version']}, code {manifest['code_version']}")
    print_table(
        ["file", "rows", "bytes", "sha256"],
        [[f["path"], f["rows"], f["bytes"], f["sha256"][:16]] for f in manifest["files"]],
    )
    validation = manifest.get("validation", {})
    for symbol, reasons in sorted(validation.get("quarantined", {}).items()):
        print(f"QUARANTINED {symbol}:")
        for reason in reasons:
            print(f"  {reason}")
    findings = [f for f in validation.get("findings", []) if f["action"] != "quarantine"]
    if findings:
        print_table(
            ["venue", "symbol", "check", "action", "bars", "first"],
            [
                [f["venue"], f["symbol"], f["check"], f["action"], f["count"], ", ".join(f["first"][:2])]
                for f in findings
            ],
        )
    health = manifest.get("health")
    if health:
        from tradeops.market_data.health import UNWELL

        for group in health["drift"]:
            print(f"drift {group['group']}: {group['level']} - {group['summary']}")
        stale = [f for f in health["freshness"] if f["status"] in UNWELL]
        for entry in stale:
            print(f"freshness: {entry['venue']} {entry['symbol']} {entry['status']} (last bar {entry['last_bar']})")
    return 0


def _health(args: argparse.Namespace) -> int:
    from tradeops.market_data.health_check import load_state

    store = _store()
    state = load_state(store.root)
    if args.json:
        print_json(state)
        return 0
    if not state:
        print("the hourly feature health check has not run yet")
        return 0
    rows = []
    for entry in state.get("history", [])[-12:]:
        for group, verdict in entry["groups"].items():
            flagged = [f["name"] for f in verdict["features"] if f["level"] in ("warning", "critical")]
            rows.append([entry["window_end"], group, verdict["level"], ", ".join(flagged) or "-"])
    print_table(["window end", "group", "level", "flagged features"], rows)
    streaks = {group: {k: v for k, v in s["streaks"].items() if v} for group, s in state.get("groups", {}).items()}
    for group, running in streaks.items():
        if running:
            print(f"{group}: flagged in a row: {running}")
    return 0
