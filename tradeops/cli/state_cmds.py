"""``tradeops state show|set``: the trading state (ACTIVE / REDUCING / HALTED)."""

from __future__ import annotations

import argparse
import getpass

from tradeops import risk
from tradeops.cli.output import print_json, print_table
from tradeops.schema import require_current


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "state",
        help="show or change the trading state",
        description="The trading state every order is checked against. HALTED: no new orders "
        "(only reduce-only exits and saga compensation). REDUCING: only orders that reduce exposure. "
        "Returning to ACTIVE is always an explicit human action.",
    )
    commands = parser.add_subparsers(dest="state_command", metavar="ACTION", required=True)

    show = commands.add_parser("show", help="print the current state and its recent history")
    show.add_argument("--history", type=int, default=5, metavar="N", help="how many past changes to list (default 5)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)

    change = commands.add_parser(
        "set",
        help="set the trading state",
        description="Set the trading state, e.g. `tradeops state set ACTIVE --reason 'incident 42 resolved'`.",
    )
    change.add_argument("state", choices=[s.value for s in risk.TradingState], help="the new state")
    change.add_argument("--reason", required=True, help="why (kept in the history)")
    change.add_argument("--by", default=None, help="who is changing it (default: the current user)")
    change.set_defaults(func=_set)


def _show(args: argparse.Namespace) -> int:
    require_current()
    current = risk.get_state()
    past = risk.history(args.history)
    if args.json:
        print_json({"current": current, "history": past})
        return 0
    print(f"trading state: {current.state.value}")
    print(f"reason:        {current.reason}")
    print(f"changed by:    {current.changed_by} at {current.changed_at or '-'}")
    if past:
        print()
        print_table(
            ["when", "state", "by", "reason"],
            [[r.changed_at, r.state.value, r.changed_by, r.reason] for r in past],
        )
    return 0


def _set(args: argparse.Namespace) -> int:
    require_current()
    record = risk.set_state(
        risk.TradingState(args.state), reason=args.reason, changed_by=args.by or f"cli:{getpass.getuser()}"
    )
    print(f"trading state is now {record.state.value} ({record.reason})")
    return 0
