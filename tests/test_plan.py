"""The planner: a time budget -> trials, epochs, ASHA's rungs, data fraction and concurrency that fit it, the flags
the user gave kept; `tunelab plan` prints it, and a budgeted `tunelab search` saves it and keeps to it."""

import dataclasses
import math
import pickle
import re
import subprocess
import sys
import time
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
import torch
import yaml
from optuna.trial import TrialState

from tests.helpers import write_mnist_like
from tunelab.cli import main, parser
from tunelab.engine import calibrate, record, retrain, search as engine
from tunelab.spec import planner, spaces
from tunelab.spec.planner import MAX_TRIALS, MIN_TRIALS, TARGET_TRIALS, Plan, make_plan, promoted, rungs_of, search_s
from tunelab.store import runs, study

FASHION = {"epoch_s_cheap": 25.0, "epoch_s_costly": 650.0, "overhead_s": 1.5, "slots": 2, "space_max_epochs": 12}


def test_rungs_spread_over_the_epochs_from_the_first():
    assert rungs_of(12) == [1, 2, 4, 8] and rungs_of(16) == [1, 2, 4, 8] and rungs_of(17) == [1, 2, 4, 8, 16]
    assert rungs_of(3) == [1, 2] and rungs_of(2) == rungs_of(1) == []  # one epoch's value tells too little
    assert rungs_of(12, eta=3) == [1, 3, 9] and rungs_of(28, eta=3) == [1, 3, 9, 27]


def test_asha_lets_about_one_in_eta_go_on_and_the_first_few_more():
    assert promoted(1, 3) == 1.0 and promoted(2, 3) == 1.5
    assert 27 / 3 < promoted(27, 3) < 27 / 3 + 3


def test_a_budget_that_affords_the_whole_data_gets_it_and_many_trials():
    plan = make_plan(3600, 5.0, 15.0, 1.0, 2, {}, 12, calibration_s=20)
    assert (plan.subset, plan.max_epochs, plan.rungs, plan.eta, plan.concurrency) == (1.0, 12, [1, 2, 4, 8], 2, 2)
    assert TARGET_TRIALS <= plan.trials <= MAX_TRIALS and plan.expected_s <= plan.budget_s
    assert plan.retrain_epochs == 12 and plan.retrain_expected_s == 12 * 10.0  # the mean of the corners


def test_a_small_budget_shrinks_the_data_before_the_trials_then_the_epochs():
    twenty = make_plan(1200, **FASHION, calibration_s=15, epoch_s_mean=160)
    assert 0.1 <= twenty.subset < 1 and twenty.trials >= TARGET_TRIALS and twenty.max_epochs == 12
    five = make_plan(300, **FASHION, calibration_s=15, epoch_s_mean=250)
    assert five.subset == 0.1 and MIN_TRIALS <= five.trials < TARGET_TRIALS
    tiny = make_plan(150, **FASHION, calibration_s=15, epoch_s_mean=250)
    assert tiny.subset == 0.1 and MIN_TRIALS <= tiny.trials < TARGET_TRIALS and tiny.max_epochs < 12
    for plan in (twenty, five, tiny):
        assert plan.expected_s <= plan.budget_s


@pytest.mark.parametrize("budget", [180, 300, 900, 1200, 3600, 4 * 3600])
def test_the_expected_time_fits_the_budget(budget):
    plan = make_plan(budget, **FASHION, calibration_s=10)
    search = search_s(plan.trials, plan.max_epochs, plan.rungs, plan.eta, plan.epoch_s, 1.5, plan.concurrency)
    assert plan.expected_s == pytest.approx(10 + 15 + search) and plan.expected_s <= budget


