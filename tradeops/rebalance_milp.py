"""The exact solver behind the rebalance planner: a fixed-charge min-cost flow as a MILP.

Per arc ``e`` (see ``rebalance_graph``): ``x_e`` the amount sent, ``y_e`` binary "arc used".
- linking (big-M): ``min_e * y_e <= x_e <= max_e * y_e`` (``max_e`` is the sender's balance);
- funding: what a venue sends is at most what it holds at the start, so the steps can run in
  any order without waiting for a settlement;
- tolerance: ``after_v = before_v - sum(out x) + sum(in x - fee)`` lies within ``target_v +- band``;
- deviation: ``d_v = before_v - sum(out r) + sum(in r) - target_v`` with ``r = x - fee`` (what
  arrives): the target as if each sender paid its own fees, so receivers can land on target;
- no cycle: a used arc ``u -> v`` needs ``order_v >= order_u + 1`` (``order`` in [0, n-1]), so
  money never goes round (e.g. there and back again to dodge ``min_transfer``). Relays stay
  possible: a venue may receive from one venue and send to another.

Objectives, lexicographically (each phase keeps the earlier optima as constraints):
1. total fees; 2. number of transfers; 3. sum ``|d_v|``; 4. total amount sent (less money in
flight); 5. sum of arc ranks (a stable tie-break by the arcs' sorted order).
HiGHS (``scipy.optimize.milp``) solves each phase to optimality (``mip_rel_gap=0``). The chosen
arcs are then fixed and the amounts re-solved as an LP, which removes big-M leakage (a tiny
``y_e`` carrying flow without paying the fee, within the integrality tolerance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from tradeops.rebalance_graph import Arc

if TYPE_CHECKING:
    from scipy.optimize import Bounds

Vector = NDArray[np.float64]
_FEAS_SLACK = 1e-12


@dataclass(frozen=True, kw_only=True)
class FlowProblem:
    venues: tuple[str, ...]
    before: dict[str, Decimal]
    targets: dict[str, Decimal]
    band: Decimal
    arcs: tuple[Arc, ...]
    margin_per_arc: Decimal = Decimal(0)  # kept from the band's edges per transfer a venue takes part in


@dataclass(frozen=True)
class _Row:
    coefficients: Vector
    low: float
    high: float


class _Layout:
    """Variable positions: x (arcs), y (arcs), d+ (venues), d- (venues), order (venues)."""

    def __init__(self, problem: FlowProblem) -> None:
        self.arcs = len(problem.arcs)
        self.venues = len(problem.venues)
        self.size = 2 * self.arcs + 3 * self.venues

    def x(self, i: int) -> int:
        return i

    def y(self, i: int) -> int:
        return self.arcs + i

    def d_plus(self, j: int) -> int:
        return 2 * self.arcs + j

    def d_minus(self, j: int) -> int:
        return 2 * self.arcs + self.venues + j

    def order(self, j: int) -> int:
        return 2 * self.arcs + 2 * self.venues + j

    def zeros(self) -> Vector:
        return np.zeros(self.size)


def _linking_rows(problem: FlowProblem, lay: _Layout) -> list[_Row]:
    rows = []
    for i, arc in enumerate(problem.arcs):
        upper, lower = lay.zeros(), lay.zeros()
        upper[lay.x(i)], upper[lay.y(i)] = 1.0, -float(arc.max_amount)
        lower[lay.x(i)], lower[lay.y(i)] = 1.0, -float(arc.min_amount)
        rows += [_Row(upper, -np.inf, 0.0), _Row(lower, 0.0, np.inf)]
    return rows


def _acyclic_rows(problem: FlowProblem, lay: _Layout) -> list[_Row]:
    """A used arc u -> v forces order(v) >= order(u) + 1, so used arcs form no directed cycle."""
    index = {venue: j for j, venue in enumerate(problem.venues)}
    n = float(lay.venues)
    rows = []
    for i, arc in enumerate(problem.arcs):
        row = lay.zeros()
        row[lay.order(index[arc.target])], row[lay.order(index[arc.source])], row[lay.y(i)] = 1.0, -1.0, -n
        rows.append(_Row(row, 1.0 - n, np.inf))
    return rows


def _venue_rows(problem: FlowProblem, lay: _Layout) -> list[_Row]:
    rows = []
    band, margin = float(problem.band), float(problem.margin_per_arc)
    for j, venue in enumerate(problem.venues):
        sent, outflow, deviation, touched = lay.zeros(), lay.zeros(), lay.zeros(), lay.zeros()
        for i, arc in enumerate(problem.arcs):
            if venue not in (arc.source, arc.target):
                continue
            touched[lay.y(i)] = margin
            r_x, r_y = 1 - float(arc.pct_fee), -float(arc.fixed_fee)  # what arrives: r = r_x * x + r_y * y
            if arc.source == venue:
                sent[lay.x(i)] = outflow[lay.x(i)] = 1.0
                deviation[lay.x(i)], deviation[lay.y(i)] = r_x, r_y
            else:
                outflow[lay.x(i)], outflow[lay.y(i)] = -r_x, -r_y
                deviation[lay.x(i)], deviation[lay.y(i)] = -r_x, -r_y
        deviation[lay.d_plus(j)], deviation[lay.d_minus(j)] = 1.0, -1.0
        # outflow = before - after: it must bring the venue inside target +- band, keeping a
        # rounding margin from the band's edges per transfer the venue takes part in.
        excess = float(problem.before[venue] - problem.targets[venue])
        rows += [
            _Row(sent, -np.inf, float(problem.before[venue])),
            _Row(outflow - touched, excess - band, np.inf),
            _Row(outflow + touched, -np.inf, excess + band),
            _Row(deviation, excess, excess),
        ]
    return rows


def _objectives(problem: FlowProblem, lay: _Layout) -> list[tuple[Vector, float]]:
    """(coefficients, slack allowed when this optimum becomes a constraint), in priority order."""
    fees = [arc.fixed_fee for arc in problem.arcs if arc.fixed_fee > 0]
    cost_scale = 1 / float(min(fees)) if fees else 1.0  # cost in units of the smallest fee
    scale = float(sum(problem.before.values()))
    cost, count, deviation, flight, rank = (lay.zeros() for _ in range(5))
    for i, arc in enumerate(problem.arcs):
        cost[lay.x(i)], cost[lay.y(i)] = float(arc.pct_fee) * cost_scale, float(arc.fixed_fee) * cost_scale
        count[lay.y(i)] = 1.0
        flight[lay.x(i)] = 1.0
        rank[lay.y(i)] = float(i + 1)
    for j in range(lay.venues):
        deviation[lay.d_plus(j)] = deviation[lay.d_minus(j)] = 1.0
    amount_slack = 1e-12 * scale
    return [(cost, 1e-9), (count, 0.5), (deviation, amount_slack), (flight, amount_slack), (rank, 0.5)]


def _solve(objective: Vector, rows: Sequence[_Row], bounds: Bounds, integrality: Vector) -> Vector | None:
    if not integrality.any():
        return _solve_lp(objective, rows, bounds)
    matrix = np.vstack([row.coefficients for row in rows])
    from scipy.optimize import LinearConstraint, milp  # imported when solving, not at DAG parse time

    constraint = LinearConstraint(matrix, [row.low for row in rows], [row.high for row in rows])
    result = milp(
        objective,
        integrality=integrality,
        bounds=bounds,
        constraints=[constraint],
        options={"mip_rel_gap": 0.0, "presolve": True},
    )
    return result.x if result.status == 0 and result.x is not None else None


def _solve_lp(objective: Vector, rows: Sequence[_Row], bounds: Bounds) -> Vector | None:
    """The amounts once the arcs are fixed: an LP, solved with tight feasibility tolerances."""
    upper, limits, equal, targets = [], [], [], []
    for row in rows:
        if row.low == row.high:
            equal.append(row.coefficients)
            targets.append(row.low)
            continue
        if np.isfinite(row.high):
            upper.append(row.coefficients)
            limits.append(row.high)
        if np.isfinite(row.low):
            upper.append(-row.coefficients)
            limits.append(-row.low)
    from scipy.optimize import linprog

    result = linprog(
        objective,
        A_ub=np.vstack(upper) if upper else None,
        b_ub=limits or None,
        A_eq=np.vstack(equal) if equal else None,
        b_eq=targets or None,
        bounds=list(zip(bounds.lb, bounds.ub, strict=True)),
        method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    return result.x if result.status == 0 and result.x is not None else None


def _lexicographic(
    objectives: Sequence[tuple[Vector, float]], rows: list[_Row], bounds: Bounds, integrality: Vector
) -> Vector | None:
    """Optimise each objective in turn, keeping the earlier ones at their optimum."""
    best: Vector | None = None
    for coefficients, slack in objectives:
        solution = _solve(coefficients, rows, bounds, integrality)
        if solution is None:
            return best  # only the first phase can be infeasible; later ones keep the last optimum
        best = solution
        value = float(coefficients @ solution)
        rows = [*rows, _Row(coefficients, -np.inf, value + slack + _FEAS_SLACK * abs(value))]
    return best


def solve_flow(problem: FlowProblem) -> dict[int, float] | None:
    """Amount sent per used arc (index into ``problem.arcs``), or None when infeasible."""
    lay = _Layout(problem)
    if lay.arcs == 0:
        inside = all(abs(problem.before[v] - problem.targets[v]) <= problem.band for v in problem.venues)
        return {} if inside else None
    rows = _linking_rows(problem, lay) + _venue_rows(problem, lay) + _acyclic_rows(problem, lay)
    objectives = _objectives(problem, lay)
    upper = np.full(lay.size, np.inf)
    upper[: lay.arcs] = [float(a.max_amount) for a in problem.arcs]
    upper[lay.arcs : 2 * lay.arcs] = 1.0
    upper[lay.order(0) :] = float(lay.venues - 1)
    integrality = np.zeros(lay.size)
    integrality[lay.arcs : 2 * lay.arcs] = 1
    from scipy.optimize import Bounds

    chosen = _lexicographic(objectives, rows, Bounds(np.zeros(lay.size), upper), integrality)
    if chosen is None:
        return None
    used = np.round(chosen[lay.arcs : 2 * lay.arcs])
    lower = np.zeros(lay.size)
    lower[lay.arcs : 2 * lay.arcs] = used
    upper[lay.arcs : 2 * lay.arcs] = used
    polish = [objectives[0], objectives[2], objectives[3]]
    amounts = _lexicographic(polish, rows, Bounds(lower, upper), np.zeros(lay.size))
    final = amounts if amounts is not None else chosen
    return {i: float(final[lay.x(i)]) for i in range(lay.arcs) if used[i] > 0.5}
