"""SAGA machinery: steps with named undos, compensation in reverse order, ledger, circuit breaker."""
