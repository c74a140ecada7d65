"""Weekly training: samples from the store, honest gates, MLflow, the training DAG."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

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
