"""A run's Optuna study on disk (tunelab.store.study) and `tunelab dashboard` (tunelab.report.dashboard): the study
follows the leaderboard (states, values, learning curves), a resumed search adds to it, the dashboard serves it over its
HTTP API and in a real browser. The searcher and writer are tested on fake trials; the slow tests run a real search."""

import contextlib
import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tests.helpers import SMALL_CNN
from tunelab.cli import main
from tunelab.engine import record
from tunelab.errors import UserError
from tunelab.report import dashboard
from tunelab.spec import spaces
from tunelab.spec.planner import make_plan
from tunelab.spec.rules import best_epoch_of
from tunelab.store import leaderboard, runs, study


def _run(folder: Path, experiment: str = str(SMALL_CNN)) -> runs.StoredRun:
    run = runs.StoredRun(folder, spaces.load_spec(experiment), runs.Options(), folder.parent)
    run.save()
    return run


def _search(run: runs.StoredRun, wandb: bool = False) -> record.StudySearch:
    study.create(run)
    return record.StudySearch(run, optuna.samplers.RandomSampler(seed=0), wandb=wandb)


def _record(run: runs.StoredRun, pressed: bool = False) -> record.TrialRecord:
    return record.TrialRecord(run, SimpleNamespace(pressed=pressed))


def _trial(trial_id: str, status: str = "RUNNING") -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status=status)


def _epochs(writer: record.TrialRecord, trial, values: list[dict], first: int = 1) -> None:
    for epoch, metrics in enumerate(values, start=first):
        writer.on_trial_result(0, [], trial, {"epoch": epoch, "training_iteration": epoch, **metrics})


def _by_ray_id(run: runs.StoredRun) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs["ray_trial_id"]: t for t in study.open_study(run).trials}


def test_a_trials_state_and_value_are_written_as_they_happen(tmp_path):
    run = _run(tmp_path / "r")
    searcher, writer = _search(run, wandb=True), _record(run)
    for t in ("full", "stopped", "broken"):
        assert searcher.suggest(t) is not None

    full, stopped, broken = _trial("full"), _trial("stopped"), _trial("broken")
    _epochs(writer, full, [{"val_acc": 0.5, "best_epoch": 1}, {"val_acc": 0.7, "best_epoch": 2}])
    assert _by_ray_id(run)["full"].user_attrs["epochs"] == 2  # as it happens
    # epochs 2 to 4 (2 again: resumed from an older checkpoint, it replaces the first run's)
    _epochs(writer, full, [{"val_acc": v, "best_epoch": 2} for v in (0.71, 0.6, 0.65)], first=2)
    writer.on_trial_complete(0, [], full)
    _epochs(writer, stopped, [{"val_acc": 0.8, "best_epoch": 1}, {"val_acc": 0.4, "best_epoch": 1}])
    writer.on_trial_complete(0, [], stopped)  # ASHA stopped it after 2 of 4 epochs
    _epochs(writer, broken, [{"val_acc": 0.3, "best_epoch": 1}])
    writer.on_trial_error(0, [], broken)

    trials = _by_ray_id(run)
    assert [trials[t].number for t in ("full", "stopped", "broken")] == [0, 1, 2]
    baseline = run.spec.baseline  # the file's baseline is the first trial
    assert {k: trials["full"].params[k] for k in baseline} == pytest.approx(baseline)
    assert trials["full"].state == TrialState.COMPLETE and trials["full"].value == pytest.approx(0.71)
    assert trials["full"].intermediate_values == pytest.approx({1: 0.5, 2: 0.71, 3: 0.6, 4: 0.65})
    # every metric of every epoch, with Ray's clock and without its bookkeeping
    assert study.epochs(trials["full"])[2] == {"val_acc": 0.71, "best_epoch": 2, "epoch": 2, "training_iteration": 2}
    # a stopped trial keeps the value it reached, as on the leaderboard (not Optuna's last intermediate value)
    assert trials["stopped"].state == TrialState.PRUNED and trials["stopped"].value == pytest.approx(0.8)
    assert trials["broken"].state == TrialState.FAIL and trials["broken"].value is None
    assert trials["broken"].intermediate_values == pytest.approx({1: 0.3})
    attrs = {k: v for k, v in trials["full"].user_attrs.items() if not k.startswith("epoch ")}
    assert attrs == {"ray_trial_id": "full", "wandb_run_id": "full", "status": "completed", "epochs": 4,
                     "best_epoch": 2}  # fmt: skip
    assert trials["stopped"].user_attrs["status"] == "stopped early"
    assert searcher.suggest("next") is not None and _by_ray_id(run)["next"].number == 3  # samples on after all three
    loaded = study.open_study(run)
    assert loaded.study_name == "r" and loaded.metric_names == ["val_acc"]
    assert loaded.user_attrs["experiment"] == "small_cnn" and loaded.user_attrs["max_epochs"] == 4


