"""The agent's decision: blend sentiment, the technical picture and the routed model into one
score, turn it into buy / sell / hold and an order size, and say why in words.

``decide`` is pure: ``DecisionInputs`` holds everything it reads (scores, model probability,
position, price, the agent's weights and sizing), logged with the decision so a replay gives
the same result. The score:

    blended = w_sentiment x sentiment x confidence + w_technical x technical x confidence
    score   = (1 - model_weight) x blended + model_weight x (2 p_up - 1)   (with a model)
    score   = blended                                                     (without one)

``score >= entry_threshold`` buys, ``score <= -entry_threshold`` sells what the agent holds
(agents do not sell short), otherwise hold. The order's notional is ``sizing.order_notional``,
times ``|score|`` when ``scale_by_conviction``; its amount is rounded down to whole lots, and an
order under ``sizing.min_order_notional`` is not sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

BUY, SELL, HOLD = "buy", "sell", "hold"


@dataclass(frozen=True, kw_only=True)
class DecisionInputs:
    agent: str
    venue: str
    symbol: str
    as_of: str  # ISO time of the run's schedule
    price: Decimal  # the venue's mark when the data was fetched
    position: Decimal  # the agent's base position before this run
    sentiment: dict[str, Any]  # SentimentResult.to_dict()
    technical: dict[str, Any]  # TechnicalResult.to_dict()
    model: dict[str, Any] | None  # version, role, probability (None: no model or it failed), error
    weights: dict[str, float]
    model_weight: float
    entry_threshold: float
    sizing: dict[str, Any]  # order_notional, lot_size (strings), scale_by_conviction, min_order_notional

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "venue": self.venue,
            "symbol": self.symbol,
            "as_of": self.as_of,
            "price": str(self.price),
            "position": str(self.position),
            "sentiment": self.sentiment,
            "technical": self.technical,
            "model": self.model,
            "weights": dict(self.weights),
            "model_weight": self.model_weight,
            "entry_threshold": self.entry_threshold,
            "sizing": dict(self.sizing),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionInputs:
        return cls(
            agent=data["agent"],
            venue=data["venue"],
            symbol=data["symbol"],
            as_of=data["as_of"],
            price=Decimal(data["price"]),
            position=Decimal(data["position"]),
            sentiment=dict(data["sentiment"]),
            technical=dict(data["technical"]),
            model=None if data["model"] is None else dict(data["model"]),
            weights={k: float(v) for k, v in data["weights"].items()},
            model_weight=float(data["model_weight"]),
            entry_threshold=float(data["entry_threshold"]),
            sizing=dict(data["sizing"]),
        )


@dataclass(frozen=True, kw_only=True)
class Decision:
    action: str
    score: float
    blended: float
    model_signal: float | None
    amount: Decimal | None  # base units to trade (None: hold)
    notional: Decimal | None
    price: Decimal
    rationale: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "score": self.score,
            "blended": self.blended,
            "model_signal": self.model_signal,
            "amount": None if self.amount is None else str(self.amount),
            "notional": None if self.notional is None else str(self.notional),
            "price": str(self.price),
            "rationale": self.rationale,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            action=data["action"],
            score=float(data["score"]),
            blended=float(data["blended"]),
            model_signal=None if data["model_signal"] is None else float(data["model_signal"]),
            amount=None if data["amount"] is None else Decimal(data["amount"]),
            notional=None if data["notional"] is None else Decimal(data["notional"]),
            price=Decimal(data["price"]),
            rationale=data["rationale"],
        )


def _model_signal(model: Mapping[str, Any] | None) -> float | None:
    if not model or model.get("probability") is None:
        return None
    return 2.0 * float(model["probability"]) - 1.0


def _size(inputs: DecisionInputs, score: float) -> tuple[Decimal, Decimal]:
    """(amount in whole lots, its notional) for a trade at conviction ``|score|``."""
    sizing = inputs.sizing
    notional = Decimal(str(sizing["order_notional"]))
    if sizing.get("scale_by_conviction", True):
        notional *= Decimal(str(round(min(abs(score), 1.0), 6)))
    lot = Decimal(str(sizing["lot_size"]))
    amount = (notional / inputs.price / lot).to_integral_value(rounding=ROUND_DOWN) * lot
    return amount, amount * inputs.price


def _describe_inputs(inputs: DecisionInputs, model_signal: float | None) -> list[str]:
    sentiment, technical = inputs.sentiment, inputs.technical
    headlines = sentiment.get("headlines") or []
    newest = f", newest: {headlines[-1]['title']!r}" if headlines else ""
    parts = [
        f"sentiment {float(sentiment['score']):+.3f} (confidence {float(sentiment['confidence']):.2f}, "
        f"{len(headlines)} headline(s){newest}) weighted {inputs.weights['sentiment']:.2f}",
        f"technical {float(technical['signal']):+.3f} (confidence {float(technical['confidence']):.2f}: "
        f"{'; '.join(technical.get('notes') or []) or 'no components'}) weighted {inputs.weights['technical']:.2f}",
    ]
    model = inputs.model
    if model_signal is not None and model is not None:
        parts.append(
            f"model {model.get('model', '')} v{model['version']} ({model.get('role')}) p(up) "
            f"{float(model['probability']):.3f} -> {model_signal:+.3f}, {inputs.model_weight:.0%} of the score"
        )
    elif model and model.get("error"):
        parts.append(f"model not used: {model['error']}")
    else:
        parts.append("no model serves this instrument")
    return parts


def decide(inputs: DecisionInputs) -> Decision:
    """The decision for ``inputs`` (pure: the same inputs give the same decision)."""
    sentiment, technical = inputs.sentiment, inputs.technical
    blended = inputs.weights["sentiment"] * float(sentiment["score"]) * float(sentiment["confidence"]) + inputs.weights[
        "technical"
    ] * float(technical["signal"]) * float(technical["confidence"])
    model_signal = _model_signal(inputs.model)
    score = (
        blended if model_signal is None else (1 - inputs.model_weight) * blended + inputs.model_weight * model_signal
    )
    why = _describe_inputs(inputs, model_signal)
    threshold = inputs.entry_threshold
    action, amount, notional = HOLD, None, None
    if abs(score) < threshold:
        verdict = f"HOLD: score {score:+.3f} inside +-{threshold:.2f}"
    elif score < 0 and inputs.position <= 0:
        verdict = f"HOLD: score {score:+.3f} is bearish but the agent holds no {inputs.symbol} (it never sells short)"
    else:
        side = BUY if score > 0 else SELL
        amount, notional = _size(inputs, score)
        if side == SELL and amount > inputs.position:
            amount, notional = inputs.position, inputs.position * inputs.price
        minimum = Decimal(str(inputs.sizing.get("min_order_notional", "0")))
        if amount <= 0 or notional < minimum:
            verdict = (
                f"HOLD: score {score:+.3f} asks to {side} but the order ({amount} {inputs.symbol}, {notional:.2f}) "
                f"is under the minimum ({minimum})"
            )
            amount, notional = None, None
        else:
            action = side
            verdict = (
                f"{side.upper()} {amount} {inputs.symbol} at ~{inputs.price} ({notional:.2f}): score {score:+.3f} "
                f"{'>=' if side == BUY else '<='} {threshold if side == BUY else -threshold:+.2f}; "
                f"position {inputs.position} -> {inputs.position + (amount if side == BUY else -amount)}"
            )
    rationale = f"{verdict}. Inputs: " + "; ".join(why) + f"; blended {blended:+.3f}."
    return Decision(
        action=action,
        score=score,
        blended=blended,
        model_signal=model_signal,
        amount=amount,
        notional=notional,
        price=inputs.price,
        rationale=rationale,
    )
