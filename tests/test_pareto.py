"""Multi-objective search: Pareto layers, the trial to hand in, and early stopping by Pareto layer."""

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.schedulers import TrialScheduler

from tunelab.engine import schedulers
from tunelab.errors import UserError
from tunelab.spec import spaces
from tunelab.store import pareto
from tunelab.trainable import protocol

# (accuracy: max, parameters: min)
POINTS = np.array([
    [0.98, 400_000],  # 0: front, the most accurate
    [0.97, 100_000],  # 1: front, the compromise
    [0.90, 20_000],   # 2: front, the smallest
    [0.96, 150_000],  # 3: dominated by 1 only: layer 1
    [0.95, 450_000],  # 4: dominated by 0, 1 and 3: layer 2
])  # fmt: skip
MODES = ["max", "min"]


def test_layers_sort_the_points_into_successive_fronts():
    assert pareto.layers(POINTS, MODES).tolist() == [0, 0, 0, 1, 2]


def test_layers_follow_the_goal_of_each_objective():
    assert pareto.layers(POINTS, ["min", "max"]).tolist() == [1, 2, 0, 1, 0]  # now 2 and 4 are best


def test_equal_points_share_a_layer():
    assert pareto.layers(np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0]]), MODES).tolist() == [0, 0, 1]


def test_rank_hands_in_the_front_point_nearest_the_ideal_point():
    order, on_front = pareto.rank(POINTS, MODES)
    assert on_front.tolist() == [True, True, True, False, False]
    # scaled over the front: 0 -> (0, 1), 1 -> (0.125, 0.21), 2 -> (1, 0): trial 1 is nearest (0, 0)
    assert order[0] == 1 and set(order[:3]) == {0, 1, 2}
    assert order.tolist()[3:] == [3, 4]  # the dominated ones after the front, by the first objective


def test_rank_puts_trials_with_missing_values_last_and_off_the_front():
    points = np.vstack([POINTS, [[np.nan, 1_000], [0.999, np.nan]]])
    order, on_front = pareto.rank(points, MODES)
    assert not on_front[5:].any() and set(order[-2:]) == {5, 6}
    assert on_front[:3].all()  # a trial with no accuracy does not dominate the small ones


def test_an_objective_equal_on_every_trial_does_not_change_the_choice():
    with_constant = np.hstack([POINTS, np.full((len(POINTS), 1), 7.0)])
    assert pareto.rank(with_constant, MODES + ["min"])[0][0] == pareto.rank(POINTS, MODES)[0][0]


def test_the_front_always_goes_on_and_the_worst_layers_stop():
    for i in (0, 1, 2):
        assert pareto.goes_on(i, POINTS, MODES, eta=3)
    # 5 recorded, eta 2: the top ceil(5/2) = 3 are the front (layer 0), so layers 1 and 2 stop
    assert not pareto.goes_on(3, POINTS, MODES, eta=2) and not pareto.goes_on(4, POINTS, MODES, eta=2)


def test_with_one_objective_the_rule_is_ashas_top_fraction():
    values = np.array([[0.5], [0.9], [0.7], [0.6]])
    assert [pareto.goes_on(i, values, ["max"], eta=2) for i in range(4)] == [False, True, True, False]


def result(epoch: int, acc: float, params: int) -> dict:
    return {"training_iteration": epoch, "val_acc": acc, "params": params}


def test_scheduler_keeps_a_small_model_that_ranking_by_accuracy_alone_would_stop():
    scheduler = schedulers.ParetoASHA(["val_acc", "params"], MODES, grace_period=1, eta=2, max_t=8)
    assert list(scheduler.rungs) == [1, 2, 4]
    decide = lambda tid, r: scheduler.on_trial_result(None, SimpleNamespace(trial_id=tid), r)  # noqa: E731
    assert decide("big", result(1, 0.95, 400_000)) == TrialScheduler.CONTINUE
    assert decide("small", result(1, 0.80, 10_000)) == TrialScheduler.CONTINUE  # worse, but smaller
    assert decide("worse", result(1, 0.79, 500_000)) == TrialScheduler.STOP  # dominated by both
    assert decide("big", result(3, 0.96, 400_000)) == TrialScheduler.CONTINUE  # between rungs: no decision
    assert decide("big", result(1, 0.10, 400_000)) == TrialScheduler.CONTINUE  # a rung decides once per trial
    assert decide("nan", {"training_iteration": 2, "val_acc": float("nan"), "params": 1}) == TrialScheduler.CONTINUE


