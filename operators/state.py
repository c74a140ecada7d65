"""Trading-state operators: the Airflow side of ``tradeops.risk``.

``trading_state_control`` routes a request: HALTED (the safe direction) is set at once; ACTIVE
and REDUCING wait for an approval under Required Actions (``ApprovalOperator``), and are set with
the approver's name, by someone other than the requester when ``trading_state.distinct_approver``.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from tradeops import risk
from tradeops.config import settings


def _requested(value: object) -> risk.TradingState:
    try:
        return risk.TradingState(str(value).upper())
    except ValueError:
        raise AirflowFailException(
            f"state must be one of {[s.value for s in risk.TradingState]}, got {value!r}"
        ) from None


def _requester(context: Context) -> str:
    return getattr(context["dag_run"], "triggering_user_name", None) or "unknown"


class RouteStateChangeOperator(BaseBranchOperator):
    """To ``set_task_id`` for HALTED, to ``approval_task_id`` for anything that loosens trading."""

    template_fields = ("state",)

    def __init__(self, *, state: str, approval_task_id: str, set_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.approval_task_id = approval_task_id
        self.set_task_id = set_task_id

    def choose_branch(self, context: Context) -> str:
        requested = _requested(self.state)
        self.log.warning("%s asks for %s", _requester(context), requested.value)
        if requested is risk.TradingState.HALTED:
            return self.set_task_id
        return self.approval_task_id


class SetTradingStateOperator(BaseOperator):
    """Set the trading state (ACTIVE / REDUCING / HALTED) with a reason; both templated.

    With ``approval_task_id``, any state but HALTED is set only after that task's "Approve"; the
    state history then names the approver and the requester.
    """

    template_fields = ("state", "reason")

    def __init__(self, *, state: str, reason: str, approval_task_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.reason = reason
        self.approval_task_id = approval_task_id

    def execute(self, context: Context) -> dict[str, str]:
        new_state = _requested(self.state)
        dag_run = context["dag_run"]
        requester = _requester(context)
        changed_by, reason = f"airflow:{requester}:{dag_run.dag_id}", str(self.reason)
        if self.approval_task_id and new_state is not risk.TradingState.HALTED:
            approver = self._approver(context, requester)
            changed_by = f"airflow:{approver}:{dag_run.dag_id}"
            reason = f"{reason} (requested by {requester}, approved by {approver})"
        record = risk.set_state(new_state, reason=reason, changed_by=changed_by)
        self.log.warning("Trading state set to %s by %s: %s", record.state.value, changed_by, reason)
        return {"after": record.state.value, "reason": record.reason, "by": changed_by}

    def _approver(self, context: Context, requester: str) -> str:
        answer = context["ti"].xcom_pull(task_ids=self.approval_task_id)
        if not answer or answer.get("chosen_options") != ["Approve"]:
            raise AirflowFailException(f"{self.state} needs an approval in '{self.approval_task_id}'; none was given")
        user = answer.get("responded_by_user") or {}
        approver = str(user.get("name") or user.get("id") or "")
        if not approver:
            raise AirflowFailException("the approval names no user: refused")
        if settings().trading_state.distinct_approver and approver == requester:
            raise AirflowFailException(
                f"{approver} asked for {self.state} and approved it: another Airflow user must approve "
                "(trading_state.distinct_approver)"
            )
        return approver
