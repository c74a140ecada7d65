"""The trading agents: what each is configured to do, how it has done, and its last decision.

The agents come from ``config/agents.yaml`` (``tradeops.agents.settings``), checked against the
main configuration given; their record from ``agent_decisions`` through
``tradeops.agents.performance`` (runs, position, PnL, drawdown, hit rate) and the newest row of
each (its decision, outcome, score, price, rationale and the risk verdict). An agents file that
does not load is the body's ``error``, with no agent.

``pnl`` is the agent's PnL since its first run (its last ``equity_after``), ``equity`` its
capital plus that PnL, both in the quote asset of its market (``currency``); an agent that never
ran has ``null`` for both, for ``max_drawdown`` and for ``hit_rate`` (right / judged trades, four
decimals; ``null`` also while no trade could be judged yet).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from tradeops.agents import performance
from tradeops.agents.settings import AgentConfig, AgentsFile, check_against, dag_id, load_agents
from tradeops.config import Settings
from tradeops.db import get_engine
from tradeops.errors import ConfigError
from tradeops.model import to_jsonable


def snapshot(settings: Settings, *, engine: Engine | None = None) -> dict[str, Any]:
    try:
        configured = load_agents()
        check_against(configured, settings)
    except ConfigError as exc:
        return {"agents": [], "error": str(exc)}
    return {"agents": agents(configured, engine or get_engine()), "error": None}


def agents(configured: AgentsFile, engine: Engine) -> list[dict[str, Any]]:
    records = performance.report(engine, configured)
    lines = []
    for record in records:
        newest = performance.latest_rows(engine, record.agent, limit=1)
        lines.append(_line(record, configured.agent(record.agent), newest[0] if newest else None))
    return lines


def _line(record: performance.AgentPerformance, config: AgentConfig, last: dict[str, Any] | None) -> dict[str, Any]:
    ran = record.runs > 0
    return {
        "agent": record.agent,
        "dag_id": dag_id(record.agent),
        "venue": config.venue,
        "symbol": config.symbol,
        "schedule": config.schedule,
        "timezone": config.timezone,
        "currency": config.quote,
        "capital": str(config.capital),
        "runs": record.runs,
        "position": str(record.position),
        "equity": str(config.capital + record.pnl) if ran else None,
        "pnl": str(record.pnl) if ran else None,
        "max_drawdown": str(record.max_drawdown) if ran else None,
        "hit_rate": None if record.hit_rate is None else f"{record.hit_rate:.4f}",
        "last": None if last is None else last_decision(last),
    }


def last_decision(row: dict[str, Any]) -> dict[str, Any]:
    """One ``agent_decisions`` row as the desk shows it."""
    risk = json.loads(row["inputs"]).get("risk") or {}
    verdict = risk.get("verdict") or {}
    rejected = verdict.get("approved") is False and row["risk_rule"] is not None
    return {
        "run_id": row["run_id"],
        "at": to_jsonable(row["decided_at"]),
        "as_of": to_jsonable(row["as_of"]),
        "decision": row["action"],
        "amount": None if row["amount"] is None else str(row["amount"]),
        "outcome": row["outcome"],
        "score": row["score"],
        "price": str(row["price"]),
        "rationale": row["rationale"],
        "verdict": verdict.get("reason") or row["risk_reason"],
        "rejected_by": row["risk_rule"] if rejected else None,
    }
