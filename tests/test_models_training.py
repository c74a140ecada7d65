"""Weekly training: samples from the store, honest gates, MLflow, the training DAG."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.approval import Approver
from tests.fixtures.models import SIGNAL, write_feature_days
from tradeops.config import settings
from tradeops.market_data.store import FeatureStore
from tradeops.models.dataset import NotEnoughData, load_samples, round_trip_cost, training_days

FIRST = date(2026, 11, 2)


def _days(count: int) -> list[date]:
    return [FIRST + timedelta(days=i) for i in range(count)]


# -- samples -------------------------------------------------------------------------------------


def test_samples_when_built_then_labels_and_holding_returns_follow_the_stored_returns_across_midnight(
    model_stores: FeatureStore,
) -> None:
    written = write_feature_days(model_stores, _days(2), beta=0.0, instruments=[("binance", "BTC/USDT")])
    loaded = settings()
    samples = load_samples(loaded, model_stores, _days(2))

    training = loaded.models.training
    every, horizon = training.sample_every, training.horizon_bars
    total = np.cumsum(written["ret_1"].fillna(0).to_numpy())
    stamps = written["ts"].dt.tz_convert(None).to_numpy("datetime64[us]")
    rows = np.searchsorted(stamps, samples.starts)
    np.testing.assert_allclose(samples.forward_log_return, total[rows + horizon] - total[rows], atol=1e-12)
    np.testing.assert_allclose(samples.hold_return, np.expm1(total[rows + every] - total[rows]), atol=1e-12)
    assert (samples.label == (samples.forward_log_return > round_trip_cost(loaded))).all()
    assert (samples.ends == stamps[rows + horizon]).all()
    # one sample every `every` minutes, the last ones (no label yet) left out; midnight crossed
    assert len(samples) == 2 * 1440 // every - horizon // every
    midnight = np.datetime64("2026-11-03T00:00")
    assert ((samples.starts < midnight) & (samples.ends > midnight)).any()
    assert samples.days == tuple(_days(2)) and len(samples.manifests) == 2


def test_training_days_when_the_store_has_gaps_then_only_stored_days_within_the_lookback(
    model_stores: FeatureStore,
) -> None:
    write_feature_days(model_stores, _days(1), beta=0.0, instruments=[("binance", "BTC/USDT")])
    later = [FIRST + timedelta(days=5)]
    write_feature_days(model_stores, later, beta=0.0, instruments=[("binance", "BTC/USDT")])

    assert training_days(model_stores, FIRST + timedelta(days=6), 3) == later
    assert training_days(model_stores, FIRST + timedelta(days=6), 10) == [FIRST, *later]
    assert training_days(model_stores, FIRST, 10) == []


def test_samples_for_when_the_store_is_nearly_empty_then_not_enough_data_says_how_much(
    model_stores: FeatureStore,
) -> None:
    from tradeops.models.training_run import samples_for

    write_feature_days(model_stores, _days(1), beta=0.0, instruments=[("binance", "BTC/USDT")])
    with pytest.raises(NotEnoughData, match="1 day"):
        samples_for(settings(), FIRST + timedelta(days=1))


# -- evaluation and gates ----------------------------------------------------------------------------


def _samples(store: FeatureStore, beta: float, days: int = 8) -> object:
    write_feature_days(store, _days(days), beta=beta)
    return load_samples(settings(), store, _days(days))


def test_evaluate_when_the_data_carries_a_real_signal_then_every_gate_passes_and_the_signal_matters_most(
    model_stores: FeatureStore,
) -> None:
    from tradeops.models.model_card import feature_importance
    from tradeops.models.training import evaluate

    evaluation = evaluate(settings(), _samples(model_stores, beta=0.6))

    assert evaluation.passed, [(g.name, g.value, g.rule) for g in evaluation.failed()]
    assert {g.name for g in evaluation.gates} == {
        f"{m}_24x7" for m in ("sharpe", "max_drawdown", "win_rate", "trades", "psr")
    }
    assert feature_importance(evaluation, seed=1).index[0] == SIGNAL
    assert evaluation.test.starts.min() > evaluation.train.ends.max()  # purged: no label reaches the test


def test_evaluate_when_the_data_is_noise_then_gates_fail_and_say_by_how_much(model_stores: FeatureStore) -> None:
    from tradeops.models.training import evaluate

    evaluation = evaluate(settings(), _samples(model_stores, beta=0.0))

    assert not evaluation.passed
    failed = {g.name: g for g in evaluation.failed()}
    assert "psr_24x7" in failed or "sharpe_24x7" in failed
    assert all(np.isnan(g.value) or g.rule.split()[0] in "<>=" for g in failed.values())


def test_evaluate_when_run_twice_on_the_same_partitions_then_the_same_metrics(model_stores: FeatureStore) -> None:
    from tradeops.models.training import evaluate

    samples = _samples(model_stores, beta=0.3, days=5)
    first, second = evaluate(settings(), samples), evaluate(settings(), samples)

    assert first.chosen == second.chosen and first.cv == second.cv
    assert first.classification == second.classification
    assert [g.metrics for g in first.groups] == [g.metrics for g in second.groups]


# -- the training DAG end to end: MLflow, registry, promotion ------------------------------------------


def _train_run(before: date) -> tuple[dict[str, str], object]:
    from tests.dag_files import load_dag

    run = load_dag("training_pipeline").test(run_conf={"before": before.isoformat()})
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}, run


@pytest.mark.airflow
@pytest.mark.slow
def test_training_pipeline_when_the_signal_is_real_then_registered_with_card_and_promoted_to_challenger(
    model_stores: FeatureStore, airflow_db: object
) -> None:
    import json

    from tradeops.models import registry, tracking

    write_feature_days(model_stores, _days(8), beta=0.6)

    states, _ = _train_run(FIRST + timedelta(days=8))

    assert states == {"train": "success", "needs_approval": "success", "approve": "skipped", "promote": "success"}
    loaded = settings()
    (version,) = registry.versions(loaded)
    assert registry.alias_version(loaded, "challenger") == version.version
    assert version.passed
    client = tracking.client(loaded)
    tags = client.get_model_version(loaded.models.registered_model, version.version).tags
    assert tags["gate.sharpe_24x7"] == "pass" and float(tags["gate.sharpe_24x7.limit"]) == 2.0
    assert json.loads(tags["features"])[0] == "ret_1" and tags["train_first_day"] == FIRST.isoformat()
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "model_card")}
    assert {f"model_card/{n}" for n in ("model_card.md", "equity_curve.png", "drawdown.png")} <= artifacts
    assert {"model_card/feature_importance.png", "model_card/calibration.png"} <= artifacts
    assert [a.path for a in client.list_artifacts(version.run_id, "data")] == ["data/manifests.json"]
    run = client.get_run(version.run_id)
    assert run.data.params["gates.min_sharpe"] == "2.0" and "test.24x7.sharpe" in run.data.metrics
    (change,) = registry.alias_history(loaded)
    assert (change.alias, change.new_version, change.actor) == ("challenger", version.version, "training_pipeline")


@pytest.mark.airflow
@pytest.mark.slow
def test_training_pipeline_when_the_data_is_noise_then_registered_as_failed_and_nothing_promoted(
    model_stores: FeatureStore, airflow_db: object
) -> None:
    from tradeops.models import registry

    write_feature_days(model_stores, _days(8), beta=0.0)

    states, _ = _train_run(FIRST + timedelta(days=8))

    assert states["train"] == "success" and states["promote"] == "skipped"
    loaded = settings()
    (version,) = registry.versions(loaded)
    assert not version.passed
    assert registry.alias_version(loaded, "challenger") is None and registry.alias_history(loaded) == []


@pytest.mark.airflow
@pytest.mark.slow
def test_training_pipeline_when_the_store_is_empty_then_train_skipped_with_the_reason(
    model_stores: FeatureStore, airflow_db: object
) -> None:
    states, _ = _train_run(FIRST)

    assert states == {"train": "skipped", "needs_approval": "skipped", "approve": "skipped", "promote": "skipped"}


@pytest.mark.airflow
@pytest.mark.slow
@pytest.mark.parametrize("choice", ["Approve", "Reject"])
def test_training_pipeline_when_approval_is_required_then_promoted_only_when_a_person_approves(
    model_stores: FeatureStore, airflow_db: object, monkeypatch: pytest.MonkeyPatch, choice: str
) -> None:
    from tradeops.models import registry

    monkeypatch.setenv("TRADEOPS__MODELS__PROMOTION__REQUIRE_APPROVAL", "true")
    settings.cache_clear()
    write_feature_days(model_stores, _days(8), beta=0.6)

    with Approver(choice, "alice"):
        states, _ = _train_run(FIRST + timedelta(days=8))

    loaded = settings()
    (version,) = registry.versions(loaded)
    assert states["approve"] == "success" and version.passed
    if choice == "Approve":
        assert states["promote"] == "success"
        assert registry.alias_version(loaded, "challenger") == version.version
        (change,) = registry.alias_history(loaded)
        assert change.actor == "alice" and "approved in the Airflow UI" in change.reason
    else:
        assert states["promote"] == "skipped"
        assert registry.alias_version(loaded, "challenger") is None


# -- what the hourly health check reads from the models ---------------------------------------------


def test_health_reference_when_a_champion_exists_then_its_training_window_spread_over_reference_days(
    model_stores: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fixtures.models import register_model
    from tradeops.models import monitoring, registry, tracking

    monkeypatch.setenv("TRADEOPS__MARKET_DATA__REFERENCE_DAYS", "3")
    settings.cache_clear()
    write_feature_days(model_stores, _days(10), beta=0.0, instruments=[("binance", "BTC/USDT")])
    before = FIRST + timedelta(days=10)

    days, described = monitoring.reference_days(settings(), model_stores, before)
    assert days == _days(10)[-3:] and "no champion" in described
    assert not monitoring.registry_exists(settings())
    assert not Path(tracking.tracking_uri(settings()).removeprefix("sqlite:///")).parent.exists()  # nothing created

    frame = model_stores.read_day(FIRST)
    version = register_model(["ret_1", SIGNAL], frame, (frame["ret_1"] > 0).astype(int).to_numpy())
    client = tracking.client(settings())
    for key, value in {"train_first_day": _days(10)[1], "train_last_day": _days(10)[7]}.items():
        client.set_model_version_tag(settings().models.registered_model, version, key, value.isoformat())
    registry.set_alias(settings(), "champion", version, actor="test", reason="champion for the reference")

    days, described = monitoring.reference_days(settings(), model_stores, before)
    assert days == [_days(10)[1], _days(10)[4], _days(10)[7]]
    assert f"version {version}" in described and "training window" in described


def test_champion_performance_when_its_predictions_are_realised_then_hit_rate_and_log_loss(
    model_stores: FeatureStore, paper_world: None
) -> None:
    from datetime import UTC, datetime

    from tests.fixtures.models import register_model
    from tradeops.models import monitoring, registry, routing
    from tradeops.models.serving import Predictor
    from tradeops.venues.factory import open_raw_venue

    write_feature_days(model_stores, _days(1), beta=0.0, instruments=[("binance", "BTC/USDT")])
    frame = model_stores.read_day(FIRST)
    columns = ["ret_1", SIGNAL]
    version = register_model(columns, frame, (frame[SIGNAL] > 0).astype(int).to_numpy())
    registry.set_alias(settings(), "champion", version, actor="test", reason="monitoring")
    routing.assign([("binance", "BTC/USDT")], version, "champion", actor="test", reason="monitoring")
    predictor = Predictor(settings())
    started = datetime.now(UTC)
    for index in range(0, 400, 10):
        row = frame.iloc[[index]]
        predictor.predict("binance", "BTC/USDT", row[columns], bar_ts=row["ts"].iloc[0].to_pydatetime())

    found = monitoring.champion_performance(settings(), started, datetime.now(UTC), lambda name: open_raw_venue(name))

    assert found is not None and found["version"] == version
    assert (found["predictions"], found["errors"], found["realised"]) == (40, 0, 40)
    assert found["traded"] > 0 and 0 <= found["hit_rate"] <= 1 and found["log_loss"] > 0
