"""Weekly training: candidates chosen on purged walk-forward CV, judged on a held-out window.

The samples (``tradeops.models.dataset``) are split in time: the last ``training.test_share`` of
the timestamps is the test window, never seen by selection or fitting; the training samples
whose labels reach into it are purged. Every candidate (a linear baseline and a tree ensemble) is
scored by the per-period Sharpe ratio of a backtest of each CV fold, net of costs; the best is
refitted on all training samples and backtested on the test window, per calendar group (24/7
and XNYS annualise differently). The gates judge each group; all must pass. The probabilistic
Sharpe ratio is deflated for the number of candidates tried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tradeops.config import Settings
from tradeops.models.dataset import Samples

if TYPE_CHECKING:
    import numpy as np
    from sklearn.pipeline import Pipeline

    from tradeops.models.backtest import BacktestResult


def _logistic(c: float) -> Callable[[int], Pipeline]:
    def build(seed: int) -> Pipeline:
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline(
            [
                ("impute", SimpleImputer(strategy="median")),
                ("scale", StandardScaler()),
                ("model", LogisticRegression(C=c, max_iter=2000, random_state=seed)),
            ]
        )

    return build


def _boosted_trees(seed: int) -> Pipeline:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            (
                "model",
                HistGradientBoostingClassifier(
                    max_depth=3,
                    learning_rate=0.05,
                    max_iter=150,
                    l2_regularization=1.0,
                    early_stopping=False,
                    random_state=seed,
                ),
            )
        ]
    )


# name -> builder(seed). Each is one "configuration tried" for the deflated Sharpe ratio.
CANDIDATES: dict[str, Callable[[int], Pipeline]] = {
    "logistic_c0.1": _logistic(0.1),
    "logistic_c1": _logistic(1.0),
    "boosted_trees_d3": _boosted_trees,
}


@dataclass(frozen=True)
class GateResult:
    name: str  # e.g. "sharpe_24x7"
    value: float
    limit: float
    passed: bool
    rule: str  # "> 2.0", "< 0.15", ...

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "limit": self.limit, "passed": self.passed, "rule": self.rule}


@dataclass(frozen=True, eq=False)
class GroupEvaluation:
    """The held-out backtest of one calendar group."""

    calendar: str
    periods_per_year: float
    instruments: tuple[str, ...]
    metrics: dict[str, float]
    backtest: BacktestResult = field(repr=False)


@dataclass(frozen=True, eq=False)
class Evaluation:
    chosen: str
    cv: dict[str, dict[str, float]]  # candidate -> mean CV figures
    classification: dict[str, float]
    groups: tuple[GroupEvaluation, ...]
    gates: tuple[GateResult, ...]
    model: Pipeline = field(repr=False)
    train: Samples = field(repr=False)
    test: Samples = field(repr=False)
    test_probability: np.ndarray = field(repr=False)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]


def split(samples: Samples, test_share: float) -> tuple[Samples, Samples]:
    """Training and test samples: the test window is the last ``test_share`` of the timestamps;
    training samples whose label is known only inside it are dropped (purged)."""
    import numpy as np

    times = np.unique(samples.starts)
    if len(times) < 10:
        raise ValueError(f"{len(times)} sample times: too few to hold a test window out")
    first_test = times[int(len(times) * (1 - test_share))]
    train_rows = np.flatnonzero((samples.starts < first_test) & (samples.ends < first_test))
    test_rows = np.flatnonzero(samples.starts >= first_test)
    return samples.take(train_rows), samples.take(test_rows)


def evaluate(settings: Settings, samples: Samples) -> Evaluation:
    """Choose a candidate on CV, refit it, backtest the held-out window, judge the gates."""
    import numpy as np

    training = settings.models.training
    train, test = split(samples, training.test_share)
    cv = {name: _cross_validate(settings, build, train) for name, build in CANDIDATES.items()}
    chosen = max(cv, key=lambda name: (cv[name]["sharpe_per_period"], -cv[name]["log_loss"]))
    model = CANDIDATES[chosen](training.seed)
    model.fit(train.features, train.label)
    probability = model.predict_proba(test.features)[:, 1]
    trial_sharpes = np.array([c["sharpe_per_period"] for c in cv.values()])
    groups = tuple(_evaluate_group(settings, test, probability, cal, trial_sharpes) for cal in _calendars(test))
    gates = tuple(gate for group in groups for gate in _gates(settings, group))
    return Evaluation(
        chosen=chosen,
        cv=cv,
        classification=_classification(test.label, probability),
        groups=groups,
        gates=gates,
        model=model,
        train=train,
        test=test,
        test_probability=probability,
    )


def _cross_validate(settings: Settings, build: Callable[[int], Pipeline], train: Samples) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import log_loss

    from tradeops.models.backtest import backtest, positions_from_probabilities
    from tradeops.models.cv import purged_walk_forward
    from tradeops.models.metrics import sharpe

    training, costs = settings.models.training, settings.models.backtest
    embargo = training.embargo_bars // training.sample_every
    sharpes, losses = [], []
    for fold in purged_walk_forward(train.starts, train.ends, folds=training.folds, embargo=embargo):
        fitted = build(training.seed)
        fitted.fit(train.features.iloc[fold.train], train.label[fold.train])
        probability = fitted.predict_proba(train.features.iloc[fold.test])[:, 1]
        held = train.take(fold.test)
        result = backtest(
            held.starts,
            held.instruments,
            positions_from_probabilities(probability, costs.threshold),
            held.hold_return,
            costs.fee_bps,
            costs.slippage_bps,
        )
        sharpes.append(float(sharpe(result.returns, 1.0)))  # per period: only ranks the candidates
        losses.append(float(log_loss(held.label, probability, labels=[0, 1])))
    return {
        "sharpe_per_period": float(np.nanmean(sharpes)) if np.isfinite(sharpes).any() else float("-inf"),
        "sharpe_per_period_std": float(np.nanstd(sharpes)),
        "log_loss": float(np.mean(losses)),
        "folds": float(len(sharpes)),
    }


def _calendars(samples: Samples) -> list[str]:
    return sorted({str(c) for c in samples.calendar})


def _evaluate_group(
    settings: Settings, test: Samples, probability: np.ndarray, calendar: str, trial_sharpes: np.ndarray
) -> GroupEvaluation:
    import numpy as np

    from tradeops.models.backtest import backtest, positions_from_probabilities
    from tradeops.models.metrics import (
        deflated_sharpe,
        max_drawdown,
        periods_per_year,
        probabilistic_sharpe,
        sharpe,
    )

    costs = settings.models.backtest
    rows = np.flatnonzero(test.calendar == calendar)
    held = test.take(rows)
    result = backtest(
        held.starts,
        held.instruments,
        positions_from_probabilities(probability[rows], costs.threshold),
        held.hold_return,
        costs.fee_bps,
        costs.slippage_bps,
    )
    per_year = periods_per_year(calendar, settings.models.training.sample_every)
    finite = trial_sharpes[np.isfinite(trial_sharpes)]
    variance = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0
    metrics = {
        "sharpe": float(sharpe(result.returns, per_year)),
        "max_drawdown": float(max_drawdown(result.returns)),
        "win_rate": float(result.win_rate),
        "trades": float(result.trades),
        "turnover": float(result.turnover),
        "psr": float(probabilistic_sharpe(result.returns)),
        "deflated_psr": float(deflated_sharpe(result.returns, len(CANDIDATES), variance)),
        "periods": float(len(result.returns)),
        "total_return": float(np.prod(1 + result.returns) - 1),
    }
    return GroupEvaluation(calendar, per_year, tuple(sorted(set(held.instruments))), metrics, result)


def group_slug(calendar: str) -> str:
    """A calendar as it appears in gate and metric names: "24/7" -> "24x7", "XNYS" -> "xnys"."""
    return calendar.replace("/", "x").lower()


def _gates(settings: Settings, group: GroupEvaluation) -> list[GateResult]:
    import math

    gates = settings.models.gates
    m, slug = group.metrics, group_slug(group.calendar)

    def gate(metric: str, value: float, limit: float, above: bool, strict: bool = True) -> GateResult:
        ok = not math.isnan(value) and (
            (value > limit if strict else value >= limit) if above else (value < limit if strict else value <= limit)
        )
        rule = (">" if strict else ">=") if above else ("<" if strict else "<=")
        return GateResult(f"{metric}_{slug}", value, limit, ok, f"{rule} {limit:g}")

    return [
        gate("sharpe", m["sharpe"], gates.min_sharpe, above=True),
        gate("max_drawdown", m["max_drawdown"], gates.max_drawdown, above=False),
        gate("win_rate", m["win_rate"], gates.min_win_rate, above=True),
        gate("trades", m["trades"], float(gates.min_trades), above=True, strict=False),
        gate("psr", m["deflated_psr"], gates.min_psr, above=True, strict=False),
    ]


def _classification(label: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import (
        accuracy_score,
        brier_score_loss,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    predicted = (probability >= 0.5).astype(int)
    both = len(set(label.tolist())) == 2
    return {
        "accuracy": float(accuracy_score(label, predicted)),
        "precision": float(precision_score(label, predicted, zero_division=0)),
        "recall": float(recall_score(label, predicted, zero_division=0)),
        "f1": float(f1_score(label, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(label, probability)) if both else float("nan"),
        "log_loss": float(log_loss(label, probability, labels=[0, 1])),
        "brier": float(brier_score_loss(label, probability)),
        "base_rate": float(label.mean()),
    }