@pytest.mark.parametrize("metrics, modes, values, best", [
    (["val_acc"], ["max"], {1: 0.5, 2: 0.7, 3: 0.7, 4: 0.6}, 2),  # a tie keeps the earlier epoch
    (["val_loss"], ["min"], {1: 0.5, 2: None, 3: 0.4, 4: 0.45}, 3),  # an epoch without the metric never counts
    (["val_acc"], ["max"], {1: None}, 0),
    (["val_pixel_acc", "params"], ["max", "min"], {1: 0.9, 2: 0.5, 3: 0.7}, 3),  # several objectives: the last
])  # fmt: skip
def test_a_trials_best_epoch_is_one_rule(metrics, modes, values, best):
    spec = dataclasses.replace(spaces.load_spec(str(SMALL_CNN)), metrics=metrics, modes=modes)
    assert best_epoch_of(spec, values) == best


def test_several_objectives_store_every_objective(tmp_path):
    run = _run(tmp_path / "mo", "mnist_thought_ae")
    searcher, writer = _search(run), _record(run)
    searcher.suggest("a")
    searcher.suggest("b")
    a, b = _trial("a"), _trial("b")
    metrics = {"val_pixel_acc": 0.9, "params": 1000.0, "duration_s": 3.0}
    _epochs(writer, a, [metrics | {"best_epoch": e} for e in range(1, 6)])
    writer.on_trial_complete(0, [], a)
    _epochs(writer, b, [metrics | {"val_pixel_acc": 0.8, "best_epoch": e} for e in (1, 2)])
    writer.on_trial_complete(0, [], b)  # Pareto-layer ASHA stopped it
    loaded = study.open_study(run)
    assert [d.name for d in loaded.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    assert loaded.metric_names == ["val_pixel_acc", "params", "duration_s"]
    first, second = loaded.trials
    assert first.state == TrialState.COMPLETE and first.values == pytest.approx([0.9, 1000, 3])
    assert second.state == TrialState.PRUNED and second.values == pytest.approx([0.8, 1000, 3])
    assert first.intermediate_values == {} and "wandb_run_id" not in first.user_attrs


def test_trials_ray_ends_silently_end_when_it_ends_them(tmp_path):
    run = _run(tmp_path / "r")
    searcher, writer = _search(run), _record(run)
    for t in ("budget", "lost"):
        searcher.suggest(t)
    budget = _trial("budget")
    _epochs(writer, budget, [{"val_acc": 0.6, "best_epoch": 1}, {"val_acc": 0.5, "best_epoch": 1}])
    writer.on_step_end(1, [budget])
    assert _by_ray_id(run)["budget"].state == TrialState.RUNNING
    budget.status = "TERMINATED"  # a time budget's end: Ray tells no one
    writer.on_step_end(2, [budget])
    trials = _by_ray_id(run)
    assert trials["budget"].state == TrialState.PRUNED and trials["budget"].value == pytest.approx(0.6)
    assert trials["budget"].user_attrs["status"] == "stopped early"  # at a rung (its small_cnn has one at 2)
    assert trials["lost"].state == TrialState.RUNNING
    writer.on_experiment_end([budget])  # "lost": the sampler drew it, Ray never recorded it
    lost = _by_ray_id(run)["lost"]
    assert lost.state == TrialState.FAIL and lost.user_attrs["note"] == study.NEVER_RUN
    assert "lost" not in set(leaderboard.table(run)["trial_id"])


def test_a_resumed_planned_search_starts_only_the_trials_left_of_its_plan(tmp_path):
    run = dataclasses.replace(_run(tmp_path / "r"), plan=make_plan(300, 10.0, 20.0, 1.0, 2, {"trials": 3}, 4))
    searcher = _search(run)
    assert all(searcher.suggest(f"t{i}") != searcher.FINISHED for i in range(2))
    resumed = record.StudySearch(run, optuna.samplers.RandomSampler(seed=0), wandb=False, resumed=True)
    assert resumed.suggest("t2") != resumed.FINISHED and resumed.suggest("t3") == resumed.FINISHED


def test_ctrl_c_leaves_running_trials_running(tmp_path):
    run = _run(tmp_path / "r")
    searcher, writer = _search(run), _record(run, pressed=True)
    searcher.suggest("paused")
    paused = _trial("paused")
    _epochs(writer, paused, [{"val_acc": 0.5, "best_epoch": 1}])
    paused.status = "TERMINATED"  # Ray ends every trial as the search ends, Ctrl-C or not
    writer.on_experiment_end([paused])
    assert _by_ray_id(run)["paused"].state == TrialState.RUNNING  # resume continues it
    assert leaderboard.table(run)["status"].tolist() == ["interrupted"]


def test_a_missing_or_corrupt_study_file_is_a_clear_error(env, capsys):
    results = env / "results"
    run = _run(results / "old")
    assert main(["dashboard", "old"]) == 2
    err = capsys.readouterr().err
    assert str(run.study_file) in err and "does not exist" in err and f"tunelab search {SMALL_CNN}" in err
    assert main(["dashboard"]) == 2  # no run has a study
    assert "no run in" in capsys.readouterr().err
    for text in ("{not json\nnor this\n", '{"op_code": 0}\n'):
        run.study_file.write_text(text)
        assert main(["dashboard", "old"]) == 2
        err = capsys.readouterr().err
        assert str(run.study_file) in err and "not a readable Optuna study" in err, err
    run.study_file.write_text("garbage\n")  # one line, still being written or not: no study in it
    assert main(["dashboard", "old"]) == 2 and "holds 0 studies" in capsys.readouterr().err
    assert main(["dashboard", "nosuchrun"]) == 2 and "no search run 'nosuchrun'" in capsys.readouterr().err


def _journal(path: Path, name: str, n: int) -> optuna.Study:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = optuna.create_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))
    s.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)
    return s


