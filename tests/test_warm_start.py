"""`tunelab search --warm-start RUN` (tunelab.engine.warmstart): an earlier run's finished trials, rebuilt on the new
space, are the new study's first trials, marked as imported; trials outside the new space are dropped with a note; a run
of another trainable, data set or metric is refused. The earlier run's study is a real Optuna journal in the format a
search writes; one short real search shows the imports first, then the search's own trials, none on its leaderboard."""

from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tests.helpers import write_student_model
from tunelab.cli import main
from tunelab.engine import record, search as engine, warmstart
from tunelab.errors import UserError
from tunelab.spec import spaces
from tunelab.store import runs, study

BASELINE = {"hidden": 32, "lr": 0.01}  # the later run's, which it tries first after the imported trials
# the earlier run's trials: (hidden, lr, state, per-epoch val_acc); its space is wider than the later run's
EARLIER = [
    (16, 0.01, TrialState.COMPLETE, [0.7, 0.8]),
    (32, 0.02, TrialState.PRUNED, [0.6]),  # ASHA stopped it after its first epoch: one epoch tells too little
    (64, 0.01, TrialState.COMPLETE, [0.7, 0.75]),  # hidden 64: not among the later run's choices
    (16, 0.08, TrialState.COMPLETE, [0.5, 0.55]),  # lr 0.08: outside the later run's range
    (32, 0.005, TrialState.FAIL, [0.3]),  # failed: nothing to import
    (32, 0.03, TrialState.COMPLETE, [0.6, 0.72]),
]


def _sweep(folder: Path, name: str, hidden: list, lr_max: float, **changes) -> str:
    lr = {"distribution": "log_uniform_values", "min": 0.001, "max": lr_max}
    sweep = {
        "trainable": "mlp.py",
        "method": "bayes",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "run_cap": 2,
        "max_epochs": 2,
        "seed": 0,
        "parameters": {"hidden": {"values": hidden}, "lr": lr},
    }
    sweep |= changes
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return str(path)


@pytest.fixture
def student(env) -> Path:
    """A student's model (tests.helpers) and two bayes sweeps of it: ``earlier`` and the narrower ``later``, which
    has a baseline."""
    folder = write_student_model(env / "hw", {})
    _sweep(folder, "earlier", [16, 32, 64], 0.1)
    _sweep(folder, "later", [16, 32], 0.05, baseline=BASELINE)
    return folder


@pytest.fixture
def earlier(student, env, fixture_root) -> runs.StoredRun:
    """The earlier run as a search leaves it: tunelab.yaml, and its study as a journal with the user attrs, states,
    values and per-epoch values that tunelab.store.study writes."""
    spec = spaces.load_spec(str(student / "earlier.yaml"))
    run = runs.StoredRun(env / "results" / "earlier", spec, runs.Options(), fixture_root)
    run.save()
    journal = optuna.create_study(study_name="earlier", direction="maximize",
                                  storage=JournalStorage(JournalFileBackend(str(run.study_file))))  # fmt: skip
    for number, (hidden, lr, state, curve) in enumerate(EARLIER):
        best = max(range(len(curve)), key=curve.__getitem__) + 1
        status = {TrialState.COMPLETE: "completed", TrialState.PRUNED: "stopped early"}.get(state, "failed")
        journal.add_trial(optuna.trial.create_trial(
            state=state, value=None if state == TrialState.FAIL else curve[best - 1],
            params={"hidden": hidden, "lr": lr}, distributions=run.spec.params,
            intermediate_values=dict(enumerate(curve, start=1)),
            user_attrs={"ray_trial_id": f"old_{number}", "status": status, "epochs": len(curve), "best_epoch": best},
        ))  # fmt: skip
    journal.add_trial(
        optuna.trial.create_trial(
            state=TrialState.PRUNED, params={"hidden": 16, "lr": 0.02}, distributions=run.spec.params
        )
    )  # ended but never run: no result
    journal.ask()  # one interrupted (running) trial: no result to import
    return run


def _later(student: Path, earlier: runs.StoredRun, sweep: str = "later", **changes) -> runs.StoredRun:
    path = _sweep(student, sweep, [16, 32], 0.05, **changes) if changes else str(student / f"{sweep}.yaml")
    spec = spaces.load_spec(path)
    return runs.StoredRun(earlier.dir.parent / sweep, spec, runs.Options(warm_start=["earlier"]), earlier.data_dir)


