"""Headline sentiment: VADER with our finance lexicon scores finance headlines in the right direction
(where plain VADER does not), weights by recency, and its confidence follows count and agreement."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from tradeops.agents.news import Headline
from tradeops.agents.paper_news import NAMES, TEMPLATES
from tradeops.agents.sentiment import (
    LEXICON_FILE,
    SentimentResult,
    analyze,
    compound,
    lexicon_version,
    load_lexicon,
)

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PLAIN = SentimentIntensityAnalyzer()  # VADER without our terms


def _plain(text: str) -> float:
    return float(PLAIN.polarity_scores(text)["compound"])


def _headline(title: str, minutes_before: float = 0.0, number: int = 0) -> Headline:
    return Headline(
        id=f"h{number}-{minutes_before:g}",
        symbol="TSLA",
        title=title,
        source="wire",
        published_at=NOW - timedelta(minutes=minutes_before),
    )


@pytest.mark.parametrize(
    "title",
    [
        "Tesla beats estimates and raises guidance",
        "Bitcoin rallies to record high",
        "Analysts upgrade Tesla to outperform",
        "Tesla reports record deliveries",
        "Tesla announces $5 billion buyback",
    ],
)
def test_compound_when_bullish_finance_headline_then_positive(title: str) -> None:
    assert compound(title) > 0.3


@pytest.mark.parametrize(
    "title",
    [
        "Tesla misses delivery estimates; analysts downgrade",
        "IWM slides as small caps sell off",
        "Tesla recalls 2 million cars",
        "Tesla files for Chapter 11",
        "Tesla does not raise guidance",
        "Tesla beats estimates but cuts guidance",
    ],
)
def test_compound_when_bearish_finance_headline_then_negative(title: str) -> None:
    assert compound(title) < -0.3


@pytest.mark.parametrize(
    ("title", "sign"),
    [
        ("Tesla beats estimates and raises guidance", 1),  # plain VADER: 0 (neither word is in its lexicon)
        ("Bitcoin rallies to record high", 1),
        ("Analysts upgrade Tesla to outperform", 1),
        ("IWM slides as small caps sell off", -1),
        ("Tesla recalls 2 million cars", -1),
        ("Tesla cuts costs as loss narrows", 1),  # plain VADER: negative ("cuts", "loss")
        ("Tesla posts narrower loss", 1),  # plain VADER: negative
    ],
)
def test_compound_when_plain_vader_misses_it_then_our_lexicon_gives_the_right_sign(title: str, sign: int) -> None:
    assert _plain(title) * sign <= 0  # plain VADER misses it or gets it backwards
    assert compound(title) * sign > 0.2


def test_compound_when_phrase_spans_punctuation_or_case_then_still_joined() -> None:
    assert compound("TESLA BEATS ESTIMATES.") == compound("Tesla beats estimates")
    assert compound("Tesla: guidance raised, shares jump") > 0.3
    assert compound("Tesla beats estimates") > compound("Tesla beats")  # the phrase outweighs the word


def test_paper_templates_when_scored_then_each_tone_has_its_sign() -> None:
    for tone, templates in TEMPLATES.items():
        for template in templates:
            for name in NAMES.values():
                score = compound(template.format(name=name))
                ok = {"bullish": score > 0.05, "bearish": score < -0.05, "neutral": abs(score) < 0.05}[tone]
                assert ok, f"{tone} template {template!r} with {name!r} scores {score}"


def test_analyze_when_no_headlines_then_score_and_confidence_zero() -> None:
    result = analyze([], now=NOW, half_life_minutes=90)

    assert (result.score, result.confidence, result.headlines) == (0.0, 0.0, ())
    assert result.lexicon_version == lexicon_version()


def test_analyze_when_headlines_age_then_weight_halves_per_half_life_and_recent_ones_dominate() -> None:
    old_bullish = _headline("Tesla beats estimates and raises guidance", minutes_before=270)
    new_bearish = _headline("Tesla misses estimates; analysts downgrade", minutes_before=0)

    result = analyze([old_bullish, new_bearish], now=NOW, half_life_minutes=90)
    flipped = analyze(
        [_headline(old_bullish.title, 0), _headline(new_bearish.title, 270)], now=NOW, half_life_minutes=90
    )

    weights = {h.id: h.weight for h in result.headlines}
    assert weights == {old_bullish.id: 0.125, new_bearish.id: 1.0}
    assert [h.age_minutes for h in result.headlines] == [270.0, 0.0]
    expected = (0.125 * compound(old_bullish.title) + compound(new_bearish.title)) / 1.125
    assert result.score == pytest.approx(expected, abs=1e-12)
    assert result.score < 0 < flipped.score


def test_analyze_when_headlines_agree_then_more_confident_than_when_they_disagree() -> None:
    bullish = ["Tesla beats estimates and raises guidance", "Tesla rallies to record high"]
    bearish = ["Tesla misses estimates; analysts downgrade", "Tesla tumbles after guidance cut"]

    agree = analyze([_headline(t, 10, i) for i, t in enumerate(bullish * 2)], now=NOW, half_life_minutes=90)
    split = analyze([_headline(t, 10, i) for i, t in enumerate(bullish + bearish)], now=NOW, half_life_minutes=90)
    one = analyze([_headline(bullish[0], 10)], now=NOW, half_life_minutes=90)

    assert agree.confidence > split.confidence
    assert agree.confidence > one.confidence  # more headlines, more confidence
    assert one.confidence == pytest.approx(1 / 3)  # one headline: n_eff 1, no dispersion
    assert abs(split.score) < 0.2 < agree.score


def test_analyze_when_same_inputs_in_any_order_then_identical_floats_and_survives_json() -> None:
    titles = ["Tesla beats estimates", "Tesla slides as sell-off deepens", "Tesla trades flat ahead of key data"]
    headlines = [_headline(t, 17.5 * (i + 1), i) for i, t in enumerate(titles)]

    result = analyze(headlines, now=NOW, half_life_minutes=90)
    again = analyze(list(reversed(headlines)), now=NOW, half_life_minutes=90)
    replayed = SentimentResult.from_dict(json.loads(json.dumps(result.to_dict())))

    assert again == result
    assert replayed == result
    assert -1 <= result.score <= 1 and 0 <= result.confidence <= 1


def test_load_lexicon_when_file_changes_then_version_changes(tmp_path: Path) -> None:
    changed = tmp_path / "lexicon.tsv"
    changed.write_bytes(LEXICON_FILE.read_bytes() + b"moonshot\t2.0\n")

    assert load_lexicon(changed).version != load_lexicon().version == lexicon_version()
    assert len(lexicon_version()) == 12


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("beats\t5.0\n", "outside -4..4"),
        ("Beats\t1.0\n", "lower case"),
        ("beats 1.0\n", "term<TAB>valence"),
        ("rally\t1.0\n", "listed twice"),
    ],
)
def test_load_lexicon_when_line_is_bad_then_error_names_the_line(tmp_path: Path, line: str, message: str) -> None:
    bad = tmp_path / "lexicon.tsv"
    bad.write_text("# test lexicon\nrally\t2.0\n" + line)

    with pytest.raises(ValueError, match=message) as caught:
        load_lexicon(bad)

    assert "lexicon.tsv:3" in str(caught.value)


def test_lexicon_file_when_read_then_commented_single_tokens_and_phrases_in_range() -> None:
    lines = LEXICON_FILE.read_text().splitlines()
    lexicon = load_lexicon()

    assert lines[0].startswith("# Finance terms")
    assert 60 <= len(lexicon.terms) <= 150
    assert any("_" in key for key in lexicon.terms) and any("_" not in key for key in lexicon.terms)
