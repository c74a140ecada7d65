"""Market-data tasks: the Airflow side of ``tradeops.market_data`` (the logic lives there).

Each task works on the day of its run (partition key, else ``conf["day"]``, else the day before
the logical date), reads what the previous task handed over in the store's ``staging/`` folder,
and returns a small JSON summary (XCom never carries bars).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from airflow.sdk import Asset, BaseOperator, Context, ExceptionRetryPolicy, RetryAction, RetryRule
from airflow.sdk.exceptions import AirflowFailException

from tradeops.config import PROJECT_ROOT, Settings, settings
from tradeops.errors import DataValidationError
from tradeops.market_data import frames, pipeline
from tradeops.market_data.store import store_url

log = logging.getLogger(__name__)

# One event per stored day, carrying the day as its partition key: training follows it.
FEATURES_ASSET = Asset(name="tradeops_features", uri="tradeops://feature-store/features")


# Retries (with the DAG's backoff) only where a later try can succeed: a venue's temporary error,
# an object store that did not answer. Anything else (a bug, bad config, a missing hand-over file)
# fails at once instead of retrying for an hour.
DATA_RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(exception="builtins.FileNotFoundError", action=RetryAction.FAIL, reason="missing file: no retry"),
        RetryRule(
            exception="tradeops.errors.TemporaryVenueError",
            action=RetryAction.RETRY,
            reason="temporary venue error: retry with backoff",
        ),
        RetryRule(exception="builtins.OSError", action=RetryAction.RETRY, reason="object store I/O: retry"),
    ],
    default=RetryAction.FAIL,
)


def store_root(loaded: Settings) -> Any:
    """The store's root as an ``ObjectStoragePath`` (``file://`` or ``s3://`` with its connection)."""
    from airflow.sdk import ObjectStoragePath

    config = loaded.market_data
    url = store_url(config.store_url, PROJECT_ROOT)
    return ObjectStoragePath(url, conn_id=config.store_conn_id) if config.store_conn_id else ObjectStoragePath(url)


def run_day(context: Context) -> date:
    dag_run = context["dag_run"]
    return pipeline.resolve_day(
        getattr(dag_run, "partition_key", None), dict(dag_run.conf or {}), getattr(dag_run, "logical_date", None)
    )


def run_key(context: Context) -> str:
    dag_run = context["dag_run"]
    return f"{dag_run.dag_id}/{dag_run.run_id}"


class _DayOperator(BaseOperator):
    ui_color = "#e3f2e1"

    def context_of(self, context: Context) -> tuple[Settings, Any, date, str]:
        loaded = settings()
        return loaded, store_root(loaded), run_day(context), run_key(context)


class ExtractBarsOperator(_DayOperator):
    """1-minute bars of every configured instrument for the run's day, plus the warm-up."""

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.venues.factory import open_raw_venue

        loaded, root, day, key = self.context_of(context)
        raw = pipeline.extract(loaded, day, lambda name: open_raw_venue(name, settings=loaded))
        pipeline.stage(root, key, "raw", raw)
        day_rows = raw.loc[~raw["warmup"]]
        return {
            "day": day.isoformat(),
            "bars": len(day_rows),
            "warmup_bars": int(raw["warmup"].sum()),
            "instruments": len(frames.instruments(raw)),
        }


class ValidateBarsOperator(_DayOperator):
    """The policy's checks: a ``fail`` finding fails the task (no retry: the data will not change)."""

    def execute(self, context: Context) -> dict[str, Any]:
        loaded, root, day, key = self.context_of(context)
        raw = pipeline.staged(root, key, "raw")
        try:
            result = pipeline.validate(loaded, day, raw)
        except DataValidationError as exc:
            raise AirflowFailException(str(exc)) from exc
        pipeline.stage(root, key, "validated", result.bars)
        pipeline.stage_json(root, key, "validation", result.summary())
        return {
            "day": day.isoformat(),
            "kept_bars": len(result.bars),
            "quarantined": sorted(result.quarantined),
            "findings": dict(Counter(f.check for f in result.findings)),
            "filled_bars": result.filled,
        }


class ComputeFeaturesOperator(_DayOperator):
    def execute(self, context: Context) -> dict[str, Any]:
        _loaded, root, day, key = self.context_of(context)
        raw = pipeline.staged(root, key, "raw")
        validated = pipeline.staged(root, key, "validated")
        features = pipeline.compute_features(raw, validated, day, created_at=datetime.now(UTC))
        pipeline.stage(root, key, "features", features)
        return {"day": day.isoformat(), "rows": len(features)}


