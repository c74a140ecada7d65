"""Deployment tasks: the Airflow side of ``tradeops.models.deployment`` and ``canary``.

Every refusal rolls back first (routing on the champion, ``challenger`` removed, recorded), then
publishes a ``model_deployment`` event and fails the task with the reason. The canary waits out
each window deferred (a ``DateTimeTrigger`` in the triggerer), holding no worker slot.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from operators.market_data import store_root
from tradeops.config import Settings, settings

log = logging.getLogger(__name__)
ACTOR = "deployment_pipeline"
RESOLVE_TASK = "resolve"
CANARY_STATE = "canary_progress"


def release_of(context: Context) -> Any:
    from tradeops.models.deployment import Release

    data = context["ti"].xcom_pull(task_ids=RESOLVE_TASK)
    return Release(data["green"], data["blue"])


def notify(loaded: Settings, status: str, release: Any, reason: str, **extra: Any) -> None:
    """A ``model_deployment`` event; a broker that does not answer is logged, never blocks the
    rollout or its rollback (routing and its history already hold the truth)."""
    from tradeops.events import build_event
    from tradeops.kafka.producer import publish

    fields = {
        "status": status,
        "model": loaded.models.registered_model,
        "version": release.green,
        "champion": release.blue,
        "reason": reason[:1000],
        **extra,
    }
    try:
        publish(build_event("model_deployment", fields))
    except Exception:
        log.exception("model_deployment event (%s) not published", status)


def refuse(loaded: Settings, release: Any, reason: str, **extra: Any) -> AirflowFailException:
    """Roll back, tell, and return the exception that fails the task."""
    from tradeops.models.deployment import rollback

    rollback(loaded, release, reason, actor=ACTOR)
    notify(loaded, "rolled_back", release, reason, **extra)
    return AirflowFailException(f"rolled back: {reason}")


class ResolveReleaseOperator(BaseOperator):
    """Which version to deploy (conf ``version``, else the ``challenger`` alias) and the champion."""

    ui_color = "#f5ecd9"

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.models.deployment import DeploymentError, resolve

        loaded = settings()
        try:
            release = resolve(loaded, (context["dag_run"].conf or {}).get("version"))
        except DeploymentError as exc:
            raise AirflowFailException(str(exc)) from exc
        notify(loaded, "started", release, f"deploying version {release.green} (champion {release.blue or 'none'})")
        return release.to_dict()


class PreDeployOperator(BaseOperator):
    """Load from the registry, smoke predictions on recent features, check requirements."""

    ui_color = "#f5ecd9"

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.market_data.store import FeatureStore
        from tradeops.models.deployment import DeploymentError, pre_deploy

        loaded, release = settings(), release_of(context)
        try:
            return pre_deploy(loaded, FeatureStore(store_root(loaded)), release.green)
        except DeploymentError as exc:
            raise refuse(loaded, release, f"pre-deploy: {exc}") from exc


class ShadowReplayOperator(BaseOperator):
    """Blue/green: the last stored days through both models, validity, latency, paired PnL."""

    ui_color = "#f5ecd9"

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.market_data.store import FeatureStore
        from tradeops.models.deployment import DeploymentError, shadow

        loaded, release = settings(), release_of(context)
        try:
            report = shadow(loaded, FeatureStore(store_root(loaded)), release)
        except DeploymentError as exc:
            raise refuse(loaded, release, str(exc)) from exc
        log.info("shadow replay: %s", report.to_dict())
        return report.to_dict()


class CanaryOperator(BaseOperator):
    """Stage by stage: route the stage's instruments to the challenger, wait the window out
    deferred, judge; pass -> next stage, extend -> wait more (up to the longest window),
    fail -> roll back, hold -> stop here for a person (routing left as it is)."""

    ui_color = "#f5ecd9"

    def execute(self, context: Context) -> None:
        # planned once: a day stored during the rollout must not reshuffle which instruments
        # each stage holds (the verdict judges the instruments that were routed)
        self._begin(context, 0, self._plan(settings()))

    def _plan(self, loaded: Settings) -> list[list[tuple[str, str]]]:
        from tradeops.market_data.store import FeatureStore
        from tradeops.models import canary

        ordered = canary.order(loaded, FeatureStore(store_root(loaded)))
        return canary.stages(ordered, loaded.models.deployment.canary_stages)

    def _begin(self, context: Context, stage: int, plan: list[list[tuple[str, str]]]) -> None:
        from tradeops.models import routing

        loaded, release = settings(), release_of(context)
        instruments = plan[stage]
        deployment = loaded.models.deployment
        share = deployment.canary_stages[stage]
        routing.assign(
            instruments,
            release.green,
            "canary",
            actor=ACTOR,
            reason=f"canary stage {stage + 1} of {len(deployment.canary_stages)}: {share:.0%} of the universe",
        )
        window = deployment.first_window_seconds if stage == 0 else deployment.window_seconds
        started = datetime.now(UTC)
        log.info(
            "canary stage %d: %d instruments on version %s for %g s", stage + 1, len(instruments), release.green, window
        )
        self._wait(
            context,
            plan,
            stage,
            started,
            started + timedelta(seconds=window),
            started + timedelta(seconds=window * deployment.max_window_factor),
            started + timedelta(seconds=window),
        )

    def _wait(
        self,
        context: Context,
        plan: list[list[tuple[str, str]]],
        stage: int,
        started: datetime,
        window_end: datetime,
        latest_end: datetime,
        until: datetime,
    ) -> None:
        # the progress goes to XCom, not the trigger's kwargs: dag.test() replaces those with the
        # event when it resumes the task
        context["ti"].xcom_push(
            key=CANARY_STATE,
            value={
                "plan": plan,
                "stage": stage,
                "started": started.isoformat(),
                "window_end": window_end.isoformat(),
                "latest_end": latest_end.isoformat(),
            },
        )
        self.defer(trigger=DateTimeTrigger(moment=until), method_name="check")

    def check(self, context: Context, event: Any = None) -> dict[str, Any] | None:
        from tradeops.market_data.health_check import load_state
        from tradeops.models import canary
        from tradeops.venues.factory import open_raw_venue

        loaded, release = settings(), release_of(context)
        state = context["ti"].xcom_pull(task_ids=self.task_id, key=CANARY_STATE)
        stage = int(state["stage"])
        begun, planned, longest = (datetime.fromisoformat(state[k]) for k in ("started", "window_end", "latest_end"))
        now = datetime.now(UTC)
        plan = [[(str(venue), str(symbol)) for venue, symbol in instruments] for instruments in state["plan"]]
        history = load_state(store_root(loaded)).get("history", [])
        verdict = canary.judge(
            loaded,
            release.green,
            release.blue,
            plan[stage],
            since=begun,
            now=now,
            window_end=planned,
            latest_end=longest,
            open_venue=lambda name: open_raw_venue(name, settings=loaded),
            critical=canary.critical_findings(history, begun, now),
        )
        log.info("canary stage %d verdict: %s", stage + 1, verdict.to_dict())
        extra = {"stage": stage + 1, "instruments": len(plan[stage])}
        if verdict.outcome == "fail":
            raise refuse(loaded, release, f"canary stage {stage + 1}: {verdict.reason}", **extra)
        if verdict.outcome == "hold":
            reason = (
                f"canary held at stage {stage + 1} ({len(plan[stage])} instruments on version {release.green}):"
                f" {verdict.reason}. Decide: `tradeops models rollback`, or clear this task to watch again"
            )
            notify(loaded, "held", release, reason, **extra)
            raise AirflowFailException(reason)
        if verdict.outcome == "extend":
            step = max((planned - begun).total_seconds() / 4, 1.0)
            self._wait(context, plan, stage, begun, planned, longest, min(now + timedelta(seconds=step), longest))
        notify(loaded, "stage_passed", release, f"canary stage {stage + 1}: {verdict.reason}", **extra)
        if stage + 1 < len(plan):
            self._begin(context, stage + 1, plan)
        return {"stages": len(plan), "last": verdict.to_dict()}


class FinalizeOperator(BaseOperator):
    """``champion`` -> the new version on every instrument, ``previous`` -> the old one."""

    ui_color = "#f5ecd9"

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.models.deployment import finalize

        loaded, release = settings(), release_of(context)
        finalize(loaded, release, actor=ACTOR)
        notify(
            loaded,
            "finalized",
            release,
            f"version {release.green} is the champion (previous: {release.blue or 'none'})",
        )
        return {"champion": release.green, "previous": release.blue}
