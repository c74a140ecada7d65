"""``tradeops saga show RUN_ID``: every step and undo of a saga run, from the ledger."""

from __future__ import annotations

import argparse

from tradeops.cli.output import print_json, print_table
from tradeops.saga import ledger, store
from tradeops.schema import require_current


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "saga", help="inspect saga runs", description="Inspect saga runs in the saga ledger."
    )
    commands = parser.add_subparsers(dest="saga_command", metavar="ACTION", required=True)
    show = commands.add_parser(
        "show",
        help="print the ledger of one DAG run",
        description="Print every saga step and undo of a DAG run (what, when, outcome), oldest first.",
    )
    show.add_argument("run_id", metavar="RUN_ID", help="the Airflow run id, e.g. manual__2026-11-22T10:00:00+00:00")
    show.add_argument("--dag-id", default=None, help="restrict to one DAG (run ids can repeat across DAGs)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--details", action="store_true", help="include each entry's detail")
    show.set_defaults(func=_show)


def _summary(detail: dict) -> str:
    if "error" in detail:
        return f"{detail['error']}: {detail.get('message', '')}"
    if "reason" in detail:
        return str(detail["reason"])
    if "message" in detail:
        return str(detail["message"])
    return ""


def _show(args: argparse.Namespace) -> int:
    require_current()
    entries = ledger.entries(args.run_id, args.dag_id)
    if not entries:
        print(f"no saga ledger entries for run '{args.run_id}'")
        return 1
    if args.json:
        print_json(entries)
        return 0
    for dag_id in sorted({e.dag_id for e in entries}):
        saga = store.get_run(dag_id, args.run_id)
        if saga is not None:
            closed = f" by {saga.closed_by}: {saga.close_reason}" if saga.closed_by else ""
            print(f"saga {dag_id}/{args.run_id}: {saga.status.value}{closed}")
    headers = ["at", "dag_id", "step", "map", "kind", "outcome", "try", "key", "note"]
    rows = [
        [
            e.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            e.dag_id,
            e.step,
            "" if e.map_index < 0 else e.map_index,
            e.kind,
            e.outcome,
            e.try_number,
            e.idempotency_key,
            _summary(e.detail),
        ]
        for e in entries
    ]
    print_table(headers, rows)
    if args.details:
        for entry in entries:
            print(f"\n{entry.step} {entry.kind} {entry.outcome}: {entry.detail}")
    return 0
