"""One agent run, step by step: what each task of an ``agent_<name>_trading`` DAG computes.

Every function takes plain values and returns JSON-safe dicts (the tasks pass them on through
XCom): the Airflow operators in ``operators/agents.py`` only call these. Times are aware UTC.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradeops.agents import ledger
from tradeops.agents.decision import Decision, DecisionInputs, decide
from tradeops.agents.risk_checks import RiskContext, validate
from tradeops.agents.settings import AgentConfig, AgentsFile
from tradeops.market_data.calendars import session_bounds

if TYPE_CHECKING:
    import pandas as pd

    from tradeops.config import Settings

log = logging.getLogger(__name__)

EXECUTE_TASK_ID = "execute_trade"
ACTION = "tradeops.agents.execution.agent_order"
MINUTE = timedelta(minutes=1)


def history_start(agent: AgentConfig, until: datetime) -> datetime:
    """Where ``agent.history_bars`` 1-minute bars of its calendar before ``until`` begin."""
    needed = agent.history_bars
    if agent.calendar == "24/7":
        return until - needed * MINUTE
    from tradeops.venues.equity_sessions import NEW_YORK

    day = until.astimezone(NEW_YORK).date()
    start = until
    # A short session has 210 minutes and no week has fewer than 3 sessions: enough days to look at.
    for _ in range(needed // 210 * 3 + 14):
        bounds = session_bounds(agent.calendar, day)
        if bounds is not None:
            opens, closes = bounds
            end = min(closes, until)
            minutes = int((end - opens) / MINUTE) if end > opens else 0
            if minutes >= needed:
                return end - needed * MINUTE
            needed -= minutes
            start = opens
        day -= timedelta(days=1)
    return start


def _bars_digest(bars: pd.DataFrame) -> str:
    blob = bars[["ts", "open", "high", "low", "close", "volume"]].to_csv(index=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def fetch_market_data(agent: AgentConfig, settings: Settings, now: datetime) -> dict[str, Any]:
    """The agent's last ``history_bars`` complete 1-minute bars, the registry's features on the
    last one, and the venue's mark price (the price the decision sizes and judges fills by)."""
    from tradeops.market_data import features
    from tradeops.market_data.frames import with_keys
    from tradeops.market_data.validation import validate_window
    from tradeops.venues.factory import open_venue

    until = now.astimezone(UTC).replace(second=0, microsecond=0)  # the current minute is not complete
    venue = open_venue(agent.venue, settings=settings)
    bars = venue.bars(agent.symbol, "1m", history_start(agent, until), until).tail(agent.history_bars)
    mark = venue.mark_price(agent.symbol)
    fetched = {"fetched_at": now.isoformat(), "mark": str(mark), "bars": len(bars), "until": until.isoformat()}
    if bars.empty:
        empty = {"first_ts": None, "last_ts": None, "last_close": None, "features": {}, "digest": None}
        return {**fetched, **empty, "data_findings": []}
    keyed = with_keys(bars.reset_index(drop=True), agent.venue, agent.symbol)
    findings = [f for f in validate_window(keyed, settings.market_data.validation) if f.action != "warn"]
    for finding in findings:
        log.warning("bad market data: %s", finding.message())
    frame = features.compute(keyed)
    last = frame.iloc[-1]
    values = {name: (None if last[name] != last[name] else float(last[name])) for name in features.FEATURE_NAMES}
    return {
        **fetched,
        "first_ts": bars["ts"].iloc[0].isoformat(),
        "last_ts": bars["ts"].iloc[-1].isoformat(),
        "last_close": float(bars["close"].iloc[-1]),
        "features": values,
        "digest": _bars_digest(bars),
        "data_findings": [f.message() for f in findings],
    }