def test_the_users_flags_are_kept_and_the_rest_planned_around_them():
    fixed = {"trials": 8, "max_epochs": 6, "concurrency": 1}
    plan = make_plan(1200, **FASHION | {"space_max_epochs": 6}, fixed=fixed, epoch_s_mean=160)
    assert (plan.trials, plan.max_epochs, plan.rungs, plan.concurrency) == (8, 6, [1, 2, 4], 1)
    assert 0.1 <= plan.subset < 1 and plan.fixed == fixed
    assert "Kept from the command line: --trials 8, --max-epochs 6, --concurrency 1." in plan.lines()[0]
    subset = make_plan(1200, **FASHION, fixed={"subset": 0.5}, epoch_s_mean=160)
    assert subset.subset == 0.5 and subset.max_epochs < 12  # fewer epochs, not less data
    over = make_plan(120, **FASHION, fixed={"trials": 30, "subset": 1.0})
    assert over.trials == 30 and over.expected_s > 120 and "over the budget, which stops the search" in over.lines()[0]
    with pytest.raises(ValueError, match="cannot fix eta"):
        make_plan(1200, **FASHION, fixed={"eta": 2})


def test_the_plan_in_two_lines():
    plan = Plan(trials=24, max_epochs=12, rungs=[1, 3, 9], eta=3, subset=0.3, concurrency=2, expected_s=1080,
                calibration_s=40, retrain_epochs=12, retrain_expected_s=240, budget_s=1200)  # fmt: skip
    assert plan.lines() == [
        "Plan: 24 trials (more if time is left), rungs at 1/3/9 of 12 epochs, on 30 % of the training set, 2 at a "
        "time; expected 18 min of 20 (calibration 40 s).",
        "Retrain of the best config: 12 epochs on the whole training set, about 4 min per seed.",
    ]
    assert plan.hard_stop_s(40) == 1160 and plan.hard_stop_s(5000) == 120  # a tenth of the budget at least


def test_a_search_starts_more_trials_than_planned_only_while_one_reaches_its_first_rung():
    plan = make_plan(1200, **FASHION, calibration_s=30, epoch_s_mean=160)
    first_rung = plan.first_rung_s()  # a trial's start and its first epoch at the plan's subset
    assert first_rung == pytest.approx(plan.trial_start_s + 1.0 + plan.rungs[0] * plan.epoch_s)
    assert plan.more_trials(plan.trials - 1, left_s=0)  # the planned ones, whatever the time left
    assert plan.more_trials(plan.trials, left_s=first_rung) and plan.more_trials(plan.trials + 30, left_s=600)
    assert not plan.more_trials(plan.trials, left_s=first_rung - 1)
    fixed = make_plan(1200, **FASHION, fixed={"trials": 8}, calibration_s=30, epoch_s_mean=160)
    assert not fixed.more_trials(8, left_s=1000) and "more if time is left" not in fixed.lines()[0]


def test_the_configs_queued_first_train_all_their_epochs_inside_the_budget():
    """The baseline and the priors train all max_epochs epochs (engine._QueuedFinish). Measured: a 15-minute plan
    that costed them as trials ASHA may stop (20 trials on 75 % of the data) spent its budget on them alone."""
    queued = [20.0, 30.0, 28.0, 35.0, 25.0]  # the baseline and 4 priors: an epoch on the whole training set each
    fashion = FASHION | {"epoch_s_cheap": 8.0, "epoch_s_costly": 60.0}

    def least_s(plan: Plan) -> float:
        """Calibration, Ray's start, the queued configs' whole length (side by side in waves of the plan's
        concurrency), then MIN_TRIALS sampled trials each to its first rung."""
        waves = [queued[i : i + plan.concurrency] for i in range(0, len(queued), plan.concurrency)]
        full = sum(1.5 + plan.max_epochs * (plan.subset * max(wave) + planner.EPOCH_REPORT_S) for wave in waves)
        first_rungs = math.ceil(MIN_TRIALS / plan.concurrency) * plan.first_rung_s()
        return plan.calibration_s + planner.START_S + full + first_rungs

    unaware = make_plan(900, **fashion, calibration_s=12, epoch_s_mean=26.0)
    assert unaware.subset == 0.75 and least_s(unaware) > 900
    plan = make_plan(900, **fashion, calibration_s=12, epoch_s_mean=26.0, queued_epoch_s=queued, baseline=True)
    assert plan.queued == 5 and plan.trials - plan.queued >= TARGET_TRIALS and plan.subset < unaware.subset
    assert least_s(plan) <= plan.expected_s <= 900
    assert plan.lines()[0].startswith(f"Plan: 5 queued (baseline, 4 priors) + {plan.trials - 5} trials (more if ")
    small = make_plan(300, **fashion, calibration_s=10, epoch_s_mean=26.0, queued_epoch_s=queued, baseline=True)
    assert small.trials - small.queued >= MIN_TRIALS and least_s(small) <= small.expected_s <= 300


