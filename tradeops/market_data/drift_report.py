"""The feature health report of one window: markdown plus two PNG plots, as bytes.

``render`` is a pure function: the caller stores what it returns (beside the data in the object
store) and links it from the task log. matplotlib is imported inside, with the Agg canvas and no
pyplot, so nothing global (backend, open figures) changes in the calling process.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from tradeops.market_data.drift import LEVELS, DriftAssessment, FeatureDrift

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

REPORT = "report.md"
DISTRIBUTIONS = "distributions.png"
PSI_HISTORY = "psi_history.png"
_SHOWN = 6  # features plotted


def render(
    assessment: DriftAssessment,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    history: Sequence[Mapping[str, Any]] = (),
) -> dict[str, bytes]:
    """``report.md``, ``distributions.png`` (reference vs current of the most drifted features) and
    ``psi_history.png`` (PSI per window over ``history``, past ``DriftAssessment.to_dict()`` values
    oldest first, then this window)."""
    shown = most_drifted(assessment)
    past = [DriftAssessment.from_dict(item) for item in history]
    return {
        REPORT: _markdown(assessment).encode(),
        DISTRIBUTIONS: _png(_distributions(shown, reference, current)),
        PSI_HISTORY: _png(_psi_history([*past, assessment], shown)),
    }


def most_drifted(assessment: DriftAssessment, count: int = _SHOWN) -> list[FeatureDrift]:
    """Flagged features first (critical before warning), then by PSI."""

    def key(item: FeatureDrift) -> tuple[int, float]:
        return (-LEVELS.index(item.level), -(item.psi if math.isfinite(item.psi) else -1.0))

    return sorted(assessment.features, key=key)[:count]


# ---------------------------------------------------------------------------------------------
# Markdown


def _figure(value: float, pattern: str = "{:.3f}") -> str:
    return pattern.format(value) if math.isfinite(value) else "-"


def _pair(first: float, second: float) -> str:
    return f"{_figure(first, '{:.1%}')} / {_figure(second, '{:.1%}')}"


def _q_values(item: FeatureDrift) -> str:
    return " / ".join(_figure(q, "{:.2g}") for q in (item.distribution_q, item.missing_q))


def _markdown(assessment: DriftAssessment) -> str:
    window = f"{assessment.window_start} to {assessment.window_end}" if assessment.window_start else "(no timestamps)"
    lines = [
        f"# Feature health: {assessment.level}",
        "",
        f"Window {window}: {assessment.rows_current:,} rows against {assessment.rows_reference:,} reference rows.",
        "",
        assessment.summary,
        "",
        "## Flagged features",
        "",
    ]
    flagged = assessment.flagged
    lines += [f"- **{item.name}** ({item.level}): {item.reason}" for item in flagged] or ["None."]
    correlation = assessment.correlation
    lines += ["", "## Correlations", ""]
    if correlation.reason:
        lines.append(f"{correlation.level}: {correlation.reason}")
    else:
        lines.append(f"Stable (largest change {_figure(correlation.max_change, '{:.2f}')}).")
    lines += [
        f"- {pair.first} / {pair.second}: {pair.reference:.2f} -> {pair.current:.2f} (q={pair.q_value:.2g})"
        for pair in correlation.pairs
    ]
    lines += [
        "",
        "## All features",
        "",
        "| feature | level | PSI | median shift (sd) | spread | KS D | JS | missing (window / reference) "
        "| outside range (window / reference) | q (distribution / missing) | streak |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {item.name} | {item.level} | {_figure(item.psi)} | {_figure(item.shift, '{:+.2f}')} | "
        f"{_figure(item.spread_ratio, 'x{:.2f}')} | "
        f"{_figure(item.ks_statistic)} | {_figure(item.js_distance)} | "
        f"{_pair(item.missing_current, item.missing_reference)} | "
        f"{_pair(item.outside_current, item.outside_reference)} | {_q_values(item)} | {item.streak} |"
        for item in assessment.features
    ]
    lines += ["", f"![distributions]({DISTRIBUTIONS})", "", f"![PSI over time]({PSI_HISTORY})", ""]
    lines.append(_thresholds(assessment))
    return "\n".join(lines) + "\n"


def _thresholds(assessment: DriftAssessment) -> str:
    c = assessment.config
    low, high = c["range_quantiles"]
    return (
        f"Thresholds (warning / critical): PSI {c['psi_warning']} / {c['psi_critical']}; median shift "
        f"{c['shift_warning']} / {c['shift_critical']} robust sd; spread (interdecile "
        f"range) x{c['spread_warning']} / x{c['spread_critical']}; missing +{c['missing_warning']:.0%} / "
        f"+{c['missing_critical']:.0%}; correlation change {c['correlation_warning']} / "
        f"{c['correlation_critical']}. Significance: Benjamini-Hochberg at {c['fdr_alpha']}; critical after "
        f"{c['consecutive_windows']} consecutive windows; nothing decided below {c['min_samples']} samples. "
        f"Outside range: beyond the reference's {low} and {high} quantiles."
    )


# ---------------------------------------------------------------------------------------------
# Plots


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _finite(frame: pd.DataFrame, name: str) -> np.ndarray:
    values = frame[name].to_numpy(dtype=np.float64)
    return values[np.isfinite(values)]


def _distributions(shown: Sequence[FeatureDrift], reference: pd.DataFrame, current: pd.DataFrame) -> Figure:
    columns = 3
    rows = max(1, math.ceil(len(shown) / columns))
    figure = _new_figure(4.2 * columns, 3.0 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, item in zip(axes, shown, strict=False):
        before, after = _finite(reference, item.name), _finite(current, item.name)
        both = np.concatenate([before, after])
        if both.size == 0:
            axis.set_title(f"{item.name}: no values")
            continue
        low, high = np.quantile(both, [0.001, 0.999])
        edges = np.linspace(low, high, 41) if high > low else np.array([low - 0.5, high + 0.5])
        axis.hist(np.clip(before, low, high), bins=edges, density=True, histtype="step", label="reference")
        if after.size:
            axis.hist(np.clip(after, low, high), bins=edges, density=True, histtype="step", label="current")
        axis.set_title(f"{item.name}: {item.level}, PSI {_figure(item.psi, '{:.2f}')}", fontsize=9)
        missing = _pair(item.missing_current, item.missing_reference)
        axis.set_xlabel(f"missing {missing}; the outer 0.1 % in the end bins", fontsize=8)
        axis.legend(fontsize=7)
    for axis in axes[len(shown) :]:
        axis.set_visible(False)
    return figure


def _when(assessment: DriftAssessment) -> datetime | None:
    return datetime.fromisoformat(assessment.window_end) if assessment.window_end else None


def _psi_history(series: Sequence[DriftAssessment], shown: Sequence[FeatureDrift]) -> Figure:
    figure = _new_figure(8.0, 4.0)
    axis = figure.subplots()
    times = [_when(item) for item in series]
    x: Sequence[Any] = times if all(times) else list(range(1 - len(series), 1))
    for feature in shown:
        values = [_psi_of(item, feature.name) for item in series]
        axis.plot(x, values, marker="o", markersize=3, label=feature.name)
    config = series[-1].config
    axis.axhline(config["psi_warning"], color="orange", linestyle="--", linewidth=1, label="warning")
    axis.axhline(config["psi_critical"], color="red", linestyle="--", linewidth=1, label="critical")
    axis.set_ylabel("PSI")
    axis.set_xlabel("window end" if all(times) else "window (0 = this one)")
    axis.set_title("PSI per window")
    axis.legend(fontsize=7, ncols=2)
    if all(times):
        axis.tick_params(axis="x", labelrotation=30)
    return figure


def _psi_of(assessment: DriftAssessment, name: str) -> float:
    for item in assessment.features:
        if item.name == name:
            return item.psi
    return math.nan
