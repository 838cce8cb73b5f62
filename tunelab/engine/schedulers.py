"""Ray Tune's early stopping for a search of several objectives: ``ParetoASHA``.

It follows MO-ASHA (Schmucker et al. 2021, "Multi-objective Asynchronous Successive Halving"): the rungs are
ASHA's (after min_iter, min_iter * eta, ... epochs), but at a rung the trials that reached it are ranked by Pareto
layer (``tunelab.store.pareto.layers``: layer 0 is the front, layer 1 the front of the rest, ...) instead of by one
metric. A trial goes on if its layer is no worse than that of the ceil(n / eta)-th best of the n trials recorded
at the rung (ties go on). So every trial on the rung's front goes on, whichever objective it is good at: a small,
fast model is not stopped for being less accurate than a large one, as ranking by the first metric alone would
do. With one objective the rule is ASHA's top 1/eta.
"""

import math

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from tunelab.spec import spaces
from tunelab.store import pareto


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
        keep = pareto.goes_on(ids.index(trial.trial_id), np.array([recorded[i] for i in ids]), self.modes, self.eta)
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    def debug_string(self) -> str:
        return f"Pareto-layer ASHA on {', '.join(self.metrics)}: rungs at epochs {list(self.rungs)}"
