"""Headline sentiment, offline and deterministic: VADER (``vaderSentiment``, whose lexicon ships inside
the package; nothing is downloaded) with its lexicon extended by our finance terms
(``finance_lexicon.tsv`` beside this module).

VADER splits a text on whitespace, strips punctuation around each token and looks every token up
in its lexicon, so a multi-word key never matches. Our file's phrases ("raises guidance", "sell
off") therefore go through a pre-pass: each is found in the title (case-insensitively, on word
boundaries, longest first) and replaced by one token, its words joined with ``_``
("raises_guidance"), which is the key it gets in the lexicon; VADER's own rules (negation,
boosters, "but") then apply to it as to any word. Single-word terms are plain lexicon keys.

``analyze`` is a pure function of its inputs and the ``lexicon_version``: the replay of a decision
recomputes it from the logged headlines and compares the floats exactly.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from tradeops.agents.news import Headline

LEXICON_FILE = Path(__file__).with_name("finance_lexicon.tsv")
# Part of the lexicon version: change it when the pre-pass changes what a title becomes.
_PREPASS = "phrases-joined-by-underscore-v1"
# How many effective headlines give half the coverage in the confidence (see ``analyze``).
HALF_COVERAGE_HEADLINES = 2.0


@dataclass(frozen=True, kw_only=True)
class FinanceLexicon:
    """Our terms as VADER lexicon keys (phrases already joined), and the pre-pass that joins them."""

    terms: Mapping[str, float]
    phrases: re.Pattern[str] | None
    version: str

    def prepare(self, text: str) -> str:
        """``text`` with each of our phrases replaced by its joined token."""
        if self.phrases is None:
            return text
        return self.phrases.sub(lambda match: match.group(0).lower().replace(" ", "_"), text)


def load_lexicon(path: Path = LEXICON_FILE) -> FinanceLexicon:
    """Read ``term<TAB>valence`` lines (``#`` comments, blank lines skipped); raise ``ValueError``
    naming the line of a bad one."""
    raw = path.read_bytes()
    terms: dict[str, float] = {}
    phrases: list[str] = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        term, valence = _entry(line, number, path)
        key = term.replace(" ", "_")
        if key in terms:
            raise ValueError(f"{path.name}:{number}: '{term}' is listed twice")
        terms[key] = valence
        if " " in term:
            phrases.append(term)
    pattern = None
    if phrases:
        alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=lambda p: (-len(p), p)))
        pattern = re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)
    digest = hashlib.sha256(f"vaderSentiment {version('vaderSentiment')}\n{_PREPASS}\n".encode() + raw)
    return FinanceLexicon(terms=terms, phrases=pattern, version=digest.hexdigest()[:12])


def _entry(line: str, number: int, path: Path) -> tuple[str, float]:
    parts = line.split("\t")
    if len(parts) != 2:
        raise ValueError(f"{path.name}:{number}: expected term<TAB>valence, got {line!r}")
    term = " ".join(parts[0].split())
    if not term or term != term.lower():
        raise ValueError(f"{path.name}:{number}: terms are lower case and not empty, got {parts[0]!r}")
    try:
        valence = float(parts[1])
    except ValueError:
        raise ValueError(f"{path.name}:{number}: valence {parts[1]!r} is not a number") from None
    if not -4.0 <= valence <= 4.0:
        raise ValueError(f"{path.name}:{number}: valence {valence} is outside -4..4")
    return term, valence


@functools.lru_cache(maxsize=1)
def _scorer() -> tuple[SentimentIntensityAnalyzer, FinanceLexicon]:
    """The analyzer with our terms, built once per process (reading VADER's lexicon takes ~50 ms)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    lexicon = load_lexicon()
    analyzer = SentimentIntensityAnalyzer()
    analyzer.lexicon.update(lexicon.terms)
    return analyzer, lexicon


def lexicon_version() -> str:
    """A short hash of VADER's version, our pre-pass and our lexicon file."""
    return _scorer()[1].version


def compound(text: str) -> float:
    """VADER's compound score (-1..1) of ``text`` with our finance terms."""
    analyzer, lexicon = _scorer()
    return float(analyzer.polarity_scores(lexicon.prepare(text))["compound"])


@dataclass(frozen=True, kw_only=True)
class ScoredHeadline:
    id: str
    title: str
    published_at: datetime
    age_minutes: float
    compound: float
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "published_at": self.published_at.isoformat(),
            "age_minutes": self.age_minutes,
            "compound": self.compound,
            "weight": self.weight,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoredHeadline:
        return cls(
            id=str(data["id"]),
            title=str(data["title"]),
            published_at=datetime.fromisoformat(str(data["published_at"])),
            age_minutes=float(data["age_minutes"]),
            compound=float(data["compound"]),
            weight=float(data["weight"]),
        )


@dataclass(frozen=True, kw_only=True)
class SentimentResult:
    score: float  # -1..1
    confidence: float  # 0..1
    headlines: tuple[ScoredHeadline, ...]
    lexicon_version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "confidence": self.confidence,
            "headlines": [h.to_dict() for h in self.headlines],
            "lexicon_version": self.lexicon_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SentimentResult:
        return cls(
            score=float(data["score"]),
            confidence=float(data["confidence"]),
            headlines=tuple(ScoredHeadline.from_dict(h) for h in data["headlines"]),
            lexicon_version=str(data["lexicon_version"]),
        )


def _scored(headline: Headline, now: datetime, half_life_minutes: float) -> ScoredHeadline:
    age = max((now - headline.published_at).total_seconds() / 60.0, 0.0)  # a headline from the future counts as new
    return ScoredHeadline(
        id=headline.id,
        title=headline.title,
        published_at=headline.published_at,
        age_minutes=age,
        compound=compound(headline.title),
        weight=0.5 ** (age / half_life_minutes),
    )


def analyze(headlines: Iterable[Headline], *, now: datetime, half_life_minutes: float) -> SentimentResult:
    """The recency-weighted sentiment of ``headlines`` at ``now``.

    Each headline gets VADER's compound ``c_i`` (-1..1) and the weight ``w_i = 0.5 ** (age_i /
    half_life_minutes)`` (age in minutes, 0 for a headline stamped after ``now``). Then, with
    ``W = sum(w_i)``:

    - ``score = sum(w_i * c_i) / W``, the weighted mean;
    - ``n_eff = W**2 / sum(w_i**2)``, the effective number of headlines (Kish): 1 for one headline
      or one that outweighs the rest, n for n equally recent ones;
    - ``dispersion = sqrt(sum(w_i * (c_i - score)**2) / W)``, the weighted standard deviation of
      the compounds, 0 (they agree) to 1 (split between -1 and +1);
    - ``confidence = n_eff / (n_eff + 2) * (1 - dispersion)``: it grows with the effective number
      of headlines (one headline: 1/3, four: 2/3) and falls as they disagree.

    No headlines (or weights that underflow to zero): score 0, confidence 0. Headlines are taken
    in (published_at, id) order and summed with ``math.fsum``, so the result does not depend on the
    order given and is the same float on every run.
    """
    if half_life_minutes <= 0:
        raise ValueError(f"half_life_minutes must be positive, got {half_life_minutes}")
    ordered = sorted(headlines, key=lambda h: (h.published_at, h.id))
    scored = tuple(_scored(h, now, half_life_minutes) for h in ordered)
    total = math.fsum(s.weight for s in scored)
    version_ = lexicon_version()
    if not scored or total <= 0.0:
        return SentimentResult(score=0.0, confidence=0.0, headlines=scored, lexicon_version=version_)
    score = math.fsum(s.weight * s.compound for s in scored) / total
    n_eff = total * total / math.fsum(s.weight * s.weight for s in scored)
    dispersion = math.sqrt(math.fsum(s.weight * (s.compound - score) ** 2 for s in scored) / total)
    coverage = n_eff / (n_eff + HALF_COVERAGE_HEADLINES)
    confidence = min(max(coverage * (1.0 - min(dispersion, 1.0)), 0.0), 1.0)
    return SentimentResult(
        score=min(max(score, -1.0), 1.0), confidence=confidence, headlines=scored, lexicon_version=version_
    )
