"""The model registry's aliases and their history, the routing table, served predictions, the
``tradeops models`` CLI, and migration 0005, against a real local MLflow (SQLite under a temporary
directory) holding two tiny scikit-learn models registered here with the tags the training writes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, inspect

from tradeops import schema
from tradeops.cli import main
from tradeops.db import get_engine
from tradeops.models import registry, routing
from tradeops.models.serving import SHADOW, Predictor, predictions

MODEL = "test_direction"
V1_FEATURES = ["ret_1", "vol_5"]
V2_FEATURES = ["ret_1", "vol_5", "rsi_14"]
UNIVERSE = [("alpaca", "IWM/USD"), ("alpaca", "TSLA/USD"), ("binance", "BTC/USDT"), ("binance", "ETH/USDT")]


def _fit(columns: list[str], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(200, len(columns))), columns=columns)
    y = (x[columns[0]] + 0.5 * rng.normal(size=200) > 0).astype(int)
    return LogisticRegression().fit(x, y)


def _register(settings: Any, columns: list[str], seed: int, gates: dict[str, tuple[str, str, str]]) -> str:
    import mlflow
    import mlflow.sklearn

    from tradeops.models import tracking

    client = tracking.client(settings)
    with mlflow.start_run(experiment_id=tracking.experiment_id(settings)):
        info = mlflow.sklearn.log_model(
            _fit(columns, seed), name="model", registered_model_name=MODEL, pip_requirements=["scikit-learn"]
        )
    version = str(info.registered_model_version)
    tags = {"features": json.dumps(columns), "calendar": "24/7"}
    for gate, (verdict, value, limit) in gates.items():
        tags |= {f"gate.{gate}": verdict, f"gate.{gate}.value": value, f"gate.{gate}.limit": limit}
    tags["passed"] = "true" if all(v == "pass" for v, _, _ in gates.values()) else "false"
    for key, value in tags.items():
        client.set_model_version_tag(MODEL, version, key, value)
    return version


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local MLflow with versions 1 (passed the gates) and 2 (failed one), kept for the module."""
    from tradeops.config import settings

    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRADEOPS__MODELS__TRACKING_URI", str(root / "mlflow.db"))
        patch.setenv("TRADEOPS__MODELS__ARTIFACT_ROOT", str(root / "artifacts"))
        patch.setenv("TRADEOPS__MODELS__REGISTERED_MODEL", MODEL)
        settings.cache_clear()
        current = settings()
        passing = {"sharpe": ("pass", "2.41", "2.0"), "max_drawdown": ("pass", "0.08", "0.15")}
        failing = {"sharpe": ("pass", "2.2", "2.0"), "max_drawdown": ("fail", "0.21", "0.15")}
        assert _register(current, V1_FEATURES, 1, passing) == "1"
        assert _register(current, V2_FEATURES, 2, failing) == "2"
        yield current
    settings.cache_clear()


@pytest.fixture
def store(mlflow_store: Any, db_url: str) -> Any:
    """The module's MLflow with no alias set, and a fresh project database."""
    from tradeops.models import tracking

    client = tracking.client(mlflow_store)
    for alias in client.get_registered_model(MODEL).aliases:
        client.delete_registered_model_alias(MODEL, alias)
    return mlflow_store


def _bars(columns: list[str], rows: int = 3, seed: int = 5, venue: str = "binance", symbol: str = "BTC/USDT") -> Any:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(columns))), columns=columns)
    frame.insert(0, "ts", pd.date_range("2026-11-30 10:00", periods=rows, freq="1min", tz="UTC", unit="us"))
    frame.insert(0, "symbol", symbol)
    frame.insert(0, "venue", venue)
    frame["spread_bps"] = np.nan  # a column the model does not use
    return frame


# --- registry aliases -------------------------------------------------------------------------


