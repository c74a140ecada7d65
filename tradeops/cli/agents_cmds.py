"""``tradeops agents list | report | decisions | replay``: the configured agents, how each has done
(counts, hit rate, PnL, drawdown, fees, position, risk rejections, and the equity curve as a PNG),
its latest decisions from the ``agent_decisions`` table, and the replay of one logged decision
from its logged inputs."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradeops.cli.output import print_json, print_table
from tradeops.schema import require_current

DEFAULT_PNG = Path("reports") / "agents-equity.png"  # under tradeops.db.state_dir()
_RATIONALE_WIDTH = 60


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agents = subparsers.add_parser(
        "agents",
        help="the trading agents: performance report with equity curve, latest decisions",
        description="Read the trading agents' decision log (agent_decisions): one row per agent run that "
        "reached its decision. Agents are the entries of config/agents.yaml.",
    )
    actions = agents.add_subparsers(dest="action", metavar="ACTION", required=True)
    report = actions.add_parser(
        "report",
        help="per agent: trades, hit rate, PnL, drawdown, fees, position, rejections; writes the equity PNG",
        description="Hit rate: a trade is right when the agent's next decision's price is above its fill price "
        "(buy) or below it (sell); the last trade is not judged. PnL and drawdown are in the market's quote, "
        "percent of the agent's capital; with --since they are measured from the equity before that time.",
    )
    report.add_argument("--agent", metavar="NAME", help="only this agent")
    report.add_argument("--since", type=_utc_time, metavar="ISO", help="only decisions from this time on (UTC)")
    report.add_argument("--png", type=Path, metavar="PATH", help=f"equity curve (default: state dir/{DEFAULT_PNG})")
    report.add_argument("--json", action="store_true", help="print JSON")
    report.set_defaults(func=_report)
    decisions = actions.add_parser("decisions", help="the latest decisions, newest first")
    decisions.add_argument("--agent", metavar="NAME", help="only this agent")
    decisions.add_argument("--limit", type=_positive, default=20, metavar="N", help="rows (default 20)")
    decisions.add_argument("--json", action="store_true", help="print JSON (every column but inputs)")
    decisions.set_defaults(func=_decisions)
    listing = actions.add_parser("list", help="the configured agents (config/agents.yaml), checked against the config")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_list)
    replay = actions.add_parser(
        "replay",
        help="recompute a logged decision from its logged inputs and say whether it matches",
        description="Sentiment (from the logged headlines), the technical signal (from the logged features), "
        "the decision and the risk verdict are recomputed from the row of RUN_ID alone. Exit 0 when every "
        "stage matches, 1 when one differs (each is printed with the logged and the recomputed value).",
    )
    replay.add_argument("run_id", metavar="RUN_ID", help="the Airflow run id of an agent run")
    replay.add_argument("--agent", metavar="NAME", help="the agent, when several agents logged this run id")
    replay.add_argument("--json", action="store_true", help="print JSON")
    replay.set_defaults(func=_replay)


def _utc_time(text: str) -> datetime:
    """An ISO date or time; without an offset it is read as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _agents_file(name: str | None) -> Any:
    """The agents configuration; ``ConfigError`` (exit 2, the known agents named) for an unknown name."""
    from tradeops.agents.settings import agents

    configured = agents()
    if name is not None:
        configured.agent(name)
    return configured


def _report(args: argparse.Namespace) -> int:
    from tradeops.agents import performance
    from tradeops.db import get_engine, state_dir

    configured = _agents_file(args.agent)
    engine = get_engine()
    require_current(engine)
    names = [args.agent] if args.agent else list(configured.agents)
    rows = performance.load_rows(engine, args.agent, args.since)
    baselines = performance.baseline_equities(engine, names, args.since)
    records = performance.summarise(rows, configured, names, baselines)
    grouped = performance.by_agent(rows)
    png = performance.equity_curve_png(
        {name: grouped.get(name, []) for name in names}, args.png or state_dir() / DEFAULT_PNG, baselines
    )
    if args.json:
        print_json({"agents": records, "png": str(png)})
        return 0
    print_table(
        [
            "agent",
            "symbol",
            "runs",
            "trades",
            "buy/sell",
            "hit rate",
            "PnL",
            "PnL %",
            "max DD",
            "DD %",
            "fees",
            "position",
            "rejected",
        ],
        [_report_line(record) for record in records],
    )
    print(f"equity curve: {png}")
    return 0