def test_a_budget_too_small_for_every_prior_runs_fewer_at_full_length_before_it_shortens_the_trials():
    """Measured: a 100-s fashion_cnn plan that kept the baseline and 4 priors cut every trial to 3 epochs."""
    queued = [20.0, 30.0, 28.0, 35.0, 25.0]  # the baseline and 4 priors, in the file's order
    fashion = FASHION | {"epoch_s_cheap": 8.0, "epoch_s_costly": 60.0}
    every = make_plan(300, **fashion, calibration_s=10, epoch_s_mean=26.0, queued_epoch_s=queued, baseline=True)
    fewer = make_plan(150, **fashion, calibration_s=8, epoch_s_mean=26.0, queued_epoch_s=queued, baseline=True)
    least = make_plan(100, **fashion, calibration_s=5, epoch_s_mean=26.0, queued_epoch_s=queued, baseline=True)
    # the last priors go first; the baseline stays
    assert every.queued == 5 and 1 < fewer.queued < 5 and least.queued == 1
    assert every.max_epochs == fewer.max_epochs == least.max_epochs == 12 and least.trials - least.queued >= MIN_TRIALS
    assert fewer.lines()[0].startswith(f"Plan: {fewer.queued} queued (baseline, {fewer.queued - 1} prior")
    # epochs go only once the baseline and MIN_TRIALS trials do not fit at full length
    tiny = make_plan(60, **fashion, calibration_s=3, epoch_s_mean=26.0, queued_epoch_s=queued, baseline=True)
    assert tiny.queued == 1 and tiny.max_epochs < 12 and tiny.expected_s <= 60
    no_baseline = make_plan(100, **fashion, calibration_s=5, epoch_s_mean=26.0, queued_epoch_s=queued[1:])
    assert no_baseline.queued <= 1 and no_baseline.max_epochs == 12


def test_asha_stops_no_queued_config_and_judges_the_trials_after_them():
    assert search_s(0, 12, [1, 3, 9], 3, 10.0, 0.0, 1, [5.0, 7.0]) == 12 * (5.0 + 7.0)  # all 12 epochs each
    assert search_s(0, 12, [1, 3, 9], 3, 10.0, 0.0, 2, [5.0, 7.0]) == 12 * 7.0  # side by side: the slower one's
    # their records come first at each rung: fewer of the trials after them go on than of trials alone
    assert search_s(9, 12, [1, 3, 9], 3, 10.0, 0.0, 1, [0.0] * 3) < search_s(9, 12, [1, 3, 9], 3, 10.0, 0.0, 1)