def test_several_runs_studies_are_one_storage_to_the_dashboard(tmp_path):
    root = tmp_path / "results"
    a, b = _journal(root / "a" / "study.log", "a", 2), _journal(root / "b" / "study.log", "b", 3)
    storage, shown = dashboard.storage_of(root, None)
    assert "every run" in shown
    assert [(s._study_id, s.study_name) for s in storage.get_all_studies()] == [(0, "a"), (1, "b")]
    trials = storage.get_all_trials(1)
    assert [t.number for t in trials] == [0, 1, 2]
    assert len({t._trial_id for t in storage.get_all_trials(0) + trials}) == 5  # ids unique across the files
    assert storage.get_trial(trials[2]._trial_id).params == b.trials[2].params
    assert storage.get_best_trial(0).value == a.best_value and storage.get_study_id_from_name("b") == 1
    storage.set_study_system_attr(1, "note", "seen")  # the dashboard's notes go to the run's own file
    assert JournalStorage(JournalFileBackend(str(root / "b" / "study.log"))).get_study_system_attrs(0)["note"] == "seen"
    _journal(root / "c" / "study.log", "c", 1)  # a search that starts while the dashboard runs
    assert [s.study_name for s in storage.get_all_studies()] == ["a", "b", "c"]
    with pytest.raises(NotImplementedError):
        storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "d")
    with pytest.raises(UserError, match="not a readable Optuna study"):
        (root / "a" / "study.log").write_text("{x\ny\n")
        dashboard.storage_of(root, None)


# A real search: interrupted (Ctrl-C) in the third trial's first epochs, then resumed; ASHA stops some (rungs at
# epochs 2 and 4 of 6).

RUN = "small_cnn"  # the run `tunelab search SMALL_CNN` makes
TRIALS = 6


