"""Models: weekly training on the feature store with purged cross-validation and a backtest of
the held-out window, promotion gates, the MLflow registry and its aliases, serving through a
routing table, and blue/green plus per-instrument canary deployment with automatic rollback."""
