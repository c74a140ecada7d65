"""How the trading agents have done, from their ``agent_decisions`` rows: counts, hit rate, PnL,
drawdown, fees, and the equity curve as a PNG.

A row's ``equity_after`` is the agent's PnL since its first run (``cash_after`` is its quote cash
flow since then, plus the position at the decision's mark), so PnL is the last ``equity_after``
and the curve starts at 0. Over a window (``since``) PnL and drawdown are measured from the
*baseline*: the ``equity_after`` of the agent's last row before the window (0 when none).

Hit rate: a trade (a ``filled`` or ``partial`` row) is judged at the price of the agent's next
row, whatever that row's outcome: a buy was right when that price is above the trade's
``fill_price``, a sell when it is below; an equal price is wrong. A trade with no later row (or,
against the table's contract, no ``fill_price``) is not judged. ``hit_rate`` is right / judged,
None while nothing can be judged.

The computations are pure functions over rows (mappings of the table's columns, as ``load_rows``
returns them); money stays ``Decimal``. matplotlib is imported inside ``equity_curve_png`` with the
Agg canvas and no pyplot, so nothing global changes in the calling process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from tradeops.agents.agent_tables import agent_decisions
from tradeops.db import transaction

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tradeops.agents.settings import AgentsFile

Row = Mapping[str, Any]
TRADED = frozenset({"filled", "partial"})
_ZERO = Decimal(0)
_PERCENT_STEP = Decimal("0.0001")


@dataclass(frozen=True)
class AgentPerformance:
    """One agent's record over its rows. ``buys`` and ``sells`` split ``trades``; ``rejections``
    counts the rejected rows by risk rule (``unknown`` for a row naming none). Money is in the
    market's quote; ``*_pct`` are percent of the agent's capital (to 4 places); ``max_drawdown`` is
    a positive fall."""

    agent: str
    venue: str
    symbol: str
    capital: Decimal
    runs: int
    trades: int
    buys: int
    sells: int
    holds: int
    rejections: Mapping[str, int]
    unfilled: int
    undone: int
    failed: int
    judged: int
    hit_rate: float | None
    pnl: Decimal
    pnl_pct: Decimal
    max_drawdown: Decimal
    max_drawdown_pct: Decimal
    fees: Decimal
    position: Decimal
    first_as_of: datetime | None
    last_as_of: datetime | None

    @property
    def rejected(self) -> int:
        return sum(self.rejections.values())


def performance(
    rows: Sequence[Row],
    capital: Decimal,
    *,
    agent: str | None = None,
    venue: str = "",
    symbol: str = "",
    baseline: Decimal = _ZERO,
) -> AgentPerformance:
    """The record of one agent's ``rows`` (any order: they are sorted by ``as_of``).

    ``agent``, ``venue``, ``symbol`` name an agent that has no rows; with rows, the agent must match
    and venue and symbol are the last row's. ``baseline`` is the equity before the first row.
    """
    ordered = sorted(rows, key=lambda row: (row["as_of"], row.get("id") or 0))
    name = _agent_of(ordered, agent)
    last = ordered[-1] if ordered else None
    trades = [row for row in ordered if row["outcome"] in TRADED]
    right, judged = _hits(ordered)
    pnl = last["equity_after"] - baseline if last else _ZERO
    drawdown = max_drawdown([row["equity_after"] for row in ordered], baseline)
    return AgentPerformance(
        agent=name,
        venue=last["venue"] if last else venue,
        symbol=last["symbol"] if last else symbol,
        capital=capital,
        runs=len(ordered),
        trades=len(trades),
        buys=sum(1 for row in trades if row["action"] == "buy"),
        sells=sum(1 for row in trades if row["action"] == "sell"),
        holds=_count(ordered, "hold"),
        rejections=_rejections(ordered),
        unfilled=_count(ordered, "unfilled"),
        undone=_count(ordered, "undone"),
        failed=_count(ordered, "failed"),
        judged=judged,
        hit_rate=right / judged if judged else None,
        pnl=pnl,
        pnl_pct=percent_of(pnl, capital),
        max_drawdown=drawdown,
        max_drawdown_pct=percent_of(drawdown, capital),
        fees=sum((row["fee"] for row in ordered), _ZERO),
        position=last["position_after"] if last else _ZERO,
        first_as_of=ordered[0]["as_of"] if ordered else None,
        last_as_of=last["as_of"] if last else None,
    )


def _agent_of(rows: Sequence[Row], agent: str | None) -> str:
    names = {row["agent"] for row in rows}
    if agent is not None:
        names.add(agent)
    if len(names) != 1:
        raise ValueError(f"performance needs the rows of one named agent, got {sorted(names) or 'none'}")
    return names.pop()


def _count(rows: Iterable[Row], outcome: str) -> int:
    return sum(1 for row in rows if row["outcome"] == outcome)


def _rejections(rows: Iterable[Row]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        if row["outcome"] == "rejected":
            rule = row["risk_rule"] or "unknown"
            counts[rule] = counts.get(rule, 0) + 1
    return dict(sorted(counts.items()))


def _hits(ordered: Sequence[Row]) -> tuple[int, int]:
    """(right, judged) over the trades of ``ordered``, each judged at the next row's price."""
    right = judged = 0
    for row, following in pairwise(ordered):
        if row["outcome"] not in TRADED or row["fill_price"] is None:
            continue
        judged += 1
        later, paid = following["price"], row["fill_price"]
        right += (row["action"] == "buy" and later > paid) or (row["action"] == "sell" and later < paid)
    return right, judged


