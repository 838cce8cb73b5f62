"""The rules of a trial's record, each written once: which epoch is a trial's best (``is_new_best``), and what the
end of a trial that Ray ended is called (``end_status``). Pure: the trial (on its worker), the record
(tunelab.engine.record), the leaderboard and warm start apply them."""

from collections.abc import Mapping

from tunelab.spec.spaces import Spec


def is_new_best(spec: Spec, value: float | None, best: float | None) -> bool:
    """Whether an epoch whose value of the spec's metric is ``value`` becomes the trial's best, after the best value so
    far ``best`` (None before any). One objective: a strictly better value by the spec's mode (a tie keeps the earlier
    epoch; an epoch without the metric never counts). Several objectives: every epoch, so a trial's best is its last,
    the model as trained (no one epoch is best in every objective). A trial reports its best epoch with each epoch
    (``best_epoch``); its leaderboard row and its value(s) in the study are that epoch's metrics."""
    if spec.multi_objective:
        return True
    sign = 1 if spec.mode == "max" else -1
    return value is not None and (best is None or sign * value > sign * best)


def best_epoch_of(spec: Spec, values: Mapping[int, float | None]) -> int:
    """The best epoch (``is_new_best``) of a history of the spec's metric, by epoch in epoch order; 0 if none."""
    best: float | None = None
    found = 0
    for epoch, value in values.items():
        if is_new_best(spec, value, best):
            best, found = value, epoch
    return found


def end_status(spec: Spec, epochs: int) -> str:
    """The status of a trial that Ray ended after ``epochs``: completed, stopped early (ASHA stops a trial only at
    one of its rungs), or cut by the time budget (ended at another epoch, or before its first)."""
    if epochs >= spec.max_epochs:
        return "completed"
    return "cut by the time budget" if spec.time_budget_s and epochs not in spec.rungs else "stopped early"