def test_the_plan_says_what_it_queues_first_and_the_trials_count_them():
    plan = Plan(trials=25, max_epochs=12, rungs=[1, 3, 9], eta=3, subset=0.3, concurrency=2, expected_s=1080,
                calibration_s=40, retrain_epochs=12, retrain_expected_s=240, budget_s=1200, queued=5,
                baseline=True)  # fmt: skip
    assert plan.lines()[0].startswith("Plan: 5 queued (baseline, 4 priors) + 20 trials (more if time is left), rungs ")
    priors = Plan.restore(plan.saved() | {"queued": 1, "baseline": False})
    assert priors.lines()[0].startswith("Plan: 1 queued (1 prior) + 24 trials")
    assert plan.more_trials(24, left_s=0) and not plan.more_trials(25, left_s=0)  # the queued ones start first
    fixed = make_plan(1200, **FASHION, fixed={"trials": 3}, epoch_s_mean=160, queued_epoch_s=[160.0] * 5,
                      baseline=True)  # fmt: skip
    assert (fixed.trials, fixed.queued) == (3, 3)  # --trials keeps the first of them (tunelab.engine.priors)
    assert fixed.lines()[0].startswith("Plan: 3 queued (baseline, 2 priors) + 0 trials, rungs")


def test_a_plan_applied_is_what_the_search_runs_and_reopens_with_its_run(tmp_path):
    spec = runs.Options(time_budget=1200).apply(spaces.load_spec("fashion_cnn"))
    run = runs.StoredRun(tmp_path / "fashion_cnn", spec, runs.Options(time_budget=1200), tmp_path / "data")
    plan = make_plan(1200, **FASHION, calibration_s=30, epoch_s_mean=160)
    planned = calibrate.apply(run, plan)
    assert planned.spec.rungs == plan.rungs == [1, 2, 4, 8] and planned.spec.hyperband == {"min_iter": 1, "eta": 2}
    assert (planned.spec.run_cap, planned.spec.max_epochs, planned.spec.time_budget_s) == (plan.trials, 12, 1170)
    assert (planned.options.subset, planned.options.concurrency) == (plan.subset, 2)
    planned.save()
    reopened = runs.open_run("fashion_cnn", tmp_path)
    assert reopened.plan == plan and reopened.spec == planned.spec
    assert runs.open_run("fashion_cnn", tmp_path).options.subset == plan.subset


@pytest.mark.parametrize("text, seconds", [("20m", 1200), ("1.5h", 5400), ("90s", 90), ("45", 45), ("0.5", 0.5)])
def test_a_time_budget_takes_units(text, seconds):
    for command in ("search", "plan"):
        assert parser().parse_args([command, "fashion_cnn", "--time-budget", text]).time_budget == seconds


