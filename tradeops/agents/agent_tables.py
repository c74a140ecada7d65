"""What the trading agents record in the project database.

``agent_decisions``: one row per agent run that reached its decision (runs skipped outside market
hours leave none): the price, the sentiment and technical scores, the model's probability, the
final score, the action and its rationale, the risk verdict, the order and what the venue says it
filled, whether the saga undid it, and the agent's position, cash and equity after the run.
``inputs`` holds, as JSON, every input the decision used (headlines, feature values, model
prediction, configuration, position, trading state), so ``tradeops agents replay`` can recompute
the decision from the row alone. Amounts are exact decimals; scores and probabilities are floats.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from tradeops.db import DecimalText, UTCDateTime, metadata

agent_decisions = Table(
    "agent_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent", String(64), nullable=False),
    Column("dag_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("venue", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("as_of", UTCDateTime, nullable=False),  # the run's scheduled time
    Column("decided_at", UTCDateTime, nullable=False),
    Column("logged_at", UTCDateTime, nullable=False),
    Column("price", DecimalText, nullable=False),  # the venue's mark when the decision was made
    Column("sentiment_score", Float, nullable=False),
    Column("sentiment_confidence", Float, nullable=False),
    Column("technical_signal", Float, nullable=False),
    Column("technical_confidence", Float, nullable=False),
    Column("model_version", String(32), nullable=True),
    Column("model_probability", Float, nullable=True),
    Column("score", Float, nullable=False),
    Column("action", String(8), nullable=False),  # buy, sell, hold
    Column("amount", DecimalText, nullable=True),  # base units ordered (null: no order)
    Column("rationale", Text, nullable=False),
    Column("risk_rule", String(64), nullable=True),  # the rule that rejected the order
    Column("risk_reason", Text, nullable=True),
    # hold, rejected, filled, partial, unfilled, undone, failed
    Column("outcome", String(16), nullable=False),
    Column("client_order_id", String(128), nullable=True),
    Column("order_status", String(16), nullable=True),
    Column("filled", DecimalText, nullable=False),  # base units the venue filled (net of an undo)
    Column("fill_price", DecimalText, nullable=True),  # average price of the order's fills
    Column("fee", DecimalText, nullable=False),  # in the quote asset
    Column("position_after", DecimalText, nullable=False),  # the agent's base position after the run
    Column("cash_after", DecimalText, nullable=False),  # the agent's quote cash flow since its first run
    Column("equity_after", DecimalText, nullable=False),  # cash_after + position_after x price
    Column("detail", Text, nullable=True),  # what happened after the decision (errors, the undo)
    Column("inputs", Text, nullable=False),
    UniqueConstraint("dag_id", "run_id", name="uq_agent_decisions_run"),
    Index("ix_agent_decisions_agent_as_of", "agent", "as_of"),
)