def _report_line(record: Any) -> list[str]:
    hit = "-" if record.hit_rate is None else f"{record.hit_rate:.0%} of {record.judged}"
    rejected = ", ".join(f"{rule} {count}" for rule, count in record.rejections.items()) or "0"
    return [
        record.agent,
        f"{record.symbol} ({record.venue})",
        str(record.runs),
        str(record.trades),
        f"{record.buys}/{record.sells}",
        hit,
        _money(record.pnl),
        f"{record.pnl_pct:.2f}",
        _money(record.max_drawdown),
        f"{record.max_drawdown_pct:.2f}",
        _money(record.fees),
        _plain(record.position),
        rejected,
    ]


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _plain(value: Decimal | None) -> str:
    return "-" if value is None else format(value.normalize(), "f")


def _decisions(args: argparse.Namespace) -> int:
    from tradeops.agents import performance
    from tradeops.db import get_engine

    _agents_file(args.agent)
    engine = get_engine()
    require_current(engine)
    rows = performance.latest_rows(engine, args.agent, args.limit)
    if args.json:
        print_json([{key: value for key, value in row.items() if key != "inputs"} for row in rows])
    elif not rows:
        print("no agent decision recorded")
    else:
        print_table(
            ["time (UTC)", "agent", "action", "amount", "outcome", "score", "rule", "rationale"],
            [
                [
                    row["as_of"].isoformat(timespec="seconds"),
                    row["agent"],
                    row["action"],
                    _plain(row["amount"]),
                    row["outcome"],
                    f"{row['score']:+.3f}",
                    row["risk_rule"] or "-",
                    _shorten(row["rationale"]),
                ]
                for row in rows
            ],
        )
    return 0


def _shorten(text: str, width: int = _RATIONALE_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _list(args: argparse.Namespace) -> int:
    from tradeops.agents.settings import dag_id

    configured = _agents_file(None)
    rows = [
        {
            "agent": name,
            "dag_id": dag_id(name),
            "venue": agent.venue,
            "symbol": agent.symbol,
            "calendar": agent.calendar,
            "schedule": f"{agent.schedule} ({agent.timezone})",
            "weights": f"sentiment {agent.weights.sentiment} / technical {agent.weights.technical}",
            "model_weight": agent.model_weight,
            "capital": str(agent.capital),
        }
        for name, agent in configured.agents.items()
    ]
    if args.json:
        print_json(rows)
    else:
        print_table(list(rows[0]), [list(row.values()) for row in rows])
    return 0


def _replay(args: argparse.Namespace) -> int:
    from tradeops.agents import ledger
    from tradeops.agents.replay import replay
    from tradeops.errors import TradeopsError

    require_current()
    rows = [r for r in ledger.rows_of_run(args.run_id) if args.agent is None or r["agent"] == args.agent]
    if not rows:
        raise TradeopsError(f"no logged agent decision has run id {args.run_id!r} (tradeops agents decisions)")
    if len(rows) > 1:
        agents = ", ".join(r["agent"] for r in rows)
        raise TradeopsError(f"run id {args.run_id!r} was logged by several agents ({agents}): pass --agent")
    result = replay(rows[0])
    checks = [
        {"stage": c.stage, "matches": c.matches, "logged": c.logged, "replayed": c.replayed} for c in result.checks
    ]
    if args.json:
        print_json({"agent": result.agent, "run_id": result.run_id, "matches": result.matches, "checks": checks})
    else:
        print(f"agent {result.agent}, run {result.run_id} (scheduled {result.as_of})")
        print_table(
            ["stage", "matches", "logged", "replayed"],
            [[c["stage"], c["matches"], _compact(c["logged"]), _compact(c["replayed"])] for c in checks],
        )
        print("MATCHES: the decision comes out the same" if result.matches else "DIFFERS: see the stages above")
    return 0 if result.matches else 1


def _compact(value: Any) -> str:
    text = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
    return text if len(text) <= 90 else text[:87] + "..."