def max_drawdown(equities: Iterable[Decimal], baseline: Decimal = _ZERO) -> Decimal:
    """The largest fall from a running peak (starting at ``baseline``) to a later equity."""
    peak, worst = baseline, _ZERO
    for equity in equities:
        peak = max(peak, equity)
        worst = max(worst, peak - equity)
    return worst


def percent_of(amount: Decimal, capital: Decimal) -> Decimal:
    return (amount * 100 / capital).quantize(_PERCENT_STEP)


# ---------------------------------------------------------------------------------------------
# Reading the table


def load_rows(engine: Engine, agent: str | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
    """Every column of the rows of ``agent`` (all agents: None) from ``since`` on (an aware
    datetime; inclusive), by agent then ``as_of``."""
    query = select(agent_decisions).order_by(agent_decisions.c.agent, agent_decisions.c.as_of, agent_decisions.c.id)
    if agent is not None:
        query = query.where(agent_decisions.c.agent == agent)
    if since is not None:
        query = query.where(agent_decisions.c.as_of >= since)
    with transaction(engine) as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def latest_rows(engine: Engine, agent: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The ``limit`` newest rows (of ``agent``), newest first."""
    query = select(agent_decisions).order_by(agent_decisions.c.as_of.desc(), agent_decisions.c.id.desc()).limit(limit)
    if agent is not None:
        query = query.where(agent_decisions.c.agent == agent)
    with transaction(engine) as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def baseline_equities(engine: Engine, names: Iterable[str], since: datetime | None) -> dict[str, Decimal]:
    """Each agent's ``equity_after`` before ``since`` (its last earlier row; 0 when none or no ``since``)."""
    baselines = {name: _ZERO for name in names}
    if since is None:
        return baselines
    with transaction(engine) as conn:
        for name in baselines:
            equity = conn.execute(
                select(agent_decisions.c.equity_after)
                .where(agent_decisions.c.agent == name, agent_decisions.c.as_of < since)
                .order_by(agent_decisions.c.as_of.desc(), agent_decisions.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            baselines[name] = _ZERO if equity is None else equity
    return baselines


def by_agent(rows: Iterable[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row["agent"], []).append(row)
    return grouped


def summarise(
    rows: Iterable[Row],
    agents_file: AgentsFile,
    names: Sequence[str],
    baselines: Mapping[str, Decimal] | None = None,
) -> list[AgentPerformance]:
    """One record per agent of ``names`` (in that order), zeros for an agent without rows. Rows of
    agents not named are left out."""
    grouped = by_agent(rows)
    records = []
    for name in names:
        config = agents_file.agent(name)
        records.append(
            performance(
                grouped.get(name, []),
                config.capital,
                agent=name,
                venue=config.venue,
                symbol=config.symbol,
                baseline=(baselines or {}).get(name, _ZERO),
            )
        )
    return records


def report(
    engine: Engine, agents_file: AgentsFile, *, agent: str | None = None, since: datetime | None = None
) -> list[AgentPerformance]:
    """The record of every configured agent (or of ``agent``: ``ConfigError`` when not configured)."""
    if agent is not None:
        agents_file.agent(agent)  # ConfigError naming the known agents
    names = [agent] if agent is not None else list(agents_file.agents)
    rows = load_rows(engine, agent, since)
    return summarise(rows, agents_file, names, baseline_equities(engine, names, since))


# ---------------------------------------------------------------------------------------------
# The equity curve


def equity_curve_figure(
    rows_by_agent: Mapping[str, Sequence[Row]], baselines: Mapping[str, Decimal] | None = None
) -> Figure:
    """One step line per agent with rows (labelled with the agent's name and symbol): its
    ``equity_after`` over ``as_of`` in UTC, the fall below its running peak shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10.0, 5.0), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    drawn = 0
    for name, rows in sorted(rows_by_agent.items()):
        if rows:
            _draw_agent(axis, name, rows, (baselines or {}).get(name, _ZERO))
            drawn += 1
    _decorate(axis, drawn)
    return figure


def _draw_agent(axis: Axes, name: str, rows: Sequence[Row], baseline: Decimal) -> None:
    ordered = sorted(rows, key=lambda row: (row["as_of"], row.get("id") or 0))
    times = [row["as_of"].astimezone(UTC) for row in ordered]
    equity = [row["equity_after"] - baseline for row in ordered]
    peaks, peak = [], _ZERO
    for value in equity:
        peak = max(peak, value)
        peaks.append(peak)
    # floats for drawing only: every figure the report states is computed in Decimal above
    (line,) = axis.step(
        times, [float(v) for v in equity], where="post", marker=".", label=f"{name} {ordered[-1]['symbol']}"
    )
    axis.fill_between(
        times, [float(v) for v in equity], [float(p) for p in peaks], step="post", alpha=0.2, color=line.get_color()
    )


def _decorate(axis: Axes, drawn: int) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    axis.set_title("Agents' equity (PnL); shaded: the fall below each one's running peak")
    axis.set_xlabel("decision time (as_of, UTC)")
    axis.set_ylabel("equity (quote currency of each agent's market)")
    axis.grid(True, alpha=0.3)
    if not drawn:
        axis.set_xticks([])
        axis.set_yticks([])
        axis.text(0.5, 0.5, "no agent decision recorded", transform=axis.transAxes, ha="center", va="center")
        return
    locator = AutoDateLocator(tz=UTC)
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    axis.legend(loc="best")


def equity_curve_png(
    rows_by_agent: Mapping[str, Sequence[Row]], path: Path, baselines: Mapping[str, Decimal] | None = None
) -> Path:
    """Write ``equity_curve_figure`` as a PNG at ``path`` (parent folders created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    equity_curve_figure(rows_by_agent, baselines).savefig(path, format="png", metadata={"Software": None})
    return path
