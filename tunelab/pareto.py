"""Several objectives: Pareto layers, the trial to hand in, early stopping by Pareto layer, the front's plot.

A trial is one point in objective space, e.g. (validation pixel accuracy, parameter count, training
seconds). It is Pareto-optimal when no other trial is at least as good in every objective and better in
one. Of the Pareto-optimal trials, tunelab hands in the one nearest the ideal point: each objective is
scaled to [0, 1] over the front (0 = the front's best value, 1 = its worst), and the trial with the smallest
Euclidean distance to all zeros wins (ties: the better first objective): a balanced compromise rather than
the extreme of one objective. Targets (e.g. pixel accuracy at least 0.98) narrow the choice: when some
Pareto-optimal trials reach every target, the hand-in is the one of them nearest their ideal point.

Early stopping (``ParetoASHA``) follows MO-ASHA (Schmucker et al. 2021, "Multi-objective Asynchronous
Successive Halving"): the rungs are ASHA's (after min_iter, min_iter * eta, ... epochs), but at a rung the
trials that reached it are ranked by Pareto layer (non-dominated sorting: layer 0 is the front, layer 1 the
front of the rest, ...) instead of by one metric. A trial goes on if its layer is no worse than that of the
ceil(n / eta)-th best of the n trials recorded at the rung (ties go on). So every trial on the rung's
front goes on, whichever objective it is good at: a small, fast model is not stopped for being less
accurate than a large one, as ranking by the first metric alone would do. With one objective the rule is
ASHA's top 1/eta.
"""

import math
from pathlib import Path

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from tunelab import spaces

RULE = ("The trial to hand in is the Pareto-optimal one nearest the ideal point, each objective scaled to [0, 1] "
        "over the front (over the trials that reach the targets, if any do); early stopping keeps the trials in "
        "the top 1/eta Pareto layers at each rung (tunelab.pareto).")  # fmt: skip


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


class ParetoASHA(FIFOScheduler):
    """ASHA's rungs with the Pareto-layer rule of this module's docstring, for a multi-objective search."""

    def __init__(self, metrics: list[str], modes: list[str], grace_period: int, eta: int, max_t: int):
        super().__init__()
        self.metrics, self.modes, self.eta = metrics, modes, eta
        rungs = spaces.asha_rungs(grace_period, eta, max_t)
        self.rungs: dict[int, dict[str, list[float]]] = {t: {} for t in rungs}  # epoch -> trial -> values

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        recorded = self.rungs.get(result.get("training_iteration", 0))  # 0: no rung
        values = [result.get(m) for m in self.metrics]
        if recorded is None or trial.trial_id in recorded or any(v is None or not math.isfinite(v) for v in values):
            return TrialScheduler.CONTINUE
        recorded[trial.trial_id] = [float(result[m]) for m in self.metrics]  # each there and finite
        ids = list(recorded)
        keep = goes_on(ids.index(trial.trial_id), np.array([recorded[i] for i in ids]), self.modes, self.eta)
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    def debug_string(self) -> str:
        return f"Pareto-layer ASHA on {', '.join(self.metrics)}: rungs at epochs {list(self.rungs)}"


def plot_front(board, metrics: list[str], modes: list[str], targets: dict[str, float], path: Path) -> Path:
    """The first objective against each other one: every trial, the Pareto-optimal ones marked, the targets
    dashed, the hand-in trial (the board's first row) named. ``board``: a leaderboard with a ``pareto`` column."""
    import matplotlib.pyplot as plt

    others = metrics[1:]
    fig, axes = plt.subplots(1, len(others), figsize=(5.2 * len(others), 4.2), squeeze=False)
    chosen = board.iloc[0]
    front, rest = board[board["pareto"]], board[~board["pareto"]]
    for ax, (other, mode) in zip(axes[0], zip(others, modes[1:])):
        ax.scatter(rest[other], rest[metrics[0]], s=28, facecolors="none", edgecolors="grey", label="dominated")
        ax.scatter(front[other], front[metrics[0]], s=36, color="tab:blue", label="Pareto-optimal (all objectives)")
        ax.scatter([chosen[other]], [chosen[metrics[0]]], s=260, marker="*", color="tab:red", zorder=3,
                   label=f"hand-in: trial {chosen['trial_id']}")  # fmt: skip
        ax.annotate(f"trial {chosen['trial_id']}", (chosen[other], chosen[metrics[0]]), textcoords="offset points",
                    xytext=(8, -14), color="tab:red")  # fmt: skip
        positive = (board[other] > 0).all() and board[other].max() > 20 * board[other].min()
        ax.set(xlabel=f"{other} ({mode}, better {'right' if mode == 'max' else 'left'})",
               ylabel=f"{metrics[0]} ({modes[0]})", xscale="log" if positive else "linear")  # fmt: skip
        if metrics[0] in targets:
            ax.axhline(targets[metrics[0]], color="tab:green", linestyle="--", label=f"target {metrics[0]}")
        if other in targets:
            ax.axvline(targets[other], color="tab:green", linestyle=":", label=f"target {other}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"Pareto front of {len(board)} trials: {len(front)} Pareto-optimal, hand-in trial {chosen['trial_id']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
