"""The market-data DAGs end to end with ``dag.test()``: real Airflow, the paper venue, a local
object store (``file://`` through ``ObjectStoragePath``) and the real broker for the alerts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.dag_files import load_dag
from tests.fixtures.kafka import end_offsets, read_from
from tests.fixtures.paper import data_fault, set_data_faults
from tests.fixtures.watch import fresh_topics
from tradeops.config import settings
from tradeops.market_data.store import FeatureStore

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
DAY = date(2026, 11, 24)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paper_world: None) -> FeatureStore:
    from upath import UPath

    url = (tmp_path / "store").as_uri()
    monkeypatch.setenv("TRADEOPS__MARKET_DATA__STORE_URL", url)
    settings.cache_clear()
    return FeatureStore(UPath(url))


def _pipeline(day: date) -> Any:
    dag = load_dag("data_pipeline")
    # dag.test() in Airflow 3.3.2 cannot run a DAG with a deadline (it hands the alert's definition
    # where its database id belongs: "'dict' object has no attribute 'hex'"); the deadline is
    # checked on its own below.
    dag.deadline = None
    return dag.test(run_conf={"day": day.isoformat()})


def test_data_pipeline_when_parsed_then_a_two_hour_deadline_from_queued_with_our_callback() -> None:
    from airflow.sdk import AsyncCallback, DeadlineReference

    from operators.market_data import pipeline_late

    (alert,) = load_dag("data_pipeline").deadline
    assert alert.interval == timedelta(hours=2)
    assert isinstance(alert.reference, type(DeadlineReference.DAGRUN_QUEUED_AT))
    assert isinstance(alert.callback, AsyncCallback) and alert.callback.kwargs == {"hours": 2.0}
    assert alert.callback.path == f"{pipeline_late.__module__}.{pipeline_late.__name__}"


def test_deadline_callback_when_called_as_the_triggerer_does_then_critical_data_alert_published(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from operators.market_data import pipeline_late

    with fresh_topics(kafka_bootstrap, monkeypatch) as topics:
        start = end_offsets(kafka_bootstrap, topics.data_alerts)
        context = {
            "dag_run": {"dag_run_id": "scheduled__2026-11-25", "queued_at": "2026-11-25T02:00:00Z"},
            "deadline": {"id": "x", "deadline_time": "2026-11-25T04:00:00Z"},
        }

        asyncio.run(pipeline_late(hours=2.0, context=context))

        (message,) = read_from(kafka_bootstrap, topics.data_alerts, start, polls=8)
        alert = json.loads(message.value())
        assert (alert["event_type"], alert["level"], alert["check"]) == ("data_alert", "critical", "deadline")
        assert "scheduled__2026-11-25" in alert["message"] and "2 h" in alert["message"]


def _task_states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_data_pipeline_when_run_for_a_day_then_partition_archive_health_and_asset_event(
    store: FeatureStore, airflow_db: Path
) -> None:
    run = _pipeline(DAY)

    assert run.state == "success", _task_states(run)
    manifest = store.manifest(DAY)
    assert manifest["rows"] == 2 * 1440 + 2 * 390 and manifest["validation"]["quarantined"] == {}
    assert [e["unchanged"] for e in manifest["archive"]] == [False, False]
    assert {f["status"] for f in manifest["health"]["freshness"]} == {"fresh"}
    assert {g["group"] for g in manifest["health"]["drift"]} == {"24/7", "XNYS"}
    assert not (store.root / "staging").exists() or not list((store.root / "staging").iterdir())
    assert _partition_events("tradeops_features") == [DAY.isoformat()]


def _partition_events(asset_name: str) -> list[str]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.settings import Session

    with Session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == asset_name)
            .all()
        )
        return [row.partition_key for row in rows]


def test_data_pipeline_when_a_day_is_rerun_then_replaced_same_rows_no_duplicates(
    store: FeatureStore, airflow_db: Path
) -> None:
    first = _pipeline(DAY)
    version = store.manifest(DAY)["version"]
    second = _pipeline(DAY)

    assert first.state == second.state == "success"
    manifest = store.manifest(DAY)
    assert manifest["version"] != version and manifest["rows"] == 2 * 1440 + 2 * 390
    stored = store.read_day(DAY, verify=True)
    assert len(stored) == manifest["rows"] and not stored.duplicated(["venue", "symbol", "ts"]).any()
    assert all(e["unchanged"] for e in manifest["archive"])  # the archive is idempotent


def test_data_pipeline_when_a_symbol_has_a_missing_hour_then_quarantined_and_the_rest_loaded(
    store: FeatureStore, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_data_faults(
        monkeypatch,
        data_fault("alpaca", "IWM/USD", "missing", "2026-11-24T17:00:00Z", "2026-11-24T18:00:00Z"),
    )
    run = _pipeline(DAY)

    assert run.state == "success", _task_states(run)
    manifest = store.manifest(DAY)
    reasons = manifest["validation"]["quarantined"]["alpaca IWM/USD"]
    assert any("gap" in r and "2026-11-24T17:00:00+00:00" in r for r in reasons)
    assert "alpaca IWM/USD" not in manifest["symbols"] and manifest["rows"] == 2 * 1440 + 390
    assert manifest["validation"]["completeness"]["alpaca IWM/USD"]["missing"] == 60


def test_data_pipeline_when_most_symbols_broken_then_validate_fails_and_the_stored_day_stays(
    store: FeatureStore, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _pipeline(DAY).state == "success"
    version = store.manifest(DAY)["version"]
    broken = [
        data_fault(v, s, "negative_volume", "2026-11-24T15:00:00Z", "2026-11-24T15:05:00Z")
        for v, s in (("binance", "BTC/USDT"), ("binance", "ETH/USDT"), ("alpaca", "TSLA/USD"))
    ]
    set_data_faults(monkeypatch, *broken)

    run = _pipeline(DAY)

    states = _task_states(run)
    assert run.state == "failed" and states["validate"] == "failed" and states["load"] == "upstream_failed"
    assert store.manifest(DAY)["version"] == version  # the good day was not replaced


def test_feature_health_check_when_features_are_like_the_reference_then_no_drift_alert(
    store: FeatureStore, airflow_db: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_topics(kafka_bootstrap, monkeypatch) as topics:
        _store_days_before(DAY, 3)
        start = end_offsets(kafka_bootstrap, topics.data_alerts)

        run = _health(datetime(2026, 11, 24, 20, 0, tzinfo=UTC))

        assert run.state == "success"
        summary = _summary(run)
        assert summary["groups"]["24/7"]["level"] in ("ok", "info"), summary
        alerts = [json.loads(m.value()) for m in read_from(kafka_bootstrap, topics.data_alerts, start, polls=8)]
        assert [a for a in alerts if a["check"] == "feature_drift"] == []
        report = Path(summary["reports"]["24/7"].removeprefix("file://"))
        assert report.read_text().startswith("#") and list(report.parent.glob("*.png"))


def test_feature_health_check_when_prices_freeze_then_drift_escalates_to_critical_after_k_windows(
    store: FeatureStore, airflow_db: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_topics(kafka_bootstrap, monkeypatch) as topics:
        _store_days_before(DAY, 3)
        set_data_faults(
            monkeypatch,
            *[
                data_fault("binance", s, "stale", "2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z")
                for s in ("BTC/USDT", "ETH/USDT")
            ],
        )
        start = end_offsets(kafka_bootstrap, topics.data_alerts)
        k = settings().feature_health.consecutive_windows
        levels = []
        for hour in range(k):
            run = _health(datetime(2026, 11, 24, 12 + hour, 0, tzinfo=UTC))
            assert run.state == "success"
            levels.append(_summary(run)["groups"]["24/7"]["level"])

        assert levels[-1] == "critical" and "critical" not in levels[:-1], levels
        alerts = [json.loads(m.value()) for m in read_from(kafka_bootstrap, topics.data_alerts, start, polls=12)]
        drift = [a for a in alerts if a["check"] == "feature_drift" and a["scope"] == "24/7"]
        assert drift and drift[-1]["level"] == "critical" and drift[-1]["event_type"] == "data_alert"
        assert "rv_30" in drift[-1]["features"] or "range_pct" in drift[-1]["features"]


def _store_days_before(day: date, count: int) -> None:
    """The reference the hourly check reads: ``count`` days before ``day`` through the pipeline."""
    for offset in range(count, 0, -1):
        assert _pipeline(day - timedelta(days=offset)).state == "success"


def _health(end: datetime) -> Any:
    return load_dag("feature_health_check").test(run_conf={"window_end": end.isoformat()})


def _summary(run: Any) -> dict[str, Any]:
    ti = next(t for t in run.get_task_instances() if t.task_id == "check_feature_health")
    from airflow.models.xcom import XComModel
    from airflow.settings import Session

    with Session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, key="return_value")
            .one()
        )
        value = row.value
    return json.loads(value) if isinstance(value, str) else value