def _environ(results: Path) -> dict:
    drop = ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "TUNELAB_LOCAL_COPIES", "RAY_ADDRESS")
    return {k: v for k, v in os.environ.items() if k not in drop} | {"TUNELAB_RESULTS": str(results),
                                                                      "PYTHONUNBUFFERED": "1"}  # fmt: skip


@pytest.fixture(scope="module")
def searched(tmp_path_factory, fixture_root) -> SimpleNamespace:
    results = tmp_path_factory.mktemp("study") / "results"
    environ = _environ(results)
    cmd = [
        sys.executable,
        "-m",
        "tunelab.cli",
        "--data-dir",
        str(fixture_root),
        "search",
        str(SMALL_CNN),
        "--trials",
        str(TRIALS),
        "--max-epochs",
        "6",
        "--concurrency",
        "1",
        "--wandb",
        "offline",
        "--verbose",
    ]  # fmt: skip  (a line per epoch)
    search = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ)
    lines = []
    for line in search.stdout:
        lines.append(line)
        if sum("finished (" in seen for seen in lines) >= 2 and " epoch 1: " in line:
            search.send_signal(signal.SIGINT)  # Ctrl-C in the third trial
            break
    rest, _ = search.communicate(timeout=300)
    run = runs.open_run(RUN, results)
    before = {t.number: t for t in study.open_study(run).trials}
    board_before = run.leaderboard()
    assert (board_before["status"].isin(["interrupted", "pending"])).any(), "".join(lines) + rest

    done = subprocess.run([sys.executable, "-m", "tunelab.cli", "resume", RUN], capture_output=True, text=True,
                          timeout=600, env=environ)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return SimpleNamespace(run=run, environ=environ, before=before, board_before=board_before)


@pytest.mark.slow
def test_the_study_matches_the_leaderboard(searched):
    run = searched.run
    board = pd.read_csv(run.leaderboard_file, dtype={"trial_id": str}).set_index("trial_id")
    histories = leaderboard.histories(run)
    trials = _by_ray_id(run)
    assert set(trials) == set(board.index) and len(study.open_study(run).trials) == len(board) == TRIALS
    assert set(board["status"]) == {"completed", "stopped early"}, board  # ASHA stopped some
    for trial_id, row in board.iterrows():
        trial = trials[trial_id]
        assert trial.state == study.STATES[row["status"]], trial_id
        assert trial.value == pytest.approx(row["val_acc"]), trial_id  # the best epoch's, stopped trials too
        curve = histories[trial_id].set_index("epoch")["val_acc"].to_dict()
        assert trial.intermediate_values == pytest.approx(curve) and len(curve) == row["epochs"]
        assert trial.params == pytest.approx({k: v for k, v in runs.sampled(row).items() if k in trial.params})
        assert set(trial.params) == set(run.spec.params)
        assert trial.user_attrs["wandb_run_id"] == trial_id
        assert (trial.user_attrs["epochs"], trial.user_attrs["best_epoch"]) == (row["epochs"], row["best_epoch"])
    best = study.open_study(run).best_trial  # Optuna's best (complete trials only): the best completed row
    assert best.user_attrs["ray_trial_id"] == board[board["status"] == "completed"].index[0]


@pytest.mark.slow
def test_a_resumed_search_adds_to_the_same_study(searched):
    after = study.open_study(searched.run).trials
    ids = [t.user_attrs["ray_trial_id"] for t in after]
    assert len(ids) == len(set(ids)) == TRIALS  # no trial twice
    assert len(searched.before) < TRIALS
    for number, before in searched.before.items():  # the same study: every trial keeps its number and params
        assert after[number].params == before.params
        assert after[number].user_attrs["ray_trial_id"] == before.user_attrs["ray_trial_id"]
        if before.state != TrialState.RUNNING:  # finished before Ctrl-C: kept as it was
            assert (after[number].state, after[number].values) == (before.state, before.values)
    interrupted = [t.number for t in searched.before.values() if t.state == TrialState.RUNNING]
    assert interrupted and all(after[n].state.is_finished() for n in interrupted)  # resume finished them


