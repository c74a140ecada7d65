"""Per-asset trading agents: each agent is one DAG generated from ``config/agents.yaml``.

An agent run checks the market's hours, fetches minute bars, scores the symbol's headlines
(sentiment) and its technical picture (the feature registry's RSI, MACD, moving-average regime and
volatility), blends them with the prediction of the model routed to the instrument, validates the
resulting order against its risk limits and the trading state, executes it as a saga step, and
logs every input the decision used so the decision can be replayed exactly.
"""