def test_set_alias_when_moved_then_each_change_recorded_with_actor_and_reason(store: Any) -> None:
    registry.set_alias(store, "champion", "1", "alice", "first deployment")
    registry.set_alias(store, "champion", "2", "deploy:run_7", "canary passed")
    registry.set_alias(store, "champion", "2", "bob", "again, unchanged")
    registry.remove_alias(store, "challenger", "bob", "never set")
    registry.set_alias(store, "previous", "1", "deploy:run_7", "kept for rollback")
    registry.remove_alias(store, "previous", "carol", "expired")

    assert registry.alias_version(store, "champion") == "2"
    assert registry.alias_version(store, "previous") is None
    changes = [(c.alias, c.old_version, c.new_version, c.actor, c.reason) for c in registry.alias_history(store)]
    assert changes == [
        ("previous", "1", None, "carol", "expired"),
        ("previous", None, "1", "deploy:run_7", "kept for rollback"),
        ("champion", "1", "2", "deploy:run_7", "canary passed"),
        ("champion", None, "1", "alice", "first deployment"),
    ]
    assert registry.alias_history(store, limit=1)[0].at <= datetime.now(UTC)


def test_set_alias_when_version_unknown_then_refused_and_nothing_recorded(store: Any) -> None:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        registry.set_alias(store, "champion", "99", "alice", "typo")
    with pytest.raises(ValueError, match="actor and a reason"):
        registry.set_alias(store, "champion", "1", "alice", " ")

    assert registry.alias_version(store, "champion") is None
    assert registry.alias_history(store) == []


def test_versions_when_listed_then_newest_first_with_aliases_gates_and_verdict(store: Any) -> None:
    registry.set_alias(store, "champion", "1", "alice", "baseline")
    registry.set_alias(store, "challenger", "2", "training", "gates")

    found = registry.versions(store)

    assert [v.version for v in found] == ["2", "1"]
    newest, oldest = found
    assert (newest.aliases, newest.passed, newest.features) == (("challenger",), False, tuple(V2_FEATURES))
    assert [(g.name, g.passed, g.value, g.limit) for g in newest.gates] == [
        ("max_drawdown", False, "0.21", "0.15"),
        ("sharpe", True, "2.2", "2.0"),
    ]
    assert (oldest.aliases, oldest.passed, oldest.calendar) == (("champion",), True, "24/7")
    assert oldest.run_id and oldest.created_at <= newest.created_at


# --- routing ----------------------------------------------------------------------------------


def test_assign_when_routes_change_then_one_history_row_per_changed_instrument(store: Any) -> None:
    btc, eth = ("binance", "BTC/USDT"), ("binance", "ETH/USDT")

    first = routing.assign([btc, eth], "1", "champion", "alice", "start")
    again = routing.assign([eth, btc], "1", "champion", "bob", "no change")
    canary = routing.assign([eth], "2", "canary", "deploy", "stage 1")

    assert (first, again, canary) == ([btc, eth], [], [eth])
    route = routing.route_for(*eth)
    assert route is not None
    assert (route.model, route.version, route.role, route.updated_by, route.reason) == (
        MODEL,
        "2",
        "canary",
        "deploy",
        "stage 1",
    )
    assert routing.route_for("okx", "BTC/USDT") is None
    assert {k: (r.version, r.role) for k, r in routing.routes().items()} == {
        btc: ("1", "champion"),
        eth: ("2", "canary"),
    }
    rows = [(c.symbol, c.old_version, c.new_version, c.old_role, c.new_role, c.actor) for c in routing.history()]
    assert rows == [
        ("ETH/USDT", "1", "2", "champion", "canary", "deploy"),
        ("ETH/USDT", None, "1", None, "champion", "alice"),
        ("BTC/USDT", None, "1", None, "champion", "alice"),
    ]


def test_assign_when_role_or_reason_invalid_then_refused_and_nothing_written(store: Any) -> None:
    with pytest.raises(ValueError, match="role"):
        routing.assign([("binance", "BTC/USDT")], "1", "blue", "alice", "why")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="actor and a reason"):
        routing.assign([("binance", "BTC/USDT")], "1", "champion", "alice", "")

    assert routing.routes() == {}
    assert routing.history() == []


def test_route_all_when_universe_given_then_every_instrument_and_stray_routes_move(store: Any) -> None:
    stray = ("okx", "SOL/USDT")
    routing.assign([stray], "2", "canary", "deploy", "left the universe since")

    changed = routing.route_all("1", "champion", "alice", "all on one", store.market_data.universe)

    assert changed == sorted([*UNIVERSE, stray])
    assert {r.version for r in routing.routes().values()} == {"1"}
    assert len(routing.history()) == len(UNIVERSE) + 2