@pytest.mark.slow
def test_a_resumed_search_keeps_its_finished_trials(searched):
    """Ctrl-C in the third trial, then `tunelab resume`: the trials that had ended keep their results on the
    leaderboard, the others run to their end, and no config is tried twice."""
    before = searched.board_before
    ended = before[before["status"].isin(["completed", "stopped early"])]
    assert len(ended) >= 2, before
    after = searched.run.leaderboard().set_index("trial_id")
    assert len(after) == TRIALS and after["status"].isin(["completed", "stopped early"]).all(), after
    for _, row in ended.iterrows():
        assert after.loc[row["trial_id"], "val_acc"] == pytest.approx(row["val_acc"])
        assert after.loc[row["trial_id"], "epochs"] == row["epochs"]
    assert after.filter(like="config/").astype(str).agg("|".join, axis=1).is_unique


@pytest.mark.slow
def test_the_leaderboard_goes_to_wandb_as_a_table(searched):
    run = searched.run
    folders = sorted((run.dir / "wandb").glob("offline-run-*-leaderboard-*"))
    assert len(folders) == 2  # the interrupted search's and the resumed one's
    table = json.loads(next((folders[-1] / "files" / "media" / "table").glob("leaderboard_*.table.json")).read_text())
    board = run.leaderboard()
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert [r["trial_id"] for r in rows] == list(board["trial_id"])
    assert all(r["wandb_run_id"] == r["trial_id"] for r in rows) and "config/lr" in table["columns"]
    assert [r["val_acc"] for r in rows] == pytest.approx(list(board["val_acc"]))


@contextlib.contextmanager
def _dashboard(environ: dict, *args: str):
    """`tunelab dashboard ARGS` as a user starts it: yields its address, then stops it with Ctrl-C."""
    cmd = [sys.executable, "-m", "tunelab.cli", "dashboard", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
    try:
        deadline, line = time.monotonic() + 60, ""
        while "http://" not in line:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready and proc.poll() is None, f"no address within 60 s: {line}{proc.stderr.read()}"
            line = proc.stdout.readline()
        address = line[line.index("http://") :].split()[0]
        assert address.startswith(f"http://{dashboard.HOST}:")
        yield address.removesuffix("/dashboard")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=20) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tunelab_dashboard_serves_the_study(searched):
    expected = study.open_study(searched.run)
    for args in ((searched.run.name,), ()):  # the run's study, and every run's under the results root
        with _dashboard(searched.environ, *args) as base:
            studies = _get(f"{base}/api/studies")["study_summaries"]
            assert [s["study_name"] for s in studies] == [searched.run.name]
            detail = _get(f"{base}/api/studies/{studies[0]['study_id']}")
            trials = {t["number"]: t for t in detail["trials"]}
            assert sorted(trials) == [t.number for t in expected.trials]
            for t in expected.trials:
                shown = trials[t.number]
                assert shown["state"].upper() == t.state.name
                assert [v for v in shown.get("values", [])] == pytest.approx(t.values or [])
                assert [iv["step"] for iv in shown["intermediate_values"]] == sorted(t.intermediate_values)
                attrs = {a["key"]: a["value"] for a in shown["user_attrs"]}
                assert attrs["ray_trial_id"] == t.user_attrs["ray_trial_id"]
            assert [b["number"] for b in detail["best_trials"]] == [expected.best_trial.number]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium; "
                    ".ci/run installs it)")  # fmt: skip
def test_the_dashboard_page_shows_the_trials_in_a_browser(searched, tmp_path):
    expected = study.open_study(searched.run)
    with _dashboard(searched.environ, searched.run.name) as base:
        page = f"{base}/dashboard/studies/0"
        browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000"]
        dom = subprocess.run([*browser, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
        shot = tmp_path / "dashboard.png"
        subprocess.run([*browser, "--window-size=1400,1000", f"--screenshot={shot}", page], capture_output=True,
                       timeout=120)  # fmt: skip
    assert searched.run.name in dom, dom[:2000]
    assert f"Best Trial (number={expected.best_trial.number})" in dom
    for t in expected.trials:  # each trial's learning curve is in the intermediate values' plot
        assert f"trial #{t.number}" in dom
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
