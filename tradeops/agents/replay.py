"""Replay a logged decision from its logged inputs and say whether it comes out the same.

Each stage is recomputed from what the row holds, not from anything live: the sentiment from the
headlines' texts (scored again with the lexicon shipped now), the technical signal from the
feature values of the bar, the decision from its inputs (scores, the model's probability,
position, price, weights, sizing), and the risk verdict from the logged risk context and limits.
A stage that differs is named with the logged and the recomputed value: a changed lexicon, a
changed formula or a changed limit shows up here before it shows up in PnL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tradeops.agents import technical
from tradeops.agents.decision import Decision, DecisionInputs, decide
from tradeops.agents.risk_checks import RiskContext, validate
from tradeops.agents.settings import RiskLimits


@dataclass(frozen=True, kw_only=True)
class StageCheck:
    stage: str
    matches: bool
    logged: Any
    replayed: Any


@dataclass(frozen=True, kw_only=True)
class ReplayResult:
    agent: str
    run_id: str
    as_of: str
    checks: list[StageCheck] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return all(check.matches for check in self.checks)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def _sentiment(inputs: dict[str, Any]) -> StageCheck:
    from tradeops.agents import sentiment
    from tradeops.agents.news import Headline

    logged = inputs["decision_inputs"]["sentiment"]
    headlines = [Headline.from_dict(item) for item in inputs["headlines"]]
    params = inputs["sentiment"]
    result = sentiment.analyze(
        headlines, now=datetime.fromisoformat(params["now"]), half_life_minutes=float(params["half_life_minutes"])
    ).to_dict()
    keys = ("score", "confidence")
    return StageCheck(
        stage="sentiment",
        matches=all(_same(float(logged[k]), float(result[k])) for k in keys),
        logged={k: logged[k] for k in keys},
        replayed={k: result[k] for k in keys},
    )


def _technical(inputs: dict[str, Any]) -> StageCheck:
    logged = inputs["decision_inputs"]["technical"]
    market = inputs["market"]
    result = technical.analyze(market.get("features") or {}, bar_ts=market.get("last_ts")).to_dict()
    keys = ("signal", "confidence")
    return StageCheck(
        stage="technical",
        matches=all(_same(float(logged[k]), float(result[k])) for k in keys),
        logged={k: logged[k] for k in keys},
        replayed={k: result[k] for k in keys},
    )


def _decision(inputs: dict[str, Any]) -> tuple[StageCheck, Decision]:
    logged = inputs["decision"]
    result = decide(DecisionInputs.from_dict(inputs["decision_inputs"]))
    replayed = result.to_dict()
    keys = ("action", "amount", "score", "rationale")
    return (
        StageCheck(
            stage="decision",
            matches=all(_same(logged[k], replayed[k]) for k in keys),
            logged={k: logged[k] for k in keys},
            replayed={k: replayed[k] for k in keys},
        ),
        result,
    )


def _risk(inputs: dict[str, Any], decision: Decision, symbol: str) -> StageCheck | None:
    risk = inputs.get("risk")
    if risk is None:
        return None
    context = None if risk["context"] is None else RiskContext.from_dict(risk["context"])
    verdict = validate(decision, context, RiskLimits.model_validate(risk["limits"]), symbol).to_dict()
    keys = ("approved", "rule")
    return StageCheck(
        stage="risk",
        matches=all(risk["verdict"][k] == verdict[k] for k in keys),
        logged={k: risk["verdict"][k] for k in keys},
        replayed={k: verdict[k] for k in keys},
    )


def replay(row: dict[str, Any]) -> ReplayResult:
    """Recompute every stage of the logged decision ``row`` (``ledger.row_of``) and compare."""
    inputs = row["inputs"]
    decision_check, decision = _decision(inputs)
    checks = [_sentiment(inputs), _technical(inputs), decision_check]
    risk_check = _risk(inputs, decision, row["symbol"])
    if risk_check is not None:
        checks.append(risk_check)
    return ReplayResult(agent=row["agent"], run_id=row["run_id"], as_of=row["as_of"].isoformat(), checks=checks)
