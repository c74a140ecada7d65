"""The deployment pipeline end to end with ``dag.test()``: a real local MLflow, the routing
table in the project database, the paper venue for realised returns, the real broker for the
``model_deployment`` events, and live predictions served while the canary windows run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from tests.dag_files import load_dag
from tests.fixtures.kafka import end_offsets, read_from
from tests.fixtures.models import register_model, write_feature_days
from tests.fixtures.watch import fresh_topics
from tradeops.config import settings
from tradeops.market_data.registry import FEATURE_NAMES
from tradeops.market_data.store import FeatureStore
from tradeops.models import canary, registry, routing
from tradeops.models.serving import Predictor, predictions

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
DAYS = [date(2026, 11, 20) + timedelta(days=i) for i in range(3)]
UNIVERSE = [("binance", "BTC/USDT"), ("binance", "ETH/USDT")]
COLUMNS = list(FEATURE_NAMES)


class SlowModel(BaseEstimator, ClassifierMixin):
    """A fitted model that answers ``delay`` seconds late (injected latency)."""

    def __init__(self, inner: Any = None, delay: float = 0.3) -> None:
        self.inner = inner
        self.delay = delay

    def fit(self, x: Any, y: Any) -> SlowModel:
        return self

    def predict_proba(self, x: Any) -> Any:
        time.sleep(self.delay)
        return self.inner.predict_proba(x)

    @property
    def classes_(self) -> Any:
        return self.inner.classes_


@pytest.fixture
def deploying(
    model_stores: FeatureStore, paper_world: None, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str
) -> Iterator[tuple[FeatureStore, Any]]:
    """Two instruments, short canary windows, three stored days with a signal, fresh topics."""
    monkeypatch.setenv("TRADEOPS__MARKET_DATA__UNIVERSE", json.dumps({"binance": [s for _, s in UNIVERSE]}))
    monkeypatch.setenv("TRADEOPS__MODELS__DEPLOYMENT__CANARY_STAGES", "[0.5, 1.0]")
    monkeypatch.setenv("TRADEOPS__MODELS__DEPLOYMENT__FIRST_WINDOW_SECONDS", "3")
    monkeypatch.setenv("TRADEOPS__MODELS__DEPLOYMENT__WINDOW_SECONDS", "2")
    monkeypatch.setenv("TRADEOPS__MODELS__DEPLOYMENT__MAX_WINDOW_FACTOR", "2")
    monkeypatch.setenv("TRADEOPS__MODELS__DEPLOYMENT__MIN_SAMPLES", "20")
    with fresh_topics(kafka_bootstrap, monkeypatch) as topics:
        settings.cache_clear()
        write_feature_days(model_stores, DAYS, beta=0.6, instruments=UNIVERSE)
        yield model_stores, topics


def _training_frame(store: FeatureStore) -> tuple[pd.DataFrame, np.ndarray]:
    frame = store.read_days(DAYS)
    label = (frame.groupby("symbol", observed=True)["ret_1"].shift(-1) > 0).to_numpy().astype(int)
    return frame, label


def _champion(store: FeatureStore) -> str:
    """Version 1, trained, routed everywhere as the champion."""
    frame, label = _training_frame(store)
    version = register_model(COLUMNS, frame, label)
    registry.set_alias(settings(), "champion", version, actor="test", reason="the first champion")
    routing.route_all(version, "champion", actor="test", reason="the first champion", universe=UNIVERSE)
    return version


class Feeder:
    """Live traffic while the DAG runs: every instrument predicted through the routing table with
    stored feature rows of a past day (their bars are realised), about 30 per second."""

    def __init__(self, store: FeatureStore, drop: str | None = None) -> None:
        self.rows = store.read_day(DAYS[-1])
        self.drop = drop  # a feature the feed stops sending (injected errors)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Feeder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        predictor = Predictor(settings())
        index = 0
        while not self.stop.is_set():
            for venue, symbol in UNIVERSE:
                rows = self.rows.loc[self.rows["symbol"] == symbol]
                row = rows.iloc[[index % len(rows)]]
                route = routing.route_for(venue, symbol)
                features = row[COLUMNS]
                if self.drop and route is not None and route.role == "canary":
                    features = features.drop(columns=[self.drop])
                predictor.predict(venue, symbol, features, bar_ts=row["ts"].iloc[0].to_pydatetime())
            index += 7
            time.sleep(0.03)


def _deploy(version: str | None = None) -> dict[str, str]:
    run = load_dag("deployment_pipeline").test(run_conf={"version": version} if version else {})
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _events(bootstrap: str, topic: str, start: Any) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in read_from(bootstrap, topic, start, polls=8)]


def test_deployment_when_the_challenger_behaves_then_every_stage_passes_and_it_becomes_champion(
    deploying: tuple[FeatureStore, Any], kafka_bootstrap: str
) -> None:
    store, topics = deploying
    blue = _champion(store)
    frame, label = _training_frame(store)
    green = register_model(COLUMNS, frame, label)  # the same fit: paired differences are exactly 0
    registry.set_alias(settings(), "challenger", green, actor="training_pipeline", reason="passed every gate")
    start = end_offsets(kafka_bootstrap, topics.model_events)

    with Feeder(store):
        states = _deploy()

    assert states == dict.fromkeys(("resolve", "pre_deploy", "shadow_replay", "canary", "finalize"), "success")
    loaded = settings()
    assert registry.alias_version(loaded, "champion") == green
    assert registry.alias_version(loaded, "previous") == blue
    assert registry.alias_version(loaded, "challenger") is None
    assert {(r.version, r.role) for r in routing.routes().values()} == {(green, "champion")}
    first, second = canary.order(loaded, store)
    canary_routes = [(c.venue, c.symbol) for c in reversed(routing.history(limit=20)) if c.new_role == "canary"]
    assert canary_routes == [first, second]  # stage 1: the most liquid instrument; stage 2: both
    logged = predictions(version=green)
    assert logged and not any(p.error for p in logged if p.role == "canary")
    statuses = [e["status"] for e in _events(kafka_bootstrap, topics.model_events, start)]
    assert statuses == ["started", "stage_passed", "stage_passed", "finalized"]


def test_deployment_when_the_canary_feed_breaks_then_rolled_back_to_the_champion_and_published(
    deploying: tuple[FeatureStore, Any], kafka_bootstrap: str
) -> None:
    store, topics = deploying
    blue = _champion(store)
    frame, label = _training_frame(store)
    green = register_model(COLUMNS, frame, label)
    registry.set_alias(settings(), "challenger", green, actor="training_pipeline", reason="passed every gate")
    start = end_offsets(kafka_bootstrap, topics.model_events)

    with Feeder(store, drop="rsi_14"):
        states = _deploy()

    assert states["canary"] == "failed" and states["finalize"] != "success"
    loaded = settings()
    assert registry.alias_version(loaded, "champion") == blue
    assert registry.alias_version(loaded, "challenger") is None
    assert {(r.version, r.role) for r in routing.routes().values()} == {(blue, "champion")}
    (rollback,) = [c for c in registry.alias_history(loaded) if c.alias == "challenger" and c.new_version is None]
    assert "error rate" in rollback.reason and rollback.actor == "deployment_pipeline"
    events = _events(kafka_bootstrap, topics.model_events, start)
    assert [e["status"] for e in events][-1] == "rolled_back"
    assert "error rate" in events[-1]["reason"] and events[-1]["stage"] == 1


def test_deployment_when_the_challenger_is_slow_then_the_latency_gate_rolls_it_back(
    deploying: tuple[FeatureStore, Any],
) -> None:
    store, _ = deploying
    blue = _champion(store)
    frame, label = _training_frame(store)
    from sklearn.linear_model import LogisticRegression

    inner = LogisticRegression(max_iter=500).fit(frame[COLUMNS], label)
    green = register_model(COLUMNS, frame, label, model=SlowModel(inner, delay=0.25), pickled=True)

    states = _deploy(green)

    assert states["shadow_replay"] == "failed" and states["canary"] != "success"
    assert registry.alias_version(settings(), "champion") == blue
    assert {(r.version, r.role) for r in routing.routes().values()} == {(blue, "champion")}


def test_deployment_when_no_traffic_reaches_the_canary_then_it_holds_never_passes(
    deploying: tuple[FeatureStore, Any],
) -> None:
    store, _ = deploying
    blue = _champion(store)
    frame, label = _training_frame(store)
    green = register_model(COLUMNS, frame, label)
    registry.set_alias(settings(), "challenger", green, actor="training_pipeline", reason="passed every gate")

    states = _deploy()  # nobody predicts: no evidence at all

    assert states["canary"] == "failed" and states["finalize"] != "success"
    loaded = settings()
    assert registry.alias_version(loaded, "champion") == blue
    assert registry.alias_version(loaded, "challenger") == green  # held, not rolled back
    on_canary = {i for i, r in routing.routes().items() if r.role == "canary"}
    assert on_canary == {canary.order(loaded, store)[0]}  # the rollout stopped at its first stage


def test_deployment_when_the_model_needs_another_environment_then_refused_before_any_routing(
    deploying: tuple[FeatureStore, Any],
) -> None:
    store, _ = deploying
    blue = _champion(store)
    frame, label = _training_frame(store)
    green = register_model(COLUMNS, frame, label, requirements=["scikit-learn==0.0.1"])
    registry.set_alias(settings(), "challenger", green, actor="training_pipeline", reason="passed every gate")

    states = _deploy()

    assert states["pre_deploy"] == "failed"
    assert registry.alias_version(settings(), "challenger") is None
    assert {(r.version, r.role) for r in routing.routes().values()} == {(blue, "champion")}
    (change,) = [c for c in registry.alias_history(settings()) if c.alias == "challenger" and c.new_version is None]
    assert "scikit-learn==0.0.1" in change.reason


def test_rollback_cli_when_after_a_full_rollout_then_the_previous_champion_serves_again_and_is_kept_until_then(
    deploying: tuple[FeatureStore, Any],
) -> None:
    from tradeops.cli import main

    store, _ = deploying
    blue = _champion(store)
    frame, label = _training_frame(store)
    green = register_model(COLUMNS, frame, label)
    registry.set_alias(settings(), "challenger", green, actor="training_pipeline", reason="passed every gate")
    with Feeder(store):
        assert _deploy()["finalize"] == "success"
    newer = register_model(COLUMNS, frame, label)
    assert _deploy(newer)["resolve"] == "failed"  # previous is kept 24 h as the rollback target
    assert registry.alias_version(settings(), "previous") == blue

    assert main(["models", "rollback", "--reason", "desk asked", "--actor", "oncall"]) == 0

    assert registry.alias_version(settings(), "champion") == blue
    assert {(r.version, r.role) for r in routing.routes().values()} == {(blue, "champion")}
    assert datetime.now(UTC) - routing.history(limit=1)[0].at < timedelta(minutes=5)


def test_canary_judge_when_feature_health_turned_critical_in_the_window_then_the_stage_fails(
    model_stores: FeatureStore, paper_world: None
) -> None:
    from tradeops.venues.factory import open_raw_venue

    started = datetime.now(UTC) - timedelta(minutes=10)
    history = [
        {"window_end": (started - timedelta(hours=1)).isoformat(), "groups": {"24/7": {"level": "critical"}}},
        {"window_end": (started + timedelta(minutes=5)).isoformat(), "groups": {"24/7": {"level": "warning"}}},
        {
            "window_end": (started + timedelta(minutes=6)).isoformat(),
            "groups": {"24/7": {"level": "critical", "summary": "rv_30 drifted 3 windows in a row"}},
        },
    ]
    found = canary.critical_findings(history, started, datetime.now(UTC))
    assert len(found) == 1 and "rv_30 drifted" in found[0]  # the one inside the window only

    verdict = canary.judge(
        settings(),
        "2",
        "1",
        UNIVERSE[:1],
        since=started,
        now=datetime.now(UTC),
        window_end=started,
        latest_end=started + timedelta(hours=1),
        open_venue=lambda name: open_raw_venue(name),
        critical=found,
    )
    assert verdict.outcome == "fail" and "critical feature health" in verdict.reason


def test_train_then_deploy_when_the_signal_is_real_then_the_trained_version_ends_as_champion(
    deploying: tuple[FeatureStore, Any],
) -> None:
    """The whole path on real Airflow: the training DAG promotes a challenger from data with a
    real signal, and the deployment DAG (the first one: no champion yet) rolls it out."""
    store, _ = deploying
    more = [DAYS[0] - timedelta(days=i) for i in range(5, 0, -1)]
    write_feature_days(store, more + DAYS, beta=0.6, instruments=UNIVERSE, seed=5)

    trained = load_dag("training_pipeline").test(run_conf={"before": (DAYS[-1] + timedelta(days=1)).isoformat()})
    assert {ti.task_id: str(ti.state) for ti in trained.get_task_instances()}["promote"] == "success"
    (version,) = registry.versions(settings())
    assert version.passed and registry.alias_version(settings(), "challenger") == version.version

    with Feeder(store):
        states = _deploy()

    assert states["finalize"] == "success", states
    assert registry.alias_version(settings(), "champion") == version.version
    assert {(r.version, r.role) for r in routing.routes().values()} == {(version.version, "champion")}


def test_canary_when_a_new_day_reorders_liquidity_mid_rollout_then_the_stages_keep_their_instruments(
    deploying: tuple[FeatureStore, Any],
) -> None:
    """The nightly pipeline may store a day while a rollout runs; the stages were planned at its
    start and each verdict judges the instruments that were routed, not a reshuffled list."""
    store, _ = deploying
    blue = _champion(store)
    frame, label = _training_frame(store)
    green = register_model(COLUMNS, frame, label)
    registry.set_alias(settings(), "challenger", green, actor="training_pipeline", reason="passed every gate")
    first, second = canary.order(settings(), store)

    def reorder() -> None:  # once stage 1 is routed: a new day where the first is the least liquid
        while not any(r.role == "canary" for r in routing.routes().values()):
            time.sleep(0.1)
        day = store.read_day(DAYS[-1])
        day["amihud_60"] = np.where(day["symbol"].astype(str) == first[1], 1e6, 0.0)
        day["ts"] = day["ts"] + pd.Timedelta(days=1)
        store.write_day(DAYS[-1] + timedelta(days=1), day, {"validation": {"quarantined": {}}})

    writer = threading.Thread(target=reorder, daemon=True)
    writer.start()
    with Feeder(store):
        states = _deploy()
    writer.join(timeout=10)

    assert canary.order(settings(), store) == [second, first]  # the new day did reorder them
    assert states["finalize"] == "success", states
    canary_routes = [(c.venue, c.symbol) for c in reversed(routing.history(limit=20)) if c.new_role == "canary"]
    assert canary_routes == [first, second]
    assert registry.alias_version(settings(), "previous") == blue