@pytest.mark.postgres
def test_assign_when_on_postgres_then_routes_and_history_written_under_row_locks(
    mlflow_store: Any, pg_db_url: str
) -> None:
    routing.route_all("1", "champion", "alice", "start", UNIVERSE, model=MODEL)
    changed = routing.assign(UNIVERSE[:2], "2", "canary", "deploy", "stage 1", model=MODEL)

    assert changed == UNIVERSE[:2]
    assert {k: r.version for k, r in routing.routes().items()} == {
        UNIVERSE[0]: "2",
        UNIVERSE[1]: "2",
        UNIVERSE[2]: "1",
        UNIVERSE[3]: "1",
    }
    assert [c.new_role for c in routing.history(limit=2)] == ["canary", "canary"]


# --- serving ----------------------------------------------------------------------------------


def test_predict_when_routed_then_version_loaded_once_and_each_prediction_recorded(store: Any) -> None:
    import mlflow.sklearn

    routing.assign([("binance", "BTC/USDT")], "1", "champion", "alice", "start")
    predictor = Predictor(store)
    frames = [_bars(V1_FEATURES, seed=seed) for seed in (5, 6, 7)]

    served = [predictor.predict("binance", "BTC/USDT", frame) for frame in frames]

    assert predictor.loads == 1
    assert predictor.cached_versions() == ((MODEL, "1"),)
    reference = mlflow.sklearn.load_model(f"models:/{MODEL}/1")
    for prediction, frame in zip(served, frames, strict=True):
        expected = reference.predict_proba(frame.iloc[[-1]][V1_FEATURES])[0, 1]
        assert prediction.error is None
        assert prediction.probability == pytest.approx(expected)
        assert (prediction.version, prediction.role) == ("1", "champion")
        assert prediction.bar_ts == frame["ts"].iloc[-1].to_pydatetime()
    records = predictions(venue="binance", symbol="BTC/USDT")
    assert [r.probability for r in records] == [p.probability for p in served]
    assert records[0].features == {c: pytest.approx(frames[0][c].iloc[-1]) for c in V1_FEATURES}
    assert all(r.latency_ms > 0 and r.error is None and r.model == MODEL for r in records)


def test_predict_when_route_moves_to_new_version_then_it_loads_once_with_its_own_features(store: Any) -> None:
    btc = ("binance", "BTC/USDT")
    routing.assign([btc], "1", "champion", "alice", "start")
    predictor = Predictor(store)
    predictor.predict(*btc, _bars(V2_FEATURES))

    routing.assign([btc], "2", "canary", "deploy", "stage 1")
    after = [predictor.predict(*btc, _bars(V2_FEATURES, seed=s)) for s in (8, 9)]

    assert predictor.loads == 2
    assert [(p.version, p.role, p.error) for p in after] == [("2", "canary", None)] * 2
    assert sorted(predictions(version="2")[0].features) == sorted(V2_FEATURES)
    assert sorted(predictions(version="1")[0].features) == sorted(V1_FEATURES)