class LoadFeaturesOperator(_DayOperator):
    """Swap the day's partition in, then publish the partitioned features asset for that day."""

    def execute(self, context: Context) -> dict[str, Any]:
        _loaded, root, day, key = self.context_of(context)
        features = pipeline.staged(root, key, "features")
        summary = pipeline.staged_json(root, key, "validation")
        manifest = pipeline.load(root, day, features, summary)
        log.info("day %s loaded: %d rows, version %s", day, manifest["rows"], manifest["version"])
        for outlet in self.outlets:
            accessor = context["outlet_events"][outlet]
            accessor.add_partitions(day.isoformat())
            accessor.extra = {"day": day.isoformat(), "version": manifest["version"], "rows": manifest["rows"]}
        return {
            "day": day.isoformat(),
            "version": manifest["version"],
            "rows": manifest["rows"],
            "quarantined": sorted(summary["quarantined"]),
        }


class ArchiveBarsOperator(_DayOperator):
    def execute(self, context: Context) -> dict[str, Any]:
        _loaded, root, day, key = self.context_of(context)
        entries = pipeline.archive(root, day, pipeline.staged(root, key, "raw"))
        return {
            "day": day.isoformat(),
            "files": [e["path"] for e in entries],
            "unchanged": all(e["unchanged"] for e in entries),
        }


def publish_alerts(alerts: list[Any]) -> int:
    """Publish ``data_alert`` events; a broker that does not answer is logged, not fatal (the
    health result is already stored and in the log)."""
    from tradeops.errors import TradeopsError
    from tradeops.kafka.producer import publish

    sent = 0
    for alert in alerts:
        log.log(
            logging.CRITICAL if alert.level == "critical" else logging.WARNING,
            "data_alert %s %s %s: %s",
            alert.level,
            alert.check,
            alert.scope,
            alert.message,
        )
        try:
            publish(alert)
            sent += 1
        except TradeopsError as exc:
            log.error("data_alert not published (%s): %s", type(exc).__name__, exc)
    return sent


class CheckDataHealthOperator(_DayOperator):
    """Freshness per symbol and drift of the day against the previous days, into the manifest."""

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.market_data import health_check

        loaded, root, day, _key = self.context_of(context)
        result = health_check.nightly(loaded, root, day)
        for verdict in result.verdicts:
            self.log.info(
                "drift %s on %s: %s - %s", verdict.group, day, verdict.assessment.level, verdict.assessment.summary
            )
        return {"day": day.isoformat(), **result.summary(), "published": publish_alerts(result.alerts)}


class FeatureHealthOperator(BaseOperator):
    """The hourly check of the window ending at the run's scheduled hour (never the wall clock)."""

    ui_color = "#fff3d6"

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.market_data import health_check
        from tradeops.venues.factory import open_raw_venue

        loaded = settings()
        root = store_root(loaded)
        end = _window_end(context)
        result = health_check.hourly(loaded, root, end, lambda name: open_raw_venue(name, settings=loaded))
        for verdict in result.verdicts:
            self.log.info(
                "drift %s: %s - %s; report: %s",
                verdict.group,
                verdict.assessment.level,
                verdict.assessment.summary,
                result.reports.get(verdict.group),
            )
        return {**result.summary(), "published": publish_alerts(result.alerts)}


def _window_end(context: Context) -> datetime:
    """The hour the run stands for: ``conf["window_end"]``, else its logical date or run_after,
    floored to the minute."""
    dag_run = context["dag_run"]
    conf = dict(dag_run.conf or {})
    if conf.get("window_end"):
        value = datetime.fromisoformat(str(conf["window_end"]).replace("Z", "+00:00"))
    else:
        value = getattr(dag_run, "logical_date", None) or dag_run.run_after
    if value.tzinfo is None:
        raise ValueError(f"window_end {value!r} needs a timezone")
    return value.astimezone(UTC).replace(second=0, microsecond=0)


class CleanStagingOperator(_DayOperator):
    def execute(self, context: Context) -> None:
        _loaded, root, _day, key = self.context_of(context)
        pipeline.clean_staging(root, key)


async def pipeline_late(hours: float, context: dict[str, Any] | None = None) -> None:
    """Deadline callback (runs in the triggerer): the nightly run is not done in time. Publishes a
    critical ``data_alert`` (to ``data-alerts``: people act on it, no watcher does)."""
    from tradeops.events import build_event
    from tradeops.kafka.producer import publish

    dag_run = (context or {}).get("dag_run") or {}
    message = (
        f"data_pipeline run {dag_run.get('dag_run_id', '?')} (queued {dag_run.get('queued_at', '?')}) "
        f"is not finished {hours:g} h after it was queued"
    )
    log.critical(message)
    event = build_event(
        "data_alert", {"level": "critical", "check": "deadline", "scope": "data_pipeline", "message": message}
    )
    await asyncio.to_thread(publish, event)
