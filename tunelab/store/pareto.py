"""Several objectives: Pareto layers and the trial to hand in (pure numpy; ``tunelab.engine.schedulers`` stops trials by
Pareto layer, ``tunelab.report.report`` plots the front).

A trial is one point in objective space, e.g. (validation pixel accuracy, parameter count, training
seconds). It is Pareto-optimal when no other trial is at least as good in every objective and better in
one. Of the Pareto-optimal trials, tunelab hands in the one nearest the ideal point: each objective is
scaled to [0, 1] over the front (0 = the front's best value, 1 = its worst), and the trial with the smallest
Euclidean distance to all zeros wins (ties: the better first objective): a balanced compromise rather than
the extreme of one objective. Targets (e.g. pixel accuracy at least 0.98) narrow the choice: when some
Pareto-optimal trials reach every target, the hand-in is the one of them nearest their ideal point.
"""

import math

import numpy as np

RULE = ("The trial to hand in is the Pareto-optimal one nearest the ideal point, each objective scaled to [0, 1] "
        "over the front (over the trials that reach the targets, if any do); early stopping keeps the trials in "
        "the top 1/eta Pareto layers at each rung (tunelab.store.pareto, tunelab.engine.schedulers).")  # fmt: skip


def _oriented(values: np.ndarray, modes: list[str]) -> np.ndarray:
    """Objective values turned so that larger is better in every column."""
    return np.asarray(values, dtype=float) * np.array([1.0 if m == "max" else -1.0 for m in modes])


def layers(values: np.ndarray, modes: list[str]) -> np.ndarray:
    """The Pareto layer of each row of ``values`` (n x objectives, finite): 0 for the non-dominated rows,
    1 for those non-dominated once layer 0 is removed, and so on."""
    v = _oriented(values, modes)
    layer = np.full(len(v), -1)
    remaining, k = np.arange(len(v)), 0
    while remaining.size:
        sub = v[remaining]
        dominated = np.array([np.any(np.all(sub >= p, axis=1) & np.any(sub > p, axis=1)) for p in sub])
        layer[remaining[~dominated]] = k
        remaining, k = remaining[dominated], k + 1
    return layer


def ideal_distance(values: np.ndarray, modes: list[str]) -> np.ndarray:
    """Each row's distance to the ideal point, every objective scaled to [0, 1] over the rows (0 = best)."""
    v = _oriented(values, modes)
    best, worst = v.max(axis=0), v.min(axis=0)
    span = np.where(best > worst, best - worst, 1.0)  # an objective equal on every row counts for nothing
    return np.sqrt((((best - v) / span) ** 2).sum(axis=1))


def on_target(values: np.ndarray, modes: list[str], targets: list[float | None]) -> np.ndarray:
    """Whether each row reaches every target (at least it for a maximised objective, at most for a minimised
    one); None: no target for that objective."""
    goal = np.array([np.nan if t is None else t for t in targets], dtype=float)
    v, t = _oriented(values, modes), _oriented(goal[None, :], modes)
    return np.where(np.isnan(t), True, v >= t).all(axis=1)  # type: ignore[return-value]  # numpy: maybe a scalar


def rank(values: np.ndarray, modes: list[str], targets: list[float | None] | None = None
         ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(order, on_front): rows in the order to present them, and which rows are on the front. First the
    front: those on target before the others, each group nearest its ideal point first (order[0] is the
    trial to hand in); then the rest by the first objective. Rows with a missing value are last and never
    on the front."""
    values = np.asarray(values, dtype=float).reshape(len(values), len(modes))
    finite = np.flatnonzero(np.isfinite(values).all(axis=1))
    on_front = np.zeros(len(values), dtype=bool)
    if finite.size:
        on_front[finite] = layers(values[finite], modes) == 0
    first = _oriented(values[:, :1], modes[:1])[:, 0]
    reached = on_target(values, modes, targets or [None] * len(modes))
    groups = []
    for group in (on_front & reached, on_front & ~reached):
        rows = np.flatnonzero(group)
        if rows.size:
            groups.append(rows[np.lexsort((-first[rows], ideal_distance(values[rows], modes)))])
    front = np.concatenate(groups) if groups else np.array([], dtype=int)
    rest = np.setdiff1d(np.arange(len(values)), front)
    incomplete = ~np.isfinite(values[rest]).all(axis=1)
    rest = rest[np.lexsort((np.where(np.isnan(first[rest]), np.inf, -first[rest]), incomplete))]
    return np.concatenate([front, rest]).astype(int), on_front


def goes_on(candidate: int, values: np.ndarray, modes: list[str], eta: int) -> bool:
    """Whether row ``candidate`` of the values recorded at a rung is in the top 1/eta by Pareto layer."""
    layer = layers(values, modes)
    threshold = np.sort(layer)[math.ceil(len(layer) / eta) - 1]
    return bool(layer[candidate] <= threshold)
