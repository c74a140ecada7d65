"""The model card: what a reviewer reads before a model trades, as markdown plus figures.

Written into a folder that the training run logs to MLflow as artifacts: ``model_card.md``,
``equity_curve.png``, ``drawdown.png``, ``feature_importance.png`` and ``calibration.png``. It
names the data window, the label, the costs, the candidates and their CV figures, the held-out
metrics per calendar group with the annualisation used, and every gate with its value and limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradeops.config import Settings
from tradeops.market_data.registry import FEATURES
from tradeops.models.training import Evaluation, group_slug

if TYPE_CHECKING:
    import pandas as pd

_ANNUALISATION = {
    "24/7": "crypto, 365 days x 24 h x 60 min / {minutes} min per period = {periods:,.0f} periods a year",
    "XNYS": "NYSE, 252 sessions x 390 min / {minutes} min per period = {periods:,.0f} periods a year",
}


def write(settings: Settings, evaluation: Evaluation, folder: Path, facts: dict[str, Any]) -> list[Path]:
    """Write the card and its figures into ``folder``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    importance = feature_importance(evaluation, settings.models.training.seed)
    files = [
        _equity(evaluation, folder / "equity_curve.png"),
        _drawdown(evaluation, folder / "drawdown.png"),
        _importance(importance, folder / "feature_importance.png"),
        _calibration(evaluation, folder / "calibration.png"),
    ]
    card = folder / "model_card.md"
    card.write_text(_markdown(settings, evaluation, importance, facts))
    return [card, *files]


def feature_importance(evaluation: Evaluation, seed: int) -> pd.Series:
    """Permutation importance on the held-out window (drop in ROC AUC when a feature is
    shuffled): comparable across the linear model and the trees."""
    import pandas as pd
    from sklearn.inspection import permutation_importance

    test = evaluation.test
    rows = min(len(test), 20_000)
    result = permutation_importance(
        evaluation.model,
        test.features.iloc[:rows],
        test.label[:rows],
        scoring="roc_auc" if len(set(test.label[:rows].tolist())) == 2 else "accuracy",
        n_repeats=3,
        random_state=seed,
    )
    return pd.Series(result.importances_mean, index=test.features.columns).sort_values(ascending=False)


def _markdown(settings: Settings, evaluation: Evaluation, importance: pd.Series, facts: dict[str, Any]) -> str:
    training, costs = settings.models.training, settings.models.backtest
    lines = [
        f"# Model card: {settings.models.registered_model} {facts.get('version', '(unregistered)')}",
        "",
        f"Verdict: **{_verdict(evaluation)}**",
        "",
        "## Data",
        f"- Feature partitions: {facts['first_day']} to {facts['last_day']} ({facts['days']} days),"
        f" feature registry {facts['feature_registry_version']}, code {facts['code_version']}",
        f"- Samples: {len(evaluation.train):,} training, {len(evaluation.test):,} held out"
        f" (the last {training.test_share:.0%} of the timestamps, from {facts['test_start']}),"
        f" one every {training.sample_every} bars per instrument",
        f"- Label: 1 when the forward log return over {training.horizon_bars} bars beats a round trip's"
        f" costs ({2 * (costs.fee_bps + costs.slippage_bps):g} bps), else 0; base rate"
        f" {evaluation.classification['base_rate']:.3f} on the held-out window",
        f"- Backtest: long above p = {costs.threshold}, short below {1 - costs.threshold:g}, flat between;"
        f" fees {costs.fee_bps:g} bps and slippage {costs.slippage_bps:g} bps per unit of turnover, each side",
        "",
        "## Candidates (purged walk-forward CV)",
        f"{training.folds} folds, embargo {training.embargo_bars} bars; chosen on the mean per-period Sharpe"
        " ratio of the folds' backtests.",
        "",
        "| candidate | CV Sharpe per period | its std | CV log loss | chosen |",
        "|---|---:|---:|---:|---|",
    ]
    for name, figures in evaluation.cv.items():
        lines.append(
            f"| {name} | {figures['sharpe_per_period']:.4f} | {figures['sharpe_per_period_std']:.4f} |"
            f" {figures['log_loss']:.4f} | {'yes' if name == evaluation.chosen else ''} |"
        )
    lines += ["", "## Held-out window", "", "| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in evaluation.classification.items()]
    for group in evaluation.groups:
        minutes = settings.models.training.sample_every
        rule = _ANNUALISATION.get(group.calendar, "{periods:,.0f} periods a year")
        lines += [
            "",
            f"### Calendar {group.calendar} ({len(group.instruments)} instruments)",
            f"Annualisation: {rule.format(minutes=minutes, periods=group.periods_per_year)}.",
            "",
            "| metric | value |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {v:.4f} |" for k, v in group.metrics.items()]
    lines += ["", "## Gates", "", "| gate | value | rule | result |", "|---|---:|---|---|"]
    lines += [f"| {g.name} | {g.value:.4f} | {g.rule} | {'pass' if g.passed else 'FAIL'} |" for g in evaluation.gates]
    described = {spec.name: spec.description for spec in FEATURES}
    lines += ["", "## Features (permutation importance on the held-out window)", ""]
    lines += ["| feature | importance | description |", "|---|---:|---|"]
    lines += [f"| {name} | {value:.5f} | {described.get(str(name), '')} |" for name, value in importance.items()]
    lines += [
        "",
        "Figures: equity_curve.png, drawdown.png (held-out backtest per calendar group),"
        " feature_importance.png, calibration.png.",
        f"Gate names end with the calendar group ({', '.join(group_slug(g.calendar) for g in evaluation.groups)}).",
        "",
    ]
    return "\n".join(lines)


def _verdict(evaluation: Evaluation) -> str:
    if evaluation.passed:
        return "passed every gate"
    return f"failed {len(evaluation.failed())} of {len(evaluation.gates)} gates"


def _equity(evaluation: Evaluation, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(8, 4))
    for group in evaluation.groups:
        result = group.backtest
        axis.plot(result.times, np.cumprod(1 + result.returns), label=group.calendar)
    axis.set_title("Held-out equity curve (net of costs)")
    axis.set_ylabel("growth of 1")
    axis.legend()
    figure.autofmt_xdate()
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return path


def _drawdown(evaluation: Evaluation, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(8, 3))
    for group in evaluation.groups:
        equity = np.cumprod(1 + group.backtest.returns)
        axis.fill_between(
            group.backtest.times, 1 - equity / np.maximum.accumulate(equity), alpha=0.5, label=group.calendar
        )
    axis.set_title("Held-out drawdown")
    axis.invert_yaxis()
    axis.legend()
    figure.autofmt_xdate()
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return path


def _importance(importance: pd.Series, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 5))
    importance.sort_values().plot.barh(ax=axis)
    axis.set_title("Permutation importance (held-out window)")
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return path


def _calibration(evaluation: Evaluation, path: Path) -> Path:
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    figure, axis = plt.subplots(figsize=(5, 5))
    observed, predicted = calibration_curve(evaluation.test.label, evaluation.test_probability, n_bins=10)
    axis.plot(predicted, observed, marker="o", label="model")
    axis.plot([0, 1], [0, 1], linestyle="--", label="perfectly calibrated")
    axis.set_xlabel("predicted probability of up")
    axis.set_ylabel("observed share of up")
    axis.set_title("Calibration (held-out window)")
    axis.legend()
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return path
