"""A search-space file's `priors:` (tunelab.spec.spaces, tunelab.engine.priors, tunelab.store.study): configs checked
against the trainable when the file is read, queued in the study right after the baseline and marked `prior`, skipped
with one line where they fall outside this search's space, off with --no-priors, not queued again on resume, unused by a
grid. The study is a real Optuna journal in tmp_path, asked for trials by the searcher as Ray asks it; no search
runs."""

from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

from tunelab.cli import parser
from tunelab.engine import calibrate, priors, search as engine
from tunelab.errors import UserError
from tunelab.spec import spaces
from tunelab.spec.planner import MARGIN, make_plan
from tunelab.store import runs, study

FROM = "fashion_cnn search, seed 1, 3 % subset at offset 0.5: bench/record_curves.py --offset 0.5"
BASELINE = {"width": 32, "lr": 0.001}
PRIORS = [
    {"width": 64, "lr": 0.005, "from": FROM},
    {"width": 16},  # lr: the default, 0.003
    {"lr": 0.002, "dropout": 0.25},  # dropout: fixed at this value in the file
]


def _space(**changes) -> dict:
    space = {"trainable": "cnn_classifier", "dataset": "fashion_mnist", "method": "bayes", "run_cap": 10,
             "max_epochs": 2, "metric": {"name": "val_acc", "goal": "maximize"}, "seed": 0,
             "parameters": {"width": {"values": [16, 32, 64]}, "dropout": {"value": 0.25},
                            "lr": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.01}},
             "baseline": BASELINE, "priors": PRIORS}  # fmt: skip
    return space | changes


def _load(tmp_path: Path, **changes) -> spaces.Spec:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(_space(**changes), sort_keys=False))
    return spaces.load_spec(str(path))


def _run(tmp_path: Path, options: runs.Options | None = None, **changes) -> runs.StoredRun:
    run = runs.StoredRun(tmp_path / "r", _load(tmp_path, **changes), options or runs.Options(), tmp_path)
    run.save()
    return run


def _searched(run: runs.StoredRun, asked: int, capsys) -> tuple[list, str]:
    """The study's trials after a new searcher (as `tunelab search` makes it) is asked for ``asked`` trials, and what
    it printed."""
    searcher = engine._searcher(run, "disabled")
    for i in range(asked):
        assert searcher.suggest(f"t{i}") is not None
    return study.open_study(run).trials, capsys.readouterr().out


# parsing


def test_priors_are_read_with_where_they_came_from_and_kept_with_the_run(tmp_path):
    spec = _load(tmp_path)
    assert spec.priors == PRIORS and spec.priors[0]["from"] == FROM
    run = runs.StoredRun(tmp_path / "r", spec, runs.Options(), tmp_path)
    run.save()
    assert runs.open_run("r", tmp_path).spec.priors == PRIORS
    assert _load(tmp_path, priors=[]).priors == [] and spaces.parse(
        {k: v for k, v in _space().items() if k != "priors"}, Path("x.yaml")).priors == []  # fmt: skip