def test_predict_when_threads_ask_for_an_unloaded_version_together_then_it_loads_once(store: Any) -> None:
    routing.assign([("binance", "ETH/USDT")], "1", "champion", "alice", "start")
    predictor = Predictor(store)
    start = threading.Barrier(6)
    served: list[Any] = []

    def ask(seed: int) -> None:
        frame = _bars(V1_FEATURES, seed=seed, symbol="ETH/USDT")
        start.wait()
        served.append(predictor.predict("binance", "ETH/USDT", frame))

    threads = [threading.Thread(target=ask, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert predictor.loads == 1
    assert [p.error for p in served] == [None] * 6
    assert len(predictions(symbol="ETH/USDT")) == 6


def test_predict_when_columns_missing_then_error_returned_and_recorded_with_the_given_row(store: Any) -> None:
    routing.assign([("binance", "BTC/USDT")], "2", "champion", "alice", "start")
    frame = _bars(V1_FEATURES)  # no rsi_14: version 2 needs it

    prediction = Predictor(store).predict("binance", "BTC/USDT", frame)

    assert prediction.probability is None
    assert prediction.error is not None and "rsi_14" in prediction.error
    (record,) = predictions(version="2")
    assert record.error == prediction.error
    assert record.features["spread_bps"] is None  # NaN stored as null
    assert record.features["symbol"] == "BTC/USDT"
    assert record.features["vol_5"] == pytest.approx(frame["vol_5"].iloc[-1])


def test_predict_when_feature_is_nan_or_unrouted_then_error_recorded_not_raised(store: Any) -> None:
    routing.assign([("binance", "BTC/USDT")], "1", "champion", "alice", "start")
    frame = _bars(V1_FEATURES)
    frame.loc[frame.index[-1], "vol_5"] = np.nan
    predictor = Predictor(store)

    nan_input = predictor.predict("binance", "BTC/USDT", frame)
    unrouted = predictor.predict("okx", "BTC/USDT", _bars(V1_FEATURES, venue="okx"))
    other_instrument = predictor.predict("binance", "BTC/USDT", _bars(V1_FEATURES, symbol="ETH/USDT"))

    assert nan_input.error is not None and "NaN" in nan_input.error
    assert unrouted.error == "no model is routed to okx BTC/USDT" and unrouted.version is None
    assert other_instrument.error is not None and "ETH/USDT" in other_instrument.error
    records = predictions()
    assert [r.error for r in records] == [nan_input.error, unrouted.error, other_instrument.error]
    assert records[0].features == {"ret_1": pytest.approx(frame["ret_1"].iloc[-1]), "vol_5": None}
    assert all(r.probability is None for r in records)


def test_predict_with_when_version_given_then_routing_ignored_and_recorded_as_shadow(store: Any) -> None:
    routing.assign([("binance", "BTC/USDT")], "1", "champion", "alice", "start")
    predictor = Predictor(store)

    shadow = predictor.predict_with("2", "binance", "BTC/USDT", _bars(V2_FEATURES))
    unrouted = predictor.predict_with("1", "okx", "SOL/USDT", _bars(V1_FEATURES, venue="okx", symbol="SOL/USDT"))

    assert (shadow.version, shadow.role, shadow.error) == ("2", SHADOW, None)
    assert unrouted.error is None and unrouted.probability is not None
    assert [r.role for r in predictions(role=SHADOW)] == [SHADOW, SHADOW]


def test_predictions_when_filtered_then_only_matching_instrument_version_and_time(store: Any) -> None:
    routing.assign([("binance", "BTC/USDT")], "1", "champion", "alice", "start")
    routing.assign([("binance", "ETH/USDT")], "2", "canary", "deploy", "stage 1")
    predictor = Predictor(store)
    before = datetime.now(UTC)
    predictor.predict("binance", "BTC/USDT", _bars(V1_FEATURES))
    predictor.predict("binance", "ETH/USDT", _bars(V2_FEATURES, symbol="ETH/USDT"))
    after = datetime.now(UTC)

    assert [r.symbol for r in predictions(version="2")] == ["ETH/USDT"]
    assert [r.version for r in predictions(symbol="BTC/USDT")] == ["1"]
    assert len(predictions(since=before, until=after + timedelta(seconds=1))) == 2
    assert predictions(since=after + timedelta(seconds=1)) == []
    assert predictions(until=before) == []
    assert len(predictions(limit=1)) == 1


# --- rollback and the CLI ---------------------------------------------------------------------


def _deployed(store: Any) -> None:
    """Version 2 fully rolled out over version 1: champion 2, previous 1, one instrument still canary."""
    registry.set_alias(store, "champion", "2", "deploy:run_7", "finalize")
    registry.set_alias(store, "previous", "1", "deploy:run_7", "finalize")
    registry.set_alias(store, "challenger", "2", "training", "passed the gates")
    routing.route_all("2", "champion", "deploy:run_7", "finalize", UNIVERSE)
    routing.assign([("okx", "SOL/USDT")], "2", "canary", "deploy:run_7", "stage 1")


def test_rollback_when_previous_set_then_every_route_and_alias_back_and_recorded(store: Any) -> None:
    _deployed(store)

    result = registry.rollback(store, "carol", "PnL drop on BTC")

    assert (result.version, result.replaced, len(result.rerouted)) == ("1", "2", len(UNIVERSE) + 1)
    assert {(r.version, r.role) for r in routing.routes().values()} == {("1", "champion")}
    assert registry.aliases(store) == {"champion": "1"}
    moves = [(c.alias, c.old_version, c.new_version) for c in registry.alias_history(store, limit=3)]
    assert moves == [("previous", "1", None), ("challenger", "2", None), ("champion", "2", "1")]
    recent = registry.alias_history(store, limit=3) + routing.history(limit=len(UNIVERSE) + 1)
    assert {(c.actor, c.reason) for c in recent} == {("carol", "PnL drop on BTC")}


def test_rollback_cli_when_no_previous_then_refuses_and_changes_nothing(
    store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.set_alias(store, "champion", "2", "deploy", "finalize")
    routing.route_all("2", "champion", "deploy", "finalize", UNIVERSE)
    history_before = len(routing.history()), len(registry.alias_history(store))

    code = main(["models", "rollback", "--reason", "try"])

    assert code == 2
    assert "no 'previous' alias" in capsys.readouterr().err
    assert {r.version for r in routing.routes().values()} == {"2"}
    assert registry.aliases(store) == {"champion": "2"}
    assert (len(routing.history()), len(registry.alias_history(store))) == history_before


def test_models_cli_when_listing_and_rolling_back_then_shows_gates_routes_and_who_why(
    store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _deployed(store)
    capsys.readouterr()

    assert main(["models", "rollback", "--actor", "dave", "--reason", "bad fills"]) == 0
    rolled = capsys.readouterr().out
    assert main(["models", "versions"]) == 0
    versions_out = capsys.readouterr().out
    assert main(["models", "aliases", "--json"]) == 0
    aliases_out = json.loads(capsys.readouterr().out)
    assert main(["models", "routing"]) == 0
    routing_out = capsys.readouterr().out
    assert main(["models", "history", "--json"]) == 0
    history_out = json.loads(capsys.readouterr().out)

    assert "rolled back to version 1 (champion was 2)" in rolled
    assert "max_drawdown FAIL (0.21 vs 0.15)" in versions_out and "sharpe pass (2.41 vs 2.0)" in versions_out
    assert aliases_out == {"champion": "1"}
    assert routing_out.count("champion") == len(UNIVERSE) + 1 and "bad fills" in routing_out
    latest = [c for c in history_out if c["by"] == "dave"]
    assert {c["kind"] for c in latest} == {"alias", "route"}
    alias_moves = {(c["what"], c["old"], c["new"]) for c in latest if c["kind"] == "alias"}
    assert alias_moves == {("champion", "2", "1"), ("challenger", "2", None), ("previous", "1", None)}
    assert history_out == sorted(history_out, key=lambda c: c["at"], reverse=True)


# --- migration --------------------------------------------------------------------------------

_TABLES = {"model_alias_history", "model_routes", "model_route_history", "model_predictions"}


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def _check_migration(engine: Engine) -> None:
    schema.upgrade(engine, "0005_models")
    assert _TABLES <= _tables(engine)
    schema.downgrade("0004_kafka_watchers", engine)
    assert not _TABLES & _tables(engine)
    schema.upgrade(engine)
    assert _TABLES <= _tables(engine)


def test_migration_0005_when_upgraded_on_sqlite_then_model_tables_created_and_downgrade_drops_them(
    tmp_path: Path,
) -> None:
    _check_migration(get_engine(f"sqlite:///{tmp_path / 'fresh.db'}"))


@pytest.mark.postgres
def test_migration_0005_when_upgraded_on_postgres_then_model_tables_created_and_downgrade_drops_them(
    postgres_url: str,
) -> None:
    from sqlalchemy.engine import make_url

    from tests.fixtures import postgres

    port = int(make_url(postgres_url).port or 5432)
    with postgres._admin_connect(port) as conn:
        conn.execute('CREATE DATABASE "models_migration"')
    engine = get_engine(postgres._url(port, "models_migration"))
    try:
        _check_migration(engine)
    finally:
        engine.dispose()