@pytest.mark.parametrize("text", ["20x", "m", "-5m", "1.5 hours"])
def test_a_time_budget_in_no_unit_says_which_are_allowed(capsys, text):
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["plan", "fashion_cnn", f"--time-budget={text}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert f"argument --time-budget: must be a duration: seconds (90) or a number with s, m or h (90s, 20m, 1.5h), " \
           f"not {text!r}" in err  # fmt: skip


def test_resume_takes_no_budget(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["resume", "fashion_cnn", "--time-budget", "20m"])


def test_plan_prints_the_plan_in_two_lines(env, fixture_root, capsys):
    argv = ["--data-dir", str(fixture_root), "plan", "fashion_cnn", "--time-budget", "2m", "--subset", "0.5"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Plan: ") and "on 50 % of the training set" in lines[0]
    assert "Kept from the command line: --subset 0.5." in lines[0] and lines[1].startswith("Retrain of the best")
    assert not (env / "results").exists()  # nothing runs, nothing is written


def test_plan_without_a_budget_asks_for_one(env, fixture_root, capsys):
    assert main(["--data-dir", str(fixture_root), "plan", "fashion_cnn"]) == 2
    err = capsys.readouterr().err
    assert "tunelab plan needs --time-budget (90s, 20m, 1.5h): the time to plan the search for" in err


@pytest.mark.slow
def test_a_budgeted_search_saves_its_plan_keeps_to_it_and_its_retrain_follows_it(env, fixture_root):
    cmd = [sys.executable, "-m", "tunelab.cli", "--data-dir", str(fixture_root), "search", "fashion_cnn",
           "--time-budget", "40s", "--trials", "4", "--max-epochs", "3", "--wandb", "disabled"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    saved = yaml.safe_load((env / "results" / "fashion_cnn" / runs.INFO_FILE).read_text())
    plan = Plan.restore(saved["plan"])
    assert done.stdout.splitlines()[:2] == plan.lines()  # printed before the first trial
    assert (plan.trials, plan.max_epochs, plan.rungs, plan.budget_s) == (4, 3, [1, 2], 40)
    spec = saved["spec"]
    assert (spec["run_cap"], spec["max_epochs"], spec["hyperband"]) == (4, 3, {"min_iter": 1, "eta": 2})
    assert 0 < spec["time_budget_s"] <= 40 and saved["options"]["subset"] == plan.subset
    board = pd.read_csv(env / "results" / "fashion_cnn" / "leaderboard.csv")
    assert len(board) <= 4 and set(board["epochs"]) <= {*plan.rungs, 3}  # stopped at a rung, or trained all 3 epochs
    # the retrain inside the plan: its epochs, on all of train+validation
    assert main(["--data-dir", str(fixture_root), "retrain", "fashion_cnn", "--seeds", "1", "--wandb", "disabled"]) == 0
    run = runs.open_run("fashion_cnn", env / "results")
    best = run.ranked(1).iloc[0]
    peaked = best["status"] == "completed" and best["best_epoch"] < 3  # then it retrains to its best epoch
    retrained = run.retrained()
    assert retrained["subset"] == 1.0 and plan.retrain_epochs == 3
    assert retrained["config"]["epochs"] == (best["best_epoch"] if peaked else 3)
    said = (
        rf"Retrain of the best config: {retrained['config']['epochs']} epochs on the whole training set, about "
        r"[\d.]+ (s|min) per seed at its trial's pace \(`tunelab retrain fashion_cnn`\)"
    )
    assert re.search(said, done.stdout)  # the search's last lines: the chosen config's retrain


@pytest.mark.parametrize("status, best_epoch, retrained_epochs", [
    ("completed", 2, 2),  # it peaked before its last epoch: later ones overfit it
    ("completed", 4, 4),  # still improving: the plan's epochs
    ("stopped early", 1, 4),  # stopped at a rung, not by overfitting
])  # fmt: skip
def test_retrain_takes_a_completed_trials_best_epoch_where_it_peaked_before_its_last(env, capsys, status, best_epoch,
                                                                                   retrained_epochs):  # fmt: skip
    data = write_mnist_like(env / "data" / "fashion-mnist", n_train=200, n_test=50)
    plan = Plan(trials=4, max_epochs=4, rungs=[1, 2], eta=2, subset=0.5, concurrency=1, expected_s=60,
                calibration_s=5, retrain_epochs=4, retrain_expected_s=20, budget_s=60)  # fmt: skip
    run = runs.StoredRun(env / "results" / "fashion_cnn", spaces.load_spec("fashion_cnn"), runs.Options(),
                         data.parent, plan)  # fmt: skip
    run.save()
    optuna.create_study(study_name=run.name, storage=study._storage(run.study_file)).ask()
    epochs = 4 if status == "completed" else 2
    run.leaderboard_file.write_text("trial_id,status,val_acc,epochs,best_epoch,duration_s,config/depth,config/width\n"
                                    f"t1,{status},0.5,{epochs},{best_epoch},8.0,1,8\n")  # fmt: skip
    # what the search's end says of it: its trial's seconds per epoch, on twice the data (the plan's subset 0.5)
    assert retrain.expected(run) == (retrained_epochs, retrained_epochs * 8.0 / epochs * 2)
    assert main(["retrain", "fashion_cnn", "--seeds", "1", "--wandb", "disabled"]) == 0
    assert run.retrained()["config"]["epochs"] == retrained_epochs
    said = "trial t1 retrains for 2 epochs, its best on validation of the 4 it trained (--epochs sets them)"
    assert (said in capsys.readouterr().out) == (retrained_epochs == 2)
    assert main(["retrain", "fashion_cnn", "--seeds", "1", "--epochs", "3", "--wandb", "disabled"]) == 0
    assert run.retrained()["config"]["epochs"] == 3


def test_a_retrain_budget_caps_the_configs_on_the_line_through_the_corners():
    found = calibrate.Calibration(20.0, 620.0, 0.0, 1.0, 9.0, flops=(10.0, 40.0, 70.0, 110.0))
    assert found.epoch_s_at(60.0) == pytest.approx(320.0) and found.flops_at(320.0) == pytest.approx(60.0)
    ceiling, mean = found.capped(320.0)  # the two cheapest drawn configs are under it
    assert ceiling == pytest.approx(60.0) and mean == pytest.approx((20.0 + 200.0) / 2)
    assert found.capped(620.0) is None  # every config fits: no ceiling
    assert found.capped(5.0) == (10.0, 20.0)  # below the cheapest: the cheapest config still runs
    assert dataclasses.replace(found, epoch_s_costly=15.0).capped(17.0) is None  # FLOPs do not say what costs


def test_the_plan_says_how_long_the_retrain_may_take_at_most():
    plan = make_plan(300, **FASHION, epoch_s_mean=24.0, retrain_budget_s=300, max_epoch_s=25.0)
    assert (plan.retrain_budget_s, plan.max_epoch_s, plan.retrain_expected_s) == (300, 25.0, 12 * 24.0)
    capped = Plan.restore(plan.saved() | {"max_flops": 3e7})
    assert capped.lines()[1] == ("Retrain of the best config: 12 epochs on the whole training set, about 4.8 min per "
                                 "seed, at most 5 min: the search skips configs that would take longer.")  # fmt: skip
    over = Plan.restore(capped.saved() | {"max_epoch_s": 50.0})
    assert "even the space's cheapest config takes about 10 min, over the retrain budget of 5 min" in over.lines()[1]
    assert plan.lines()[1].endswith("per seed.")  # no ceiling: every config fits
    blind = Plan.restore(plan.saved() | {"max_epoch_s": None, "retrain_expected_s": 600.0})
    assert blind.lines()[1].endswith(
        "over the retrain budget of 5 min, and this space's configs do not cost "
        "in proportion to their FLOPs, so the search cannot skip the costly ones."
    )


def test_a_retrain_with_more_threads_than_a_trial_is_planned_faster():
    one = make_plan(300, **FASHION, epoch_s_mean=24.0, retrain_budget_s=300, max_epoch_s=25.0)
    two = make_plan(300, **FASHION, epoch_s_mean=24.0, retrain_budget_s=300, max_epoch_s=50.0, retrain_speedup=2.0)
    assert two.retrain_expected_s == pytest.approx(one.retrain_expected_s / 2)
    # a trial's epoch of 50 s is the retrain's 25 s: its 12 epochs fit the 5 minutes
    assert Plan.restore(two.saved() | {"max_flops": 3e7}).lines()[1].endswith(
        "at most 5 min: the search skips configs that would take longer.")  # fmt: skip


def test_the_ceiling_measures_a_config_against_the_costliest_that_fits(fixture_root):
    spec = spaces.load_spec("fashion_cnn")
    cheap = {"depth": 2, "width": 32, "convs_per_block": 1, "kernel_size": 3}
    costly = {"depth": 3, "width": 64, "convs_per_block": 2, "kernel_size": 5}
    trainable, data = calibrate.Ceiling(spec, fixture_root, 0.0)._load()
    ceiling = calibrate.Ceiling(spec, fixture_root, calibrate._cost(trainable, spec, spec.config(cheap), data, "flops"))
    assert ceiling(cheap) == 1.0 and ceiling(costly) > 10  # 2 more convolutions of 5x5, twice as wide
    assert pickle.loads(pickle.dumps(ceiling))._loaded is None  # Ray saves the searcher: no data, no model in it


def test_a_searcher_runs_only_configs_its_ceiling_admits_and_tells_the_study_the_rest(tmp_path):
    spec = spaces.load_spec("fashion_cnn")
    run = runs.StoredRun(tmp_path / "r", spec, runs.Options(), tmp_path)
    run.save()
    admit = lambda config: 2.5 if config["width"] == 64 else 1.0  # noqa: E731  (FLOPs over the ceiling's)
    study.create(run)
    searcher = record.StudySearch(run, optuna.samplers.RandomSampler(seed=0), wandb=False, admit=admit)
    configs = [searcher.suggest(f"t{i}") for i in range(8)]
    assert configs[0]["width"] == spec.baseline["width"] and all(c["width"] != 64 for c in configs)
    trials = study.open_study(run).trials
    refused = [t for t in trials if "ray_trial_id" not in t.user_attrs]
    note = "not tried: about 2.50x the cost of the costliest config whose retrain fits its budget"
    assert refused and all(t.params["width"] == 64 and t.state == TrialState.FAIL and t.value is None
                           and t.user_attrs == {"status": "not tried", "note": note} for t in refused)  # fmt: skip
    assert len(trials) - len(refused) == 8


def test_calibration_times_an_epoch_without_the_processs_one_off_costs(monkeypatch):
    """The process's first batch pays imports and lazy setup (seconds, for a text model's first step): timed as an
    epoch's share, it made a cheap config look 20 times costlier than its trials were."""
    per_example, first = 0.001, [True]

    def train_epoch(parts, data, config):
        if first:  # the process's first batch
            first.pop()
            time.sleep(0.5)
        time.sleep(per_example * len(data.splits["train"][1]))

    def evaluate(parts, data, split):
        time.sleep(per_example * len(data.splits[split][1]))

    trainable = SimpleNamespace(train_epoch=train_epoch, evaluate=evaluate)
    monkeypatch.setattr(calibrate.training, "build", lambda *args: None)
    splits = {k: (torch.zeros(n, 1), torch.zeros(n)) for k, n in (("train", 1000), ("val", 200))}
    data = calibrate.datasets.Data("toy", splits, ["a"], torch.device("cpu"))
    epoch_s, _ = calibrate._epoch_s(trainable, {"batch_size": 50}, data, aim=0.25)
    assert epoch_s == pytest.approx(1.2, rel=0.25)  # 1,200 examples at 1 ms, not the first batch's half second


def test_asha_lets_the_configs_queued_first_finish():
    """The baseline and the priors train all their epochs; their values still set the bar for the others."""
    asha = engine._scheduler(spaces.load_spec("fashion_cnn"), {"prior"})  # rungs at epochs 2, 4, 8 of 12
    asha.set_search_properties("val_acc", "max")
    first, prior, other = (SimpleNamespace(trial_id=t) for t in ("first", "prior", "other"))
    for trial in (first, prior, other):
        asha.on_trial_add(None, trial)
    at = lambda epoch, value: {"training_iteration": epoch, "val_acc": value}  # noqa: E731
    assert asha.on_trial_result(None, first, at(2, 0.9)) == asha.CONTINUE  # the first at a rung goes on
    assert asha.on_trial_result(None, prior, at(2, 0.5)) == asha.CONTINUE  # below the bar, but queued
    assert asha.on_trial_result(None, other, at(2, 0.6)) == asha.STOP  # above the prior, below the first


@pytest.mark.parametrize("experiment", ["fashion_gan", "fashion_cgan"])
def test_a_gans_step_that_flop_counting_cannot_follow_is_planned_by_its_seconds(env, fixture_root, capsys, experiment):
    """Their gradient penalty calls autograd.grad, which FlopCounterMode cannot follow: calibration times the steps."""
    assert main(["--data-dir", str(fixture_root), "plan", experiment, "--time-budget", "2m"]) == 0
    assert capsys.readouterr().out.startswith("Plan: ")