def test_a_prior_outside_the_files_own_space_is_no_error_when_it_is_read(tmp_path):
    spec = _load(tmp_path, priors=[{"width": 128, "lr": 0.5, "optimizer": "sgd"}])  # searched/fixed otherwise
    assert spec.priors == [{"width": 128, "lr": 0.5, "optimizer": "sgd"}]


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            {"width": 64},
            "priors: must be a list of configs, each a mapping of hyperparameters to values with an optional from:",
        ),
        (
            [{"width": 64}, "wide"],
            "priors[1]: must be a mapping of hyperparameters to values (at least one), not 'wide'",
        ),
        ([{"from": FROM}], "priors[0]: must be a mapping of hyperparameters to values (at least one)"),
        ([{"width": 64}, {}, {"lr": 0.001}], "priors[1]: must be a mapping"),
        (
            [{"width": 64}, {"colour": 3}],
            "priors[1].colour: cnn_classifier has no hyperparameter 'colour'; it has: depth, width,",
        ),
        ([{"width": "wide"}], "priors[0].width: 'wide' has the wrong type; expected an integer (the default is 32)"),
        ([{"width": 64.0}], "priors[0].width: 64.0 has the wrong type; expected an integer"),
        ([{"batch_norm": 1}], "priors[0].batch_norm: 1 has the wrong type; expected a boolean (true/false)"),
        ([{"lr": -0.01}], "priors[0].lr: -0.01 is outside the allowed range lr > 0"),
        (
            [{"width": 64}, {"width": 16}, {"dropout": 1.5}],
            "priors[2].dropout: 1.5 is outside the allowed range 0 <= dropout < 1",
        ),
        ([{"lr": float("nan")}], "priors[0].lr: nan: YAML's .nan and .inf are no values a trial can take"),
        ([{"optimizer": "adamx"}], "priors[0].optimizer: 'adamx' not allowed; allowed: sgd, adam, adamw"),
        ([{"width": 64, "from": 1}], "priors[0].from: must be a string saying where the config came from"),
        ([{"epochs": 3}], "priors[0].epochs: not a prior's to set: every trial trains the search's max_epochs"),
    ],
)
def test_a_bad_prior_names_the_file_the_key_and_what_is_allowed(tmp_path, bad, message):
    with pytest.raises(UserError) as e:
        _load(tmp_path, priors=bad)
    assert str(e.value).startswith(f"{tmp_path / 'space.yaml'}: ") and message in str(e.value)


def test_every_mistake_of_the_priors_is_reported_at_once(tmp_path):
    with pytest.raises(UserError) as e:
        _load(tmp_path, priors=[{"width": "wide", "colour": 1}, {"lr": 0}])
    assert [line.split(": ")[1] for line in str(e.value).splitlines()] == [
        "priors[0].width", "priors[0].colour", "priors[1].lr"]  # fmt: skip