def test_imported_trials_come_first_marked_and_on_the_new_space(student, earlier, capsys):
    later = _later(student, earlier)
    later.save()  # as the search does before it builds its searcher
    study.create(later, warmstart.trials(later))
    searcher = record.StudySearch(later, engine.sampler(later.spec), wandb=False)
    out = capsys.readouterr().out
    assert ("Warm start: the sampler starts from 2 finished trials of run earlier (1 stopped after their first epoch, "
            "left out: one epoch's value tells too little)") in out  # fmt: skip
    assert ("Warm start: dropped 2 trials outside this search's space: hidden not among [16, 32] (1); "
            "lr not in [0.001, 0.05] (1)") in out  # fmt: skip
    assert searcher.suggest("own_0") == BASELINE  # the search's first own trial, its baseline, comes after them
    first, second, own = study.open_study(later).trials
    assert [first.user_attrs, second.user_attrs] == [
        {"imported_from": "earlier", "imported_trial_id": "old_0"},
        {"imported_from": "earlier", "imported_trial_id": "old_5"},
    ]
    assert first.state == TrialState.COMPLETE and first.value == pytest.approx(0.8)
    assert first.intermediate_values == pytest.approx({1: 0.7, 2: 0.8}) and first.params == {"hidden": 16, "lr": 0.01}
    assert first.distributions == second.distributions == later.spec.params  # the new space's, which TPE models
    assert own.number == 2 and own.user_attrs["ray_trial_id"] == "own_0" and "imported_from" not in own.user_attrs
    # TPE (which samples at random until n_startup_trials have finished) models its first sampled trial on them
    tpe = engine.sampler(later.spec)
    ot_study = study.open_study(later, tpe)
    space = tpe.infer_relative_search_space(ot_study, own)
    assert set(tpe.sample_relative(ot_study, own, space)) == {"hidden", "lr"}  # {}: still sampling at random
    # `tunelab resume` reopens the study as it is: nothing imported twice
    record.StudySearch(later, engine.sampler(later.spec), wandb=False, resumed=True)
    assert len(study.open_study(later).trials) == 3


def test_a_longer_or_shorter_run_is_cut_to_the_new_max_epochs(student, earlier, capsys):
    shorter = warmstart.trials(_later(student, earlier, "short", max_epochs=1))
    assert [t.state for t in shorter] == [TrialState.COMPLETE] * 3  # each trained 1 epoch, the new max_epochs
    assert [t.value for t in shorter] == pytest.approx([0.7, 0.6, 0.6]) and shorter[0].intermediate_values == {1: 0.7}
    longer = warmstart.trials(_later(student, earlier, "long", max_epochs=3))
    # stopped early, as the new run's own stopped trials are: PRUNED with its curve, which TPE ranks after full ones
    assert [t.state for t in longer] == [TrialState.PRUNED] * 2  # 2 of 3 epochs each; the 1-epoch one is left out
    assert longer[0].intermediate_values == pytest.approx({1: 0.7, 2: 0.8})
    assert "1 stopped after their first epoch, left out" in capsys.readouterr().out


def test_the_warm_start_is_saved_with_the_run(student, earlier):
    later = _later(student, earlier)
    later.save()
    assert runs.open_run("later", later.dir.parent).options.warm_start == ["earlier"]


@pytest.mark.parametrize("case", ["trainable", "metric", "random", "missing", "itself"])
def test_a_run_that_measured_something_else_is_refused(case, student, earlier, env, fixture_root):
    later = _later(student, earlier)
    if case == "trainable":  # the built-in CNN on the same data set
        other = runs.StoredRun(env / "results" / "cnn", spaces.load_spec("fashion_cnn"), runs.Options(), fixture_root)
        other.save()
        later.options.warm_start = ["cnn"]
        expected = ("--warm-start cnn: run cnn searched trainable 'cnn_classifier' on data set 'fashion_mnist', this "
                    "search trains 'mlp' on 'fashion_mnist'")  # fmt: skip
    elif case == "metric":
        later = _later(student, earlier, "by_loss", metric={"name": "val_loss", "goal": "minimize"})
        expected = "run earlier optimised val_acc (max), this search optimises val_loss (min)"
    elif case == "random":
        later = _later(student, earlier, "random", method="random")
        expected = "method: random, whose sampler learns nothing from earlier trials"
    elif case == "missing":
        later.options.warm_start = ["nosuch"]
        expected = "--warm-start nosuch: no search run 'nosuch'"
    else:
        later.options.warm_start = ["later"]
        expected = "--warm-start later: that is this search's own run"
    with pytest.raises(UserError) as error:
        warmstart.trials(later)
    assert expected in str(error.value)


@pytest.mark.slow
def test_a_warm_started_search_samples_after_the_imported_trials(student, earlier, fixture_root, capsys):
    argv = ["--data-dir", str(fixture_root), "search", str(student / "later.yaml"), "--name", "later",
            "--warm-start", "earlier", "--wandb", "disabled"]  # fmt: skip
    assert main(argv) == 0
    assert "Warm start: the sampler starts from 2 finished trials of run earlier" in capsys.readouterr().out
    run = runs.open_run("later", earlier.dir.parent)
    assert run.options.warm_start == ["earlier"]
    trials = study.open_study(run).trials
    assert [t.user_attrs.get("imported_from") for t in trials] == ["earlier", "earlier", None, None]
    assert trials[2].params == BASELINE
    own = [t.user_attrs["ray_trial_id"] for t in trials[2:]]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials[2:])
    board = pd.read_csv(run.leaderboard_file, dtype={"trial_id": str})
    assert sorted(board["trial_id"]) == sorted(own)  # --trials 2 (run_cap) counts the search's own trials only
    engine._searcher(run, "disabled", resumed=True)  # as `tunelab resume` opens it: nothing imported twice
    assert len(study.open_study(run).trials) == 4
