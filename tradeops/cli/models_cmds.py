"""``tradeops models versions | aliases | routing | history | rollback``: the registered model's
versions and gate results, its aliases, the routing table, who changed what and why, and the
one-command manual rollback to the ``previous`` version."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from tradeops.cli.output import print_json, print_table
from tradeops.schema import require_current


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = subparsers.add_parser(
        "models",
        help="model versions and gates, aliases, the routing table, their history, rollback",
        description="The registered model (models.registered_model in MLflow) and the routing table that "
        "decides which version serves each instrument.",
    )
    actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext, handler in (
        ("versions", "every version, newest first: aliases, gate results, verdict", _versions),
        ("aliases", "each alias (champion, challenger, previous) and its version", _aliases),
        ("routing", "one line per instrument: version, role, when, who, why", _routing),
    ):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(func=handler)
    history = actions.add_parser("history", help="alias and routing changes, newest first: who, when, why")
    history.add_argument("--limit", type=int, default=50, metavar="N", help="changes of each kind (default 50)")
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(func=_history)
    rollback = actions.add_parser(
        "rollback",
        help="route every instrument to the 'previous' version as champion",
        description="Route every instrument back to the version of alias 'previous' as champion, move "
        "'champion' to it, remove 'challenger' (and 'previous', now the champion); every change recorded. "
        "Refuses, changing nothing, when there is no 'previous'.",
    )
    rollback.add_argument("--reason", default="manual rollback", help="why (kept in the history)")
    rollback.add_argument("--actor", default=None, help="who is rolling back (default: the current OS user)")
    rollback.set_defaults(func=_rollback)


def _settings() -> Any:
    from tradeops.config import settings

    return settings()


def _versions(args: argparse.Namespace) -> int:
    from tradeops.models import registry

    settings = _settings()
    found = registry.versions(settings)
    if args.json:
        print_json(found)
    elif not found:
        print(f"model '{settings.models.registered_model}' has no registered version")
    else:
        print_table(
            ["version", "created", "aliases", "passed", "gates", "run"],
            [
                [
                    v.version,
                    v.created_at.isoformat(timespec="seconds"),
                    ",".join(v.aliases) or "-",
                    "-" if v.passed is None else ("yes" if v.passed else "NO"),
                    _gates(v.gates),
                    v.run_id or "-",
                ]
                for v in found
            ],
        )
    return 0


def _gates(gates: tuple[Any, ...]) -> str:
    """``sharpe pass (2.4 > 2.0)``, one gate after the other."""
    parts = []
    for gate in gates:
        figures = f" ({gate.value} vs {gate.limit})" if gate.value is not None else ""
        parts.append(f"{gate.name} {'pass' if gate.passed else 'FAIL'}{figures}")
    return "; ".join(parts) or "-"


def _aliases(args: argparse.Namespace) -> int:
    from tradeops.models import registry

    settings = _settings()
    current = registry.aliases(settings)
    if args.json:
        print_json(current)
    elif not current:
        print(f"model '{settings.models.registered_model}' has no alias")
    else:
        print_table(["alias", "version"], sorted(current.items()))
    return 0


def _routing(args: argparse.Namespace) -> int:
    from tradeops.models import routing

    require_current()
    table = routing.routes()
    if args.json:
        print_json(list(table.values()))
    elif not table:
        print("no instrument is routed to a model")
    else:
        print_table(
            ["venue", "symbol", "model", "version", "role", "updated", "by", "reason"],
            [
                [
                    r.venue,
                    r.symbol,
                    r.model,
                    r.version,
                    r.role,
                    r.updated_at.isoformat(timespec="seconds"),
                    r.updated_by,
                    r.reason,
                ]
                for r in table.values()
            ],
        )
    return 0


def _history(args: argparse.Namespace) -> int:
    from tradeops.models import registry, routing

    require_current()
    settings = _settings()
    changes = [
        dict(at=c.at, kind="alias", what=c.alias, old=c.old_version, new=c.new_version, by=c.actor, reason=c.reason)
        for c in registry.alias_history(settings, args.limit)
    ]
    changes += [
        dict(
            at=c.at,
            kind="route",
            what=f"{c.venue} {c.symbol}",
            old=_version_role(c.old_version, c.old_role),
            new=_version_role(c.new_version, c.new_role),
            by=c.actor,
            reason=c.reason,
        )
        for c in routing.history(args.limit)
    ]
    changes.sort(key=lambda change: change["at"], reverse=True)
    if args.json:
        print_json(changes)
    elif not changes:
        print("no alias or routing change recorded")
    else:
        print_table(
            ["when", "kind", "what", "from", "to", "by", "reason"],
            [[c["at"].isoformat(timespec="seconds"), *[c[k] or "-" for k in list(c)[1:]]] for c in changes],
        )
    return 0


def _version_role(version: str | None, role: str | None) -> str | None:
    return None if version is None else f"{version} ({role})"


def _rollback(args: argparse.Namespace) -> int:
    from tradeops.models import registry

    require_current()
    result = registry.rollback(_settings(), args.actor or getpass.getuser(), args.reason)
    print(
        f"rolled back to version {result.version} (champion was {result.replaced or 'unset'}): "
        f"{len(result.rerouted)} instrument(s) rerouted; challenger and previous removed"
    )
    return 0