SPACES = sorted(spaces.SPACES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_built_in_prior_is_inside_its_experiments_space(path, tmp_path, capsys):
    spec = spaces.load_spec(str(path))
    points = priors.points(runs.StoredRun(tmp_path / "r", spec, runs.Options(), tmp_path))
    assert "skipped" not in capsys.readouterr().out
    assert len(points) == (len(spec.priors) if spec.method != "grid" else 0)


# the study


def test_the_study_evaluates_the_baseline_then_the_priors_in_order_marked(tmp_path, capsys):
    run = _run(tmp_path)
    trials, out = _searched(run, 5, capsys)
    assert out == (f"Priors: evaluating 3 configs listed in the file first ({tmp_path / 'space.yaml'}: priors); "
                   "--no-priors turns them off\n")  # fmt: skip
    assert [t.params for t in trials[:4]] == [
        BASELINE, {"width": 64, "lr": 0.005}, {"width": 16, "lr": 0.003}, {"width": 32, "lr": 0.002}]  # fmt: skip
    assert [t.user_attrs.get("prior") for t in trials] == [None, 0, 1, 2, None]
    assert all(t.state == TrialState.RUNNING and t.user_attrs["ray_trial_id"] == f"t{i}" for i, t in enumerate(trials))
    # the searcher hands Ray each prior completed by the space's constants and defaults, as the baseline
    assert run.spec.config(trials[1].params)["dropout"] == 0.25


def test_a_built_in_experiments_priors_say_where_they_come_from(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(priors, "SPACES_DIR", tmp_path)  # space.yaml as if it were search_spaces/space.yaml
    priors.points(_run(tmp_path))
    assert capsys.readouterr().out == ("Priors: evaluating 3 configs that did well in tunelab's own searches first "
                                       "(search_spaces/space.yaml: priors); --no-priors turns them off\n")  # fmt: skip


def test_a_random_search_evaluates_the_priors_first_too(tmp_path, capsys):
    run = _run(tmp_path, method="random")
    trials, out = _searched(run, 4, capsys)
    assert "Priors: evaluating 3 configs" in out
    assert [t.user_attrs.get("prior") for t in trials] == [None, 0, 1, 2] and trials[0].params == BASELINE


def test_without_a_baseline_the_priors_come_first(tmp_path, capsys):
    run = _run(tmp_path, baseline=None)
    trials, _ = _searched(run, 3, capsys)
    assert [t.user_attrs.get("prior") for t in trials] == [0, 1, 2]


@pytest.mark.parametrize(
    "parameters, skipped",
    [
        ({"width": {"values": [16, 32]}}, "priors[0] (width 64 not among [16, 32])"),
        (
            {"lr": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.0025}},
            "priors[0] (lr 0.005 not in [0.0001, 0.0025]); priors[1] (it leaves lr at the default 0.003, not in "
            "[0.0001, 0.0025])",
        ),
        ({"dropout": {"value": 0.5}}, "priors[2] (dropout 0.25, fixed at 0.5 here)"),
        (
            {"dropout": {"values": [0.25, 0.5]}, "width": {"value": 32}},
            "priors[0] (width 64, fixed at 32 here); priors[1] (width 16, fixed at 32 here)",
        ),
    ],
)
def test_priors_outside_a_narrowed_space_are_skipped_with_one_line(tmp_path, capsys, parameters, skipped):
    narrowed = _space()["parameters"] | parameters
    baseline = {k: v for k, v in BASELINE.items() if "value" not in narrowed[k]}  # a fixed one is no baseline's
    run = _run(tmp_path, parameters=narrowed, baseline=baseline)
    kept = [i for i in range(3) if f"priors[{i}] (" not in skipped]
    trials, out = _searched(run, 1 + len(kept), capsys)
    lines = out.splitlines()
    assert lines[0] == f"Priors: skipped {3 - len(kept)} of 3 outside this search's space: {skipped}"
    assert lines[1].startswith(f"Priors: evaluating {len(kept)} config") and len(lines) == 2
    assert [t.user_attrs.get("prior") for t in trials[1:]] == kept


def test_a_planned_searchs_ceiling_skips_the_priors_it_would_not_try(tmp_path, capsys):
    run = _run(tmp_path)
    admit = lambda point: 2.0 if point["width"] == 64 else 1.0  # noqa: E731  # FLOPs over the ceiling's
    points = priors.points(run, admit)
    assert [i for i, _ in points] == [1, 2]
    assert capsys.readouterr().out.splitlines()[0] == ("Priors: skipped 1 of 3 that this search does not try: "
                                                       "priors[0] (about 2.00x the cost of the "
                                                       "costliest config whose retrain fits its budget)")  # fmt: skip


def test_a_plan_counts_the_configs_its_search_queues_first(tmp_path, monkeypatch, capsys):
    """They train all their epochs (tunelab.spec.planner): the plan counts the baseline and the priors that ``points``
    will queue, those inside the space and under the plan's ceiling; no priors with --no-priors, nothing in a grid."""
    told = []  # the configs calibration was given as queued, by their lr

    def calibrated(spec, data_dir, budget_s, queued=()):  # FLOPs per example: the config's lr x 1000
        told.append([c["lr"] for c in queued])
        return calibrate.Calibration(8.0, 60.0, 26.0, 1.5, 5.0, flops=(1.0, 2.0, 4.0),
                                     queued=tuple(c["lr"] * 1000 for c in queued))  # fmt: skip

    monkeypatch.setattr(calibrate, "calibrate", calibrated)
    options = runs.Options(time_budget=600)
    narrowed = _space()["parameters"] | {"width": {"values": [16, 32]}}  # priors[0] (width 64) is outside
    spec = options.apply(_load(tmp_path, parameters=narrowed))
    plan = calibrate.plan_for(spec, tmp_path, {})
    assert told[-1] == [0.001, 0.003, 0.002] and (plan.queued, plan.baseline) == (3, True)
    # a retrain budget of 2 epochs at 34 s after the planner's margin: a ceiling at 2.5 FLOPs, over which priors[1]
    # (3.0) is not queued
    capped = calibrate.plan_for(spec, tmp_path, {}, retrain_budget_s=68 / (1 - MARGIN))
    assert capped.max_flops == pytest.approx(2.5) and capped.queued == 2
    admit = lambda point: spec.config(point)["lr"] * 1000 / capped.max_flops  # noqa: E731  # as Ceiling counts
    queued = priors.points(calibrate.apply(runs.StoredRun(tmp_path / "r", spec, options, tmp_path), capped), admit)
    assert [i for i, _ in queued] == [2] and 1 + len(queued) == capped.queued
    assert calibrate.plan_for(spec, tmp_path, {}, no_priors=True).queued == 1 and told[-1] == [0.001]
    grid = _load(tmp_path, method="grid", parameters={"width": {"values": [16, 32, 64]}, "lr": {"values": [0.001]}})
    assert calibrate.plan_for(options.apply(grid), tmp_path, {}).queued == 0 and told[-1] == []


def test_priors_beyond_the_searchs_trials_are_left_out(tmp_path, capsys):
    run = _run(tmp_path, run_cap=2)  # the baseline and one prior
    trials, out = _searched(run, 2, capsys)
    assert "Priors: evaluating 1 config listed in the file first (" in out
    assert ", 2 more beyond its 2 trials are left out); --no-priors turns them off" in out
    assert [t.user_attrs.get("prior") for t in trials] == [None, 0]  # nothing else queued


def test_priors_that_the_plans_budget_cannot_train_at_full_length_are_left_out(tmp_path, capsys):
    run = _run(tmp_path)  # the baseline and 3 priors

    def planned(budget_s: float) -> runs.StoredRun:
        plan = make_plan(budget_s, 8.0, 60.0, 1.5, 2, {}, 12, calibration_s=5, epoch_s_mean=26.0,
                         queued_epoch_s=[20.0, 30.0, 28.0, 35.0], baseline=True)  # fmt: skip
        return calibrate.apply(run, plan)

    assert [i for i, _ in priors.points(planned(150))] == [0, 1]  # the file's first ones
    assert ", 1 more that its time budget cannot train at full length are left out)" in capsys.readouterr().out
    assert priors.points(planned(100)) == []
    assert capsys.readouterr().out == "Priors: left out all 3, that its time budget cannot train at full length\n"
    assert len(priors.points(planned(200))) == 3 and "left out" not in capsys.readouterr().out


def test_no_priors_turns_them_off_and_is_kept_with_the_run(tmp_path, capsys):
    assert parser().parse_args(["search", "fashion_cnn", "--no-priors"]).no_priors
    assert not parser().parse_args(["search", "fashion_cnn"]).no_priors
    run = _run(tmp_path, runs.Options(no_priors=True))
    trials, out = _searched(run, 2, capsys)
    assert out == "" and [t.user_attrs.get("prior") for t in trials] == [None, None]
    assert trials[0].params == BASELINE
    assert runs.open_run("r", tmp_path).options.no_priors
    assert yaml.safe_load((run.dir / runs.INFO_FILE).read_text())["options"]["no_priors"] is True


def test_a_resumed_search_does_not_queue_the_priors_again(tmp_path, capsys):
    run = _run(tmp_path)
    _searched(run, 2, capsys)  # the baseline and priors[0] ran; priors[1] and [2] wait in the queue
    after = study.open_study(run).trials
    assert [t.state for t in after] == [TrialState.RUNNING] * 2 + [TrialState.WAITING] * 2
    resumed = engine._searcher(run, "disabled", resumed=True)
    assert capsys.readouterr().out == ""
    assert [(t.params, t.user_attrs.get("prior")) for t in study.open_study(run).trials] == [
        (t.params, t.user_attrs.get("prior")) for t in after]  # fmt: skip
    assert resumed.suggest("t2") is not None  # the resumed search takes the waiting prior next, once
    trials = study.open_study(run).trials
    assert len(trials) == 4 and trials[2].user_attrs == {"prior": 1, "ray_trial_id": "t2"}


def test_a_grid_search_ignores_the_priors_and_says_so(tmp_path, capsys):
    run = _run(tmp_path, method="grid", parameters={"width": {"values": [16, 32, 64]}, "lr": {"values": [0.001]}})
    trials, out = _searched(run, 2, capsys)
    assert out.startswith("Priors: not used by a grid search, which evaluates its own points (3 in ")
    assert out.count("\n") == 1 and all("prior" not in t.user_attrs for t in trials)


def test_queued_priors_that_never_ran_do_not_make_the_folder_a_used_run(tmp_path, capsys):
    run = _run(tmp_path)
    searcher = engine._searcher(run, "disabled")  # the baseline and 3 priors queued, none asked for
    assert study.started_trials(run.study_file) == (0, None)
    engine.check_unused(run)  # a new search may take the folder
    searcher.suggest("t0")
    assert study.started_trials(run.study_file)[0] == 1
