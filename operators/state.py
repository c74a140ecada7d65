"""Trading-state operators: the Airflow side of ``tradeops.risk``."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from tradeops import risk


class SetTradingStateOperator(BaseOperator):
    """Set the trading state (ACTIVE / REDUCING / HALTED) with a reason; both templated."""

    template_fields = ("state", "reason")

    def __init__(self, *, state: str, reason: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.reason = reason

    def execute(self, context: Context) -> dict[str, str]:
        try:
            new_state = risk.TradingState(str(self.state).upper())
        except ValueError:
            raise ValueError(
                f"state must be one of {[s.value for s in risk.TradingState]}, got {self.state!r}"
            ) from None
        dag_run = context["dag_run"]
        who = getattr(dag_run, "triggering_user_name", None) or "unknown"
        before = risk.get_state().state
        record = risk.set_state(new_state, reason=str(self.reason), changed_by=f"airflow:{who}:{dag_run.dag_id}")
        self.log.warning("Trading state %s -> %s by %s: %s", before.value, record.state.value, who, record.reason)
        return {"before": before.value, "after": record.state.value, "reason": record.reason}