def analyze_sentiment(agents: AgentsFile, agent: AgentConfig, settings: Settings, now: datetime) -> dict[str, Any]:
    """The news source's headlines for the agent's symbol in the lookback window, scored."""
    from tradeops.agents import sentiment
    from tradeops.agents.news import open_news_source

    news = agents.news
    source = open_news_source(news, settings)
    since = now - timedelta(minutes=news.lookback_minutes)
    headlines = source.headlines(agent.headline_symbol, since=since, until=now, limit=news.max_headlines)
    result = sentiment.analyze(headlines, now=now, half_life_minutes=news.half_life_minutes)
    return {
        "result": result.to_dict(),
        "headlines": [h.to_dict() for h in headlines],
        "now": now.isoformat(),
        "half_life_minutes": news.half_life_minutes,
        "news_symbol": agent.headline_symbol,
        "source": news.source,
    }


def analyze_technical(market: dict[str, Any]) -> dict[str, Any]:
    from tradeops.agents import technical

    return technical.analyze(market.get("features") or {}, bar_ts=market.get("last_ts")).to_dict()


def _feature_frame(market: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    values = {name: [value if value is not None else float("nan")] for name, value in market["features"].items()}
    frame = pd.DataFrame(values)
    frame.insert(0, "ts", pd.DatetimeIndex([datetime.fromisoformat(market["last_ts"])], dtype="datetime64[us, UTC]"))
    return frame


def model_opinion(agent: AgentConfig, settings: Settings, market: dict[str, Any]) -> dict[str, Any] | None:
    """The routed model's probability of "up" on the last bar (recorded in model_predictions
    like every served prediction), or None when no model serves the instrument."""
    from tradeops.models import routing

    route = routing.route_for(agent.venue, agent.symbol)
    if route is None or not market.get("features") or agent.model_weight == 0:
        return None
    from tradeops.models.serving import Predictor

    bar_ts = datetime.fromisoformat(market["last_ts"])
    prediction = Predictor(settings).predict(agent.venue, agent.symbol, _feature_frame(market), bar_ts=bar_ts)
    return {
        "model": prediction.model,
        "version": prediction.version,
        "role": prediction.role,
        "probability": prediction.probability,
        "error": prediction.error,
        "latency_ms": prediction.latency_ms,
    }


def make_decision(
    name: str,
    agent: AgentConfig,
    settings: Settings,
    *,
    run_id: str,
    as_of: datetime,
    market: dict[str, Any],
    sentiment: dict[str, Any],
    technical: dict[str, Any],
) -> dict[str, Any]:
    """Blend the analyses (and the routed model) into the decision, with its inputs."""
    position = ledger.book(name, excluding_run=run_id).position
    inputs = DecisionInputs(
        agent=name,
        venue=agent.venue,
        symbol=agent.symbol,
        as_of=as_of.isoformat(),
        price=Decimal(market["mark"]),
        position=position,
        sentiment=sentiment["result"],
        technical=technical,
        model=model_opinion(agent, settings, market),
        weights=agent.weights.model_dump(),
        model_weight=agent.model_weight,
        entry_threshold=agent.entry_threshold,
        sizing=agent.sizing.model_dump(mode="json"),
    )
    decision = decide(inputs)
    log.info("agent %s: %s", name, decision.rationale)
    return {"inputs": inputs.to_dict(), "decision": decision.to_dict(), "decided_at": datetime.now(UTC).isoformat()}


def _venue_exposure(venue: Any, settings: Settings) -> Decimal:
    """Quote value of every non-cash holding and perp position on ``venue`` (gross)."""
    from tradeops.stoploss.exposure import measure

    state = measure(venue, settings, set())
    total = Decimal(0)
    for exposure in state.exposures:
        if exposure.mark is not None:
            total += (abs(exposure.spot) + abs(exposure.perp)) * exposure.mark
    return total


def risk_context(
    name: str,
    agent: AgentConfig,
    settings: Settings,
    *,
    dag_id: str,
    run_id: str,
    as_of: datetime,
    decided: dict[str, Any],
    market: dict[str, Any],
    now: datetime,
) -> RiskContext:
    """What the risk rules read, from the trading state, the agent's book and the venue."""
    from tradeops import risk
    from tradeops.venues.factory import open_venue

    state = risk.get_state()
    book = ledger.book(name, excluding_run=run_id)
    price = Decimal(decided["decision"]["price"])
    venue = open_venue(agent.venue, settings=settings)
    balances = venue.balances()
    last_ts = market.get("last_ts")
    age = None if last_ts is None else (now - (datetime.fromisoformat(last_ts) + MINUTE)).total_seconds()
    return RiskContext(
        trading_state=state.state.value,
        trading_state_reason=state.reason,
        position=book.position,
        equity=book.equity_at(price),
        peak_equity=book.peak_equity,
        capital=agent.capital,
        venue_exposure=_venue_exposure(venue, settings),
        quote_free=balances[agent.quote].free if agent.quote in balances else Decimal(0),
        base_free=balances[agent.base].free if agent.base in balances else Decimal(0),
        taker_fee_bps=settings.venue(agent.venue).taker_fee_bps,
        run_delay_seconds=(now - as_of).total_seconds(),
        max_delay_seconds=float(agent.max_delay_seconds),
        last_bar_age_seconds=age,
        unreconciled_runs=ledger.unreconciled_runs(dag_id, run_id),
        data_findings=tuple(market.get("data_findings") or ()),
    )


def validate_risk(
    name: str,
    agent: AgentConfig,
    settings: Settings,
    *,
    dag_id: str,
    run_id: str,
    as_of: datetime,
    decided: dict[str, Any],
    market: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """The verdict on the decision's order and, when approved, the saga step's parameters."""
    decision = Decision.from_dict(decided["decision"])
    if decision.action == "hold":
        verdict = validate(decision, None, agent.risk, agent.symbol)
        return {
            "verdict": verdict.to_dict(),
            "context": None,
            "limits": agent.risk.model_dump(mode="json"),
            "orders": [],
        }
    ctx = risk_context(
        name, agent, settings, dag_id=dag_id, run_id=run_id, as_of=as_of, decided=decided, market=market, now=now
    )
    verdict = validate(decision, ctx, agent.risk, agent.symbol)
    orders = []
    if verdict.approved:
        orders.append(
            {
                "agent": name,
                "venue": agent.venue,
                "symbol": agent.symbol,
                "side": decision.action,
                "amount": str(decision.amount),
                "reference_price": str(decision.price),
                "max_slippage_bps": str(agent.risk.max_slippage_bps),
            }
        )
    return {
        "verdict": verdict.to_dict(),
        "context": ctx.to_dict(),
        "limits": agent.risk.model_dump(mode="json"),
        "orders": orders,
    }


def _orders_of_step(venue: Any, key: str, symbol: str) -> tuple[Any, list[Any]]:
    """The step's order and every reverse order its undo placed, as the venue reports them."""
    from tradeops.saga.actions import MAX_REVERSE_ATTEMPTS, reverse_key

    original = venue.get_order(key, symbol)
    reverses = []
    for attempt in range(1, MAX_REVERSE_ATTEMPTS + 1):
        found = venue.get_order(reverse_key(key, attempt), symbol)
        if found is None:
            break
        reverses.append(found)
    return original, reverses


def _outcome(step_status: str | None, decision: Decision, summary: ledger.FillSummary, *, verdict: Any) -> str:
    if step_status is None:
        if decision.action == "hold":
            return "hold"
        return "rejected" if verdict is not None and not verdict["approved"] else "failed"
    if step_status == "undone":
        return "undone"
    if step_status in {"failed", "intent", "undo_failed", "nothing_to_undo"}:
        return "failed"
    if summary.filled == 0:
        return "unfilled"
    return "filled" if decision.amount is not None and summary.filled >= decision.amount else "partial"


def log_performance(
    name: str,
    agent: AgentConfig,
    settings: Settings,
    *,
    dag_id: str,
    run_id: str,
    as_of: datetime,
    market: dict[str, Any],
    sentiment: dict[str, Any],
    decided: dict[str, Any],
    risk: dict[str, Any] | None,
) -> dict[str, Any]:
    """Write the run's row: the decision, the verdict, and what the venue says the order did."""
    from tradeops.saga import store
    from tradeops.saga.keys import idempotency_key
    from tradeops.venues.factory import open_raw_venue

    decision = Decision.from_dict(decided["decision"])
    key = idempotency_key(dag_id, run_id, EXECUTE_TASK_ID, 0)
    step = next((s for s in store.steps(dag_id, run_id) if s.idempotency_key == key), None)
    original, reverses = None, []
    if step is not None:
        original, reverses = _orders_of_step(open_raw_venue(agent.venue, settings=settings), key, agent.symbol)
    summary = ledger.summarize_fills(original, reverses)
    verdict = None if risk is None else risk["verdict"]
    outcome = _outcome(None if step is None else str(step.status), decision, summary, verdict=verdict)
    before = ledger.book(name, excluding_run=run_id)
    position, cash = before.position + summary.base_change, before.cash + summary.cash_change
    row = {
        "agent": name,
        "dag_id": dag_id,
        "run_id": run_id,
        "venue": agent.venue,
        "symbol": agent.symbol,
        "as_of": as_of,
        "decided_at": datetime.fromisoformat(decided["decided_at"]),
        "logged_at": datetime.now(UTC),
        "price": decision.price,
        "sentiment_score": float(sentiment["result"]["score"]),
        "sentiment_confidence": float(sentiment["result"]["confidence"]),
        "technical_signal": float(decided["inputs"]["technical"]["signal"]),
        "technical_confidence": float(decided["inputs"]["technical"]["confidence"]),
        "model_version": (decided["inputs"]["model"] or {}).get("version"),
        "model_probability": (decided["inputs"]["model"] or {}).get("probability"),
        "score": decision.score,
        "action": decision.action,
        "amount": decision.amount,
        "rationale": decision.rationale,
        "risk_rule": None if verdict is None else verdict["rule"],
        "risk_reason": None if verdict is None or verdict["approved"] else verdict["reason"],
        "outcome": outcome,
        "client_order_id": key if step is not None else None,
        "order_status": summary.order_status,
        "filled": abs(summary.base_change) if outcome == "undone" else summary.filled,
        "fill_price": summary.fill_price,
        "fee": summary.fee_quote,
        "position_after": position,
        "cash_after": cash,
        "equity_after": cash + position * decision.price,
        "detail": _detail(step, original, reverses),
        "inputs": {
            "decision_inputs": decided["inputs"],
            "decision": decided["decision"],
            "headlines": sentiment["headlines"],
            "sentiment": {"now": sentiment["now"], "half_life_minutes": sentiment["half_life_minutes"]},
            "market": {k: v for k, v in market.items()},
            "risk": risk,
        },
    }
    ledger.record(row)
    return {
        "outcome": outcome,
        "action": decision.action,
        "filled": str(row["filled"]),
        "position_after": str(position),
        "equity_after": str(row["equity_after"]),
        "client_order_id": row["client_order_id"],
    }


def _detail(step: Any, original: Any, reverses: list[Any]) -> str | None:
    if step is None:
        return None
    parts = [f"saga step {step.idempotency_key}: {step.status}"]
    if original is not None:
        parts.append(f"order {original.order_id} {original.status.value} {original.filled}/{original.amount}")
    else:
        parts.append("the venue has no order with this client id")
    parts.extend(f"reverse {o.client_order_id} {o.side.value} {o.status.value} {o.filled}/{o.amount}" for o in reverses)
    return "; ".join(parts)