def parse(**raw) -> spaces.Spec:
    base = {"trainable": "thought_vector_ae", "dataset": "mnist", "parameters": {"lr": {"min": 0.001, "max": 0.01}}}
    return spaces.parse(base | raw, Path("exp.yaml"))


def test_a_list_of_metrics_is_a_multi_objective_search():
    spec = parse(metric=[{"name": "val_pixel_acc", "goal": "maximize"}, {"name": "params", "goal": "minimize"},
                         {"name": "duration_s", "goal": "minimize"}])  # fmt: skip
    assert spec.metrics == ["val_pixel_acc", "params", "duration_s"] and spec.modes == ["max", "min", "min"]


@pytest.mark.parametrize("value", ["mnist_mlp_ae", [1]])
def test_compare_with_must_be_a_list_of_run_names(value):
    with pytest.raises(UserError, match="compare_with: must be a list of run names"):
        parse(compare_with=value)


def test_compare_with_needs_a_trainable_that_draws_comparisons(monkeypatch):
    assert parse(compare_with=["mnist_mlp_ae"]).compare_with == ["mnist_mlp_ae"]
    # every registered trainable has a comparison hook: a cnn_classifier without predict_proba has none
    classifier = dataclasses.replace(protocol.load_trainable("cnn_classifier"), predict_proba=None)
    monkeypatch.setattr(protocol, "load_trainable", lambda name: classifier)
    with pytest.raises(UserError, match="cnn_classifier draws no comparison figures"):
        parse(trainable="cnn_classifier", dataset="fashion_mnist", compare_with=["other"])


def test_targets_narrow_the_hand_in_to_the_trials_that_reach_them():
    order, on_front = pareto.rank(POINTS, MODES, [0.975, None])  # only trial 0 reaches 97.5 %
    assert order[0] == 0 and on_front.tolist() == [True, True, True, False, False]
    assert pareto.on_target(POINTS, MODES, [0.95, 200_000]).tolist() == [False, True, False, True, False]
    assert pareto.rank(POINTS, MODES, [0.999, None])[0][0] == pareto.rank(POINTS, MODES)[0][0]  # none reach it


def test_ties_in_distance_go_to_the_better_first_objective():
    points = np.array([[0.90, 100.0], [0.95, 200.0]])  # both at distance 1 from the ideal point
    assert pareto.rank(points, MODES)[0].tolist() == [1, 0]


def test_targets_must_name_metrics_of_the_search():
    metric = [{"name": "val_pixel_acc", "goal": "maximize"}, {"name": "params", "goal": "minimize"}]
    assert parse(metric=metric, targets={"val_pixel_acc": 0.98}).targets == {"val_pixel_acc": 0.98}
    with pytest.raises(UserError, match="targets.val_acc: not a metric of this search"):
        parse(metric=metric, targets={"val_acc": 0.98})
    with pytest.raises(UserError, match="targets.params: must be a number"):
        parse(metric=metric, targets={"params": "small"})


def test_leaderboard_keeps_trial_ids_that_look_like_numbers_as_text(tmp_path):
    from tunelab.store import runs

    run = runs.StoredRun(tmp_path, parse(), runs.Options(), tmp_path)
    csv = "trial_id,status,val_pixel_acc\n18201877,completed,0.9\n0a1b2c3d,completed,0.8\n"
    (tmp_path / "leaderboard.csv").write_text(csv)
    assert run.leaderboard()["trial_id"].tolist() == ["18201877", "0a1b2c3d"]
