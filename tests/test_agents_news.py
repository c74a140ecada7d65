"""The agents' news: ``KafkaNewsSource`` on the real broker (windows, symbol filter, limit, dedup,
dead letters), ``open_news_source``, the deterministic paper feed and the ``tradeops news`` commands."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fixtures.kafka import free_port
from tests.fixtures.watch import fresh_topics, read_all, wait_until
from tradeops.agents.news import (
    READER,
    Headline,
    KafkaNewsSource,
    headline_event,
    open_news_source,
    publish_headline,
    select_headlines,
)
from tradeops.agents.paper_news import SOURCE, headline_at, publish_due, slots_between
from tradeops.agents.settings import AgentsFile, NewsConfig, load_agents
from tradeops.config import KafkaTopics, Settings, settings
from tradeops.errors import ConfigError, NewsUnavailableError
from tradeops.events import REGISTRY, build_event, parse_event, to_json

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def topics(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[KafkaTopics]:
    """Topics of this test only (market_news and the dead-letter topic included), a fresh project DB."""
    with fresh_topics(kafka_bootstrap, monkeypatch) as created:
        yield created


def _headline(minutes_before: float, symbol: str = "TSLA", title: str = "Tesla beats estimates") -> Headline:
    return Headline(
        id=f"h-{symbol}-{minutes_before:g}",
        symbol=symbol,
        title=title,
        source="wire",
        published_at=NOW - timedelta(minutes=minutes_before),
    )


def _source(kafka_bootstrap: str) -> KafkaNewsSource:
    return KafkaNewsSource(settings(), bootstrap=kafka_bootstrap)


def _window(source: KafkaNewsSource, symbol: str = "TSLA", limit: int = 50, **bounds: datetime) -> list[str]:
    since = bounds.get("since", NOW - timedelta(hours=4))
    until = bounds.get("until", NOW)
    return [h.id for h in source.headlines(symbol, since=since, until=until, limit=limit)]


def test_headlines_when_window_read_then_only_the_symbol_inside_the_bounds_oldest_first(
    kafka_bootstrap: str, topics: KafkaTopics
) -> None:
    for headline in (
        _headline(30),
        _headline(300),  # before since
        _headline(1),  # after until
        _headline(120),
        _headline(60, symbol="BTC", title="Bitcoin rallies"),
        _headline(90),
    ):
        publish_headline(headline, settings(), bootstrap=kafka_bootstrap)
    source = _source(kafka_bootstrap)

    ids = _window(source, since=NOW - timedelta(minutes=150), until=NOW - timedelta(minutes=5))

    assert ids == ["h-TSLA-120", "h-TSLA-90", "h-TSLA-30"]
    assert _window(source, symbol="BTC") == ["h-BTC-60"]
    assert _window(source, symbol="IWM") == []
    assert not [g for g in _consumer_groups(kafka_bootstrap) if g.startswith("tradeops-news-reader")]


def _consumer_groups(bootstrap: str) -> list[str]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=10).result()
    assert not listed.errors, listed.errors
    return [group.group_id for group in listed.valid]


def test_headlines_when_more_than_limit_then_the_newest_kept_and_each_id_once(
    kafka_bootstrap: str, topics: KafkaTopics
) -> None:
    for minutes in (50, 40, 30, 20, 10):
        publish_headline(_headline(minutes), settings(), bootstrap=kafka_bootstrap)
    publish_headline(_headline(20), settings(), bootstrap=kafka_bootstrap)  # the same headline again
    publish_headline(_headline(10), settings(), bootstrap=kafka_bootstrap)

    source = _source(kafka_bootstrap)

    assert _window(source, limit=3) == ["h-TSLA-30", "h-TSLA-20", "h-TSLA-10"]
    assert _window(source) == ["h-TSLA-50", "h-TSLA-40", "h-TSLA-30", "h-TSLA-20", "h-TSLA-10"]


def test_publish_headline_when_published_then_keyed_by_symbol_stamped_at_published_at_event_id_fixed(
    kafka_bootstrap: str, topics: KafkaTopics
) -> None:
    headline = _headline(45)

    first = publish_headline(headline, settings(), bootstrap=kafka_bootstrap)
    again = publish_headline(headline, settings(), bootstrap=kafka_bootstrap)

    messages = read_all(kafka_bootstrap, topics.market_news)
    assert [m.key() for m in messages] == [b"TSLA", b"TSLA"]
    assert {m.timestamp()[1] for m in messages} == {int(headline.published_at.timestamp() * 1000)}
    assert first.event_id == again.event_id == headline_event(headline).event_id
    event = parse_event(messages[0].value())
    assert (event.event_type, event.headline_id, event.source) == ("news_headline", headline.id, "wire")


def test_headlines_when_malformed_messages_then_skipped_with_warning_and_dead_lettered_once_with_reason(
    kafka_bootstrap: str, topics: KafkaTopics, caplog: pytest.LogCaptureFixture
) -> None:
    good = json.loads(headline_event(_headline(20)).model_dump_json())
    stamp = int((NOW - timedelta(minutes=20)).timestamp() * 1000)
    bad = [
        b"not json at all",
        json.dumps({k: v for k, v in good.items() if k != "title"} | {"event_id": _uuid(1)}).encode(),
        json.dumps(good | {"event_id": _uuid(2), "published_at": "yesterday"}).encode(),
        to_json(build_event("market_shock", REGISTRY["market_shock"].example)).encode(),  # another topic's event
    ]
    _produce_stamped(kafka_bootstrap, topics.market_news, [*bad, json.dumps(good).encode()], stamp)
    source = _source(kafka_bootstrap)

    with caplog.at_level(logging.WARNING, logger="tradeops.agents.news"):
        first = _window(source)
        warned = sum("skipped unreadable message" in r.getMessage() for r in caplog.records)
        second = _window(source)

    assert first == second == ["h-TSLA-20"]
    assert warned == len(bad)
    letters = read_all(kafka_bootstrap, topics.dead_letter)
    assert len(letters) == len(bad)  # the second read dead-lettered nothing again
    headers = [dict(m.headers()) for m in letters]
    assert {h["dlq.watcher"].decode().split(":")[0] for h in headers} == {READER}
    assert {h["dlq.source_topic"] for h in headers} == {topics.market_news.encode()}
    fields = sorted(h["dlq.field"].decode() for h in headers)
    assert fields == ["<json>", "event_type", "published_at", "title"]
    assert all(h["dlq.reason"] for h in headers)
    assert sorted(m.value() for m in letters) == sorted(bad)


def test_headlines_when_two_readers_meet_the_same_bad_messages_at_once_then_each_dead_lettered_once(
    kafka_bootstrap: str, topics: KafkaTopics
) -> None:
    stamp = int((NOW - timedelta(minutes=20)).timestamp() * 1000)
    bad = [b"not json %d" % number for number in range(5)]
    _produce_stamped(kafka_bootstrap, topics.market_news, bad, stamp)
    readers = [_source(kafka_bootstrap), _source(kafka_bootstrap)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_window, readers))
    _window(_source(kafka_bootstrap))

    assert results == [[], []]
    letters = read_all(kafka_bootstrap, topics.dead_letter)
    assert sorted(m.value() for m in letters) == bad


def _uuid(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


def _produce_stamped(bootstrap: str, topic: str, values: list[bytes], stamp_ms: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value=value, key=b"TSLA", timestamp=stamp_ms)
    assert producer.flush(30) == 0


def test_headlines_when_broker_does_not_answer_then_news_unavailable(topics: KafkaTopics) -> None:
    source = KafkaNewsSource(settings(), bootstrap=f"127.0.0.1:{free_port()}", timeout_seconds=1.5)

    with pytest.raises(NewsUnavailableError, match="did not answer"):
        _window(source)


def test_headlines_when_partition_between_leaders_then_asked_again_and_other_errors_answer_at_once(
    kafka_bootstrap: str, topics: KafkaTopics, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A topic just created or a leader moving answers NOT_LEADER for a moment (seen on a fresh run);
    # the broker's first answers are replaced by that error, the real read follows.
    from confluent_kafka import KafkaError, KafkaException

    publish_headline(_headline(30), settings(), bootstrap=kafka_bootstrap)
    real_bounds = KafkaNewsSource._bounds
    answers = [KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE]

    def between_leaders(self: KafkaNewsSource, consumer: object, start: datetime) -> object:
        if answers:
            raise KafkaException(KafkaError(answers.pop(0)))
        return real_bounds(self, consumer, start)  # type: ignore[arg-type]

    monkeypatch.setattr(KafkaNewsSource, "_bounds", between_leaders)
    assert _window(_source(kafka_bootstrap)) == ["h-TSLA-30"]
    assert answers == []

    answers[:] = [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    with pytest.raises(NewsUnavailableError, match=r"did not answer.*TOPIC_AUTHORIZATION_FAILED"):
        _window(_source(kafka_bootstrap))

    answers[:] = [KafkaError.NOT_LEADER_FOR_PARTITION] * 100
    short = KafkaNewsSource(settings(), bootstrap=kafka_bootstrap, timeout_seconds=1.0)
    with pytest.raises(NewsUnavailableError, match="NOT_LEADER_FOR_PARTITION"):
        _window(short)
    assert 90 <= len(answers) < 100


def test_headlines_when_topic_missing_then_news_unavailable_naming_it(
    kafka_bootstrap: str, topics: KafkaTopics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEOPS__KAFKA__TOPICS__MARKET_NEWS", "t-no-such-news-topic")
    settings.cache_clear()

    with pytest.raises(NewsUnavailableError, match="t-no-such-news-topic"):
        _window(_source(kafka_bootstrap))


class StaticNews:
    """A NewsSource of fixed titles, one a minute before ``NOW`` (for ``news.source``)."""

    def __init__(self, *, settings: Settings, titles: list[str]) -> None:
        self.headlines_given = [_headline(i + 1, title=title) for i, title in enumerate(titles)]

    def headlines(self, symbol: str, *, since: datetime, until: datetime, limit: int) -> list[Headline]:
        return select_headlines(self.headlines_given, symbol, since=since, until=until, limit=limit)


def test_open_news_source_when_dotted_path_then_class_built_with_settings_and_options() -> None:
    config = NewsConfig(source=f"{__name__}:StaticNews", options={"titles": ["one", "two", "three"]})

    source = open_news_source(config, settings())

    assert isinstance(source, StaticNews)
    found = source.headlines("TSLA", since=NOW - timedelta(minutes=2), until=NOW, limit=10)
    assert [h.title for h in found] == ["two", "one"]


@pytest.mark.parametrize("path", ["tests.no_such_module:StaticNews", f"{__name__}:NoSuchClass"])
def test_open_news_source_when_path_cannot_be_imported_then_config_error_names_news_source(path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_news_source(NewsConfig(source=path), settings())

    assert caught.value.key == "news.source"
    assert path in str(caught.value)


def test_open_news_source_when_options_do_not_fit_then_config_error_names_news_options() -> None:
    config = NewsConfig(source=f"{__name__}:StaticNews", options={"colour": "red"})

    with pytest.raises(ConfigError) as caught:
        open_news_source(config, settings())

    assert caught.value.key == "news.options"


def test_open_news_source_when_kafka_then_kafka_source_on_the_configured_topic() -> None:
    source = open_news_source(NewsConfig(source="kafka", options={"timeout_seconds": 3}), settings())

    assert isinstance(source, KafkaNewsSource)
    assert (source.topic, source.timeout) == (settings().kafka.topics.market_news, 3.0)


def test_headline_when_round_tripped_through_dict_and_json_then_equal() -> None:
    headline = _headline(12)

    assert Headline.from_dict(json.loads(json.dumps(headline.to_dict()))) == headline
    with pytest.raises(ValueError, match="timezone-aware"):
        Headline(id="x", symbol="TSLA", title="t", source="s", published_at=datetime(2026, 1, 1))


# --------------------------------------------------------------------------- the paper feed


def test_headline_at_when_same_inputs_then_same_headline_and_other_slots_differ() -> None:
    slot = datetime(2026, 3, 2, 14, 10, tzinfo=UTC)
    slots = [slot + timedelta(minutes=10 * i) for i in range(144)]

    assert headline_at(7, "TSLA", slot) == headline_at(7, "TSLA", slot)
    assert headline_at(7, "TSLA", slot).published_at == slot
    assert headline_at(7, "TSLA", slot).source == SOURCE
    headlines = [headline_at(7, "TSLA", s) for s in slots]
    assert len({h.id for h in headlines}) == len(slots)
    assert len({h.title for h in headlines}) > 10  # the templates vary
    assert all("Tesla" in h.title for h in headlines)
    assert headline_at(8, "TSLA", slot).id != headline_at(7, "TSLA", slot).id
    assert "Bitcoin" in headline_at(7, "BTC", slot).title


def test_slots_between_when_window_then_epoch_aligned_slots_inside_it() -> None:
    start = datetime(2026, 3, 2, 14, 3, 30, tzinfo=UTC)

    slots = slots_between(start, datetime(2026, 3, 2, 14, 40, tzinfo=UTC), 10)

    assert [f"{s:%H:%M}" for s in slots] == ["14:10", "14:20", "14:30", "14:40"]


def _feed_agents(lookback_minutes: int = 30) -> AgentsFile:
    agents = load_agents()
    news = agents.news.model_copy(update={"lookback_minutes": lookback_minutes})
    return agents.model_copy(update={"news": news})


def test_publish_due_when_called_twice_then_each_slot_published_once_for_every_news_symbol(
    kafka_bootstrap: str, topics: KafkaTopics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    agents = _feed_agents(lookback_minutes=30)
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)

    last = publish_due(settings(), agents, now)
    later = publish_due(settings(), agents, now + timedelta(minutes=25), last)
    unchanged = publish_due(settings(), agents, now + timedelta(minutes=25, seconds=30), later)

    expected_slots = slots_between(now - timedelta(minutes=30), now + timedelta(minutes=25), 10)
    assert last == slots_between(now - timedelta(minutes=30), now, 10)[-1]
    assert later == unchanged == expected_slots[-1]
    messages = read_all(kafka_bootstrap, topics.market_news)
    ids = [parse_event(m.value()).headline_id for m in messages]
    symbols = sorted({a.headline_symbol for a in agents.agents.values()})
    assert symbols == ["BTC", "IWM", "TSLA"]
    assert sorted(ids) == sorted(headline_at(agents.paper_feed.seed, s, t).id for s in symbols for t in expected_slots)


# --------------------------------------------------------------------------- the commands


def _env(kafka_bootstrap: str, topics: KafkaTopics, db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TRADEOPS__KAFKA__TOPICS__MARKET_NEWS": topics.market_news,
        "TRADEOPS__KAFKA__TOPICS__DEAD_LETTER": topics.dead_letter,
        "TRADEOPS_DB_URL": db_url,
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tradeops", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_news_publish_and_show_when_a_headline_published_then_show_prints_it_scored(
    kafka_bootstrap: str, topics: KafkaTopics, db_url: str
) -> None:
    env = _env(kafka_bootstrap, topics, db_url)
    at = (datetime.now(UTC) - timedelta(minutes=3)).isoformat()

    published = _cli(env, "news", "publish", "--symbol", "TSLA", "--title", "Tesla misses estimates", "--at", at)
    again = _cli(env, "news", "publish", "--symbol", "TSLA", "--title", "Tesla misses estimates", "--at", at)
    invalid = _cli(env, "news", "publish", "--symbol", "tesla!", "--title", "x")
    shown = _cli(env, "news", "show", "--symbol", "TSLA", "--minutes", "10")

    assert published.returncode == 0, published.stderr
    assert published.stdout.split()[2] == again.stdout.split()[2]  # id=manual-...: one headline
    assert invalid.returncode == 2 and "field 'symbol'" in invalid.stderr
    assert shown.returncode == 0, shown.stderr
    assert "Tesla misses estimates" in shown.stdout and "manual" in shown.stdout
    assert "sentiment -" in shown.stdout and "(1 headline(s)" in shown.stdout


def test_news_feed_when_running_then_publishes_due_slots_and_sigterm_ends_it_cleanly(
    kafka_bootstrap: str, topics: KafkaTopics, db_url: str
) -> None:
    env = _env(kafka_bootstrap, topics, db_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "tradeops", "news", "feed"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lookback = timedelta(minutes=load_agents().news.lookback_minutes)
        expected = len(slots_between(datetime.now(UTC) - lookback, datetime.now(UTC), 10)) * 3
        wait_until(lambda: len(read_all(kafka_bootstrap, topics.market_news, timeout=5)) >= expected, 60, "the feed")
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, stderr
    assert "published paper headlines for BTC, IWM, TSLA" in stderr and "paper news feed stopped" in stderr


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"published_at": datetime.now(UTC) + timedelta(hours=1)}, "published_at"),
        ({"symbol": "tsla"}, "symbol"),
        ({"title": "   "}, "title"),
        ({"id": "x" * 129}, "headline_id"),
    ],
)
def test_headline_event_when_a_field_is_bad_then_validation_names_it(change: dict[str, object], field: str) -> None:
    from tradeops.errors import EventValidationError

    headline = Headline(**(_headline(5).to_dict() | {"published_at": _headline(5).published_at} | change))

    with pytest.raises(EventValidationError) as caught:
        headline_event(headline)

    assert caught.value.field == field
