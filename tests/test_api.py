"""The Python API (tunelab.api) that the command line is a layer over: bad input is a UserError with the command
line's message (never SystemExit), a run reopens from its folder and shows itself in Jupyter, a plan comes back as
an object, and in one process the local Ray that a search starts serves the next search."""

import importlib
import inspect
import shutil
import subprocess
import sys
import types
import urllib.request
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

import tunelab
from tests.helpers import SMALL_CNN, wandb_run
from tunelab import api
from tunelab.cli import main
from tunelab.engine import calibrate, cluster
from tunelab.errors import Failed, UserError
from tunelab.spec import spaces
from tunelab.store import leaderboard, runs, study

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")  # fmt: skip


@pytest.mark.parametrize(
    "options, message",
    [
        ({"trials": 0}, "trials: must be an integer >= 1, not 0"),
        ({"trials": 2.5}, "trials: must be an integer, not 2.5"),
        ({"trials": "3x"}, "trials: must be an integer, not '3x'"),
        ({"trials": True}, "trials: must be an integer, not True"),
        ({"max_epochs": float("inf")}, "max_epochs: must be an integer, not inf"),
        ({"concurrency": -1}, "concurrency: must be an integer >= 1, not -1"),
        (
            {"time_budget": "20x"},
            "time_budget: must be a duration: seconds (90) or a number with s, m or h (90s, 20m, 1.5h), not '20x'",
        ),
        ({"time_budget": 0}, "time_budget: must be a duration > 0: seconds (90)"),
        ({"time_budget": "0m"}, "time_budget: must be a duration > 0: seconds (90)"),
        ({"time_budget": [20]}, "time_budget: must be a duration: seconds"),
        ({"retrain_budget": "5m"}, "--retrain-budget goes with --time-budget: it limits the configs a planned search"),
        ({"subset": 1.5}, "subset: must be a fraction in (0, 1], not 1.5"),
        ({"subset": 0}, "subset: must be a number > 0, not 0"),
        ({"cpus_per_trial": 0}, "cpus_per_trial: must be a number > 0, not 0"),
        ({"gpus_per_trial": 1.5}, "gpus_per_trial: must be 0, a fraction of one GPU (0.25, 0.5) or a whole number"),
        ({"seed": 2**32}, "seed: must be below 2**32 (4294967296), not 4294967296"),
        ({"seed": -1}, "seed: must be an integer >= 0, not -1"),
        ({"name": "a/b"}, "name: must be a folder name of letters, digits, '.', '_' and '-' that starts with a letter"),
        ({"warm_start": ["fine", "../up"]}, "warm_start: must be a folder name of letters, digits"),
        ({"wandb": "sometimes"}, "wandb: must be one of online, offline, disabled, not 'sometimes'"),
        ({"address": "nonsense"}, "--address 'nonsense' is not a Ray cluster's address: HOST:PORT of its head node"),
    ],
)
def test_bad_options_are_a_user_error_with_the_command_lines_message(env, options, message):
    with pytest.raises(UserError) as error:  # a SystemExit would not be caught here, and fail the test
        tunelab.search("fashion_cnn", **options)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (env / "results").exists()


def test_bad_input_to_the_other_steps_is_a_user_error(env, fixture_root):
    with pytest.raises(UserError, match="unknown experiment 'fashion_cnm'; known: "):
        tunelab.search("fashion_cnm")
    with pytest.raises(UserError, match=r"tunelab plan needs --time-budget \(90s, 20m, 1.5h\)"):
        tunelab.plan("fashion_cnn")
    with pytest.raises(UserError, match="no search run 'nothing' in .*Start one with `tunelab search EXPERIMENT"):
        tunelab.open("nothing")
    with pytest.raises(UserError, match="no search run 'nothing'"):
        tunelab.resume("nothing")
    with pytest.raises(UserError, match="compare needs two or more different runs, not none"):
        tunelab.compare()
    with pytest.raises(UserError, match="config: unknown hyperparameter.s. colour; allowed: "):
        tunelab.describe("cnn_classifier", {"colour": "red"}, data_dir=fixture_root)


def test_values_are_checked_alike_as_text_and_as_python_values():
    assert api.duration("20m") == api.duration(1200) == api.duration(timedelta(minutes=20)) == 1200.0
    assert api.duration(" 1.5h ") == 5400 and api.duration(np.float32(0.5)) == 0.5
    assert api.number("3") == api.number(3.0) == api.number(np.int64(3)) == 3 and type(api.number(3.0)) is int
    assert api.fraction("0.25") == 0.25 and api.gpus(0.25) == 0.25 and api.seed("7") == 7
    with pytest.raises(UserError, match=r"^must be an integer, not 'inf'$"):
        api.number("inf")
    with pytest.raises(UserError, match=r"^must be a number > 0, not inf$"):
        api.positive("inf")


def test_the_packages_step_names_are_the_api_and_the_steps_modules_have_names_of_their_own():
    from tunelab.engine import search as engine  # the steps' modules (Ray, torch, pandas)
    from tunelab.report import comparison
    from tunelab.spec import description, planner

    steps = (tunelab.search, tunelab.plan, tunelab.compare, tunelab.describe)
    assert steps == (api.search, api.plan, api.compare, api.describe)  # still, with the modules imported
    assert all(inspect.isfunction(f) for f in steps) and "time_budget" in str(inspect.signature(tunelab.search))
    assert engine.MAX_FAILURES and callable(engine.search) and planner.Plan and planner.FLAGS
    assert comparison.HOOKS and callable(comparison.compare) and callable(description.describe)
    for name in ("search", "plan", "compare", "describe"):  # no module of the API's names: one name, one thing
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"tunelab.{name}")
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        tunelab.nothing
    code = "import sys, tunelab; print(sorted(m for m in ('ray', 'torch', 'pandas', 'optuna') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# A run built from files, as a search leaves it


def board_of(spec: spaces.Spec, n: int = 7, failed: int = 1) -> pd.DataFrame:
    """A leaderboard as ``leaderboard.table`` makes it: ``n`` trials, best first, the last ``failed`` failed."""
    rng = np.random.default_rng(0)
    values = sorted(rng.uniform(0.6, 0.9, n - failed), reverse=True) + [np.nan] * failed
    rows = []
    for i, value in enumerate(values):
        low, high = leaderboard.interval("val_acc", value, 600)
        rows.append({"trial_id": f"t{i}", "status": "failed" if np.isnan(value) else "completed", "val_acc": value,
                     "val_acc_low": low, "val_acc_high": high, "epochs": 0 if np.isnan(value) else 4,
                     "best_epoch": 0 if np.isnan(value) else 3, "params": 1000 + i, "duration_s": 2.0,
                     "val_examples": 600, "config/lr": 0.001 * (i + 1), "config/dropout": 0.25,
                     "config/optimizer": "adam"})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.insert(frame.columns.get_loc("epochs"), "tied", leaderboard.tied_with_best(frame, "val_acc"))
    return frame


@pytest.fixture
def searched(env, fixture_root, monkeypatch) -> tuple[runs.StoredRun, pd.DataFrame]:
    """The run small_cnn as its search leaves it: its folder, leaderboard and best.yaml (from a made-up board)."""
    run = runs.StoredRun(env / "results" / "small_cnn", spaces.load_spec(str(SMALL_CNN)), runs.Options(), fixture_root)
    run.save()
    board = board_of(run.spec)
    monkeypatch.setattr(leaderboard, "table", lambda _: board)  # the search's results
    leaderboard.write(run)
    return run, board


def test_a_run_opens_with_its_leaderboard_and_best_config(searched):
    stored, board = searched
    run = tunelab.open("small_cnn")
    assert (run.name, run.experiment, run.dir) == ("small_cnn", "small_cnn", stored.dir)
    assert isinstance(run.leaderboard, pd.DataFrame)
    assert run.leaderboard["trial_id"].tolist() == board["trial_id"].tolist()
    assert run.best_config == stored.config_of(board.iloc[0]) and run.best_config["lr"] == 0.001
    assert run.best_config["width"] == 16 and "epochs" in run.best_config  # complete: constants and defaults too
    assert run.retrained is None and run.warning is None
    assert repr(run) == f"<tunelab.Run 'small_cnn' in {stored.dir}>"
    assert run.refresh()["trial_id"].tolist() == board["trial_id"].tolist()  # `tunelab leaderboard`'s rebuild


def test_a_run_shows_its_top_trials_best_config_and_figures_in_jupyter(searched):
    stored, _ = searched
    shown = tunelab.open("small_cnn")._repr_html_()
    assert "<h4>tunelab run small_cnn</h4>" in shown and "<code>small_cnn</code>" in shown
    assert "Trials: 6 completed, 1 failed." in shown
    assert "Best: trial t0, val_acc " in shown and "lr=0.001" in shown and "optimizer=adam" in shown
    table = shown[shown.index("<table") :]
    assert table.count("<tr") == 6 and ">t4<" in table and ">t5<" not in table  # a header and the top 5
    assert "data:image" not in shown  # no report yet
    stored.report_dir.mkdir()
    (stored.report_dir / "learning_curves.png").write_bytes(PNG)
    (stored.report_dir / "report.md").write_text("# x\n\n![Learning curves of the best trial](learning_curves.png)\n")
    shown = tunelab.open("small_cnn")._repr_html_()
    assert shown.count("<img src='data:image/png;base64,") == 1 and "Learning curves of the best trial" in shown


def test_a_run_without_a_leaderboard_says_so_when_shown(env, fixture_root):
    run = runs.StoredRun(env / "results" / "small_cnn", spaces.load_spec(str(SMALL_CNN)), runs.Options(), fixture_root)
    run.save()
    opened = tunelab.open("small_cnn")
    assert "has no leaderboard yet: `tunelab leaderboard small_cnn` builds it" in opened._repr_html_()
    with pytest.raises(UserError, match="run 'small_cnn' has no best config yet: no trial has a value of val_acc"):
        opened.best_config


def test_the_report_shown_in_a_notebook_has_its_figures_inlined_and_no_page_style(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "report.html").write_text(
        "<!doctype html><style>body{margin:2em}</style>\n<h1>r</h1>\n"
        "<figure><img src='a.png'><figcaption>A</figcaption></figure>\n"
    )
    shown = api._report_html(tmp_path)
    assert "<style>" not in shown and "<h1>r</h1>" in shown and "src='data:image/png;base64," in shown


def test_a_search_whose_trials_all_failed_carries_its_run_and_the_command_line_shows_it_first(
    searched, monkeypatch, capsys
):
    stored, board = searched
    failed = board.assign(status="failed", val_acc=np.nan)
    with pytest.raises(Failed, match=r"every trial of run 'small_cnn' failed \(7\)") as error:
        api._ended(stored, failed)
    assert error.value.status == 1 and error.value.run.leaderboard.equals(failed)

    monkeypatch.setattr(api, "search", lambda *args, **kwargs: api._ended(stored, failed))
    assert main(["search", "small_cnn"]) == 1
    out, err = capsys.readouterr()
    assert "# Leaderboard: small_cnn" in out and f"Leaderboard: {stored.leaderboard_file}" in out
    assert err.strip().splitlines()[-1].startswith("tunelab: error: every trial of run 'small_cnn' failed (7)")

    monkeypatch.setattr(api, "search", lambda *args, **kwargs: api._ended(stored, board))  # one of 7 failed
    assert main(["search", "small_cnn"]) == 0
    out, err = capsys.readouterr()
    assert f"Best config: {stored.best_file}" in out
    assert err.strip().splitlines()[-1].startswith("warning: 1 of 7 trials failed; the first: ")


def test_a_retrain_whose_models_all_failed_carries_its_run_and_the_command_line_shows_its_table_first(
    searched, monkeypatch, capsys
):
    from tunelab.engine import retrain

    stored, _ = searched
    monkeypatch.setattr(retrain, "_train", lambda *_: {"status": "failed: the loss is nan", "duration_s": 0.1})
    run = tunelab.open("small_cnn")
    with pytest.raises(Failed, match=r"every retrained model of run 'small_cnn' failed \(2\)") as error:
        run.retrain(seeds="2", epochs="1", subset="0.5", wandb="disabled")  # checked as the flags' text is
    assert error.value.run is run and len(stored.retrain_table()) == 2
    with pytest.raises(UserError, match="^seeds: must be an integer >= 1, not 0$"):
        run.retrain(seeds=0)

    shutil.rmtree(stored.retrain_dir)
    assert main(["retrain", "small_cnn", "--seeds", "2", "--epochs", "1", "--wandb", "disabled"]) == 1
    out, err = capsys.readouterr()
    assert f"Retrain results: {stored.retrain_file}" in out
    assert err.strip().splitlines()[-1].startswith("tunelab: error: every retrained model of run 'small_cnn' failed")


def test_plan_returns_the_plan_that_the_command_line_prints(env, fixture_root, monkeypatch, capsys):
    measured = calibrate.Calibration(20.0, 200.0, 60.0, 1.5, 8.0, flops=(1.0, 2.0, 3.0))
    monkeypatch.setattr(calibrate, "calibrate", lambda spec, data_dir, budget_s, queued=(): measured)  # no timing here
    plan = tunelab.plan("fashion_cnn", time_budget="20m", trials=8, subset=0.5, data_dir=fixture_root)
    assert (plan.trials, plan.subset, plan.budget_s, plan.calibration_s) == (8, 0.5, 1200, 8.0)
    assert str(plan) == "\n".join(plan.lines()) and "Kept from the command line: --trials 8, --subset 0.5." in str(plan)
    argv = ["--data-dir", str(fixture_root), "plan", "fashion_cnn", "--time-budget", "20m", "--trials", "8",
            "--subset", "0.5"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out == str(plan) + "\n"
    assert not (env / "results").exists()


def test_describe_takes_a_config_as_a_dict_and_shows_as_text(fixture_root):
    text = tunelab.describe("cnn_classifier", {"width": 8, "depth": 1}, data_dir=fixture_root)
    assert text.startswith("cnn_classifier on fashion_mnist") and repr(text) == str(text)
    assert "Total params" in text


def in_a_notebook(monkeypatch) -> list:
    """IPython as a Jupyter kernel has it, whose display records what it is given."""
    shown = []
    ipython, display = types.ModuleType("IPython"), types.ModuleType("IPython.display")
    ipython.get_ipython, ipython.display = lambda: types.SimpleNamespace(kernel=object()), display
    display.display, display.IFrame = shown.append, lambda src, **size: ("IFrame", src)
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    return shown


def test_the_dashboard_serves_in_the_background_once_per_run(searched, monkeypatch):
    stored, _ = searched
    study.create(stored)  # the run's study
    run = tunelab.open("small_cnn")
    try:
        address = run.dashboard()
        assert address.startswith("http://127.0.0.1:") and address.endswith("/dashboard")
        with urllib.request.urlopen(address, timeout=10) as page:
            assert page.status == 200
        shown = in_a_notebook(monkeypatch)
        assert tunelab.open("small_cnn").dashboard() == address  # the one already serving
        assert shown == [("IFrame", address)]
    finally:
        server = api._DASHBOARDS.pop(stored.study_file.resolve())
        server.shutdown()
        server.server_close()


# Ray in one process


def test_the_api_keeps_its_local_ray_between_searches_and_the_command_line_does_not(monkeypatch):
    calls, up = [], [False]

    def init(address, trainable):
        calls.append(("init", address))
        up[0] = True

    def shutdown():
        calls.append(("shutdown",))
        up[0] = False

    monkeypatch.setattr(cluster, "init", init)
    monkeypatch.setattr(cluster.ray, "shutdown", shutdown)
    monkeypatch.setattr(cluster.ray, "is_initialized", lambda: up[0])
    monkeypatch.setattr(cluster, "check_resources", lambda cpus, gpus, local: 1)
    monkeypatch.setattr(cluster, "_keep", False)
    monkeypatch.setattr(cluster, "_kept", False)

    def search(address=None):
        with cluster.connected(address, "cnn_classifier", 1, 0) as slots:
            assert up[0] and slots == 1

    search()  # the command line's: a Ray per search
    search()
    assert calls == [("init", None), ("shutdown",)] * 2
    calls.clear()
    cluster.keep_local()  # the API's
    search()
    search()
    assert calls == [("init", None)] and up[0]  # the second search's Ray is the first's
    search("10.0.0.1:6379")  # a cluster's search: the local Ray stops first, and the cluster is left after it
    assert calls[1:] == [("shutdown",), ("init", "10.0.0.1:6379"), ("shutdown",)]
    calls.clear()
    search()
    shutdown()  # stopped by hand meanwhile (ray.shutdown() in the notebook)
    search()
    assert calls[-1] == ("init", None) and calls.count(("init", None)) == 2 and up[0]  # started again
    cluster.keep_local(False)  # what the command line does when its search ends
    assert calls[-1] == ("shutdown",) and not up[0]


@pytest.mark.slow
def test_a_second_search_in_one_process_reuses_the_local_ray_with_actors_and_records_of_its_own(
    env, fixture_root, monkeypatch
):
    import ray

    starts = []
    init = cluster.init

    def counted(*args):
        starts.append(args)
        init(*args)

    monkeypatch.setattr(cluster, "init", counted)
    options = {"trials": 2, "max_epochs": 1, "concurrency": 1, "wandb": "offline", "data_dir": fixture_root}
    try:
        first = tunelab.search(SMALL_CNN, name="first", **options)
        assert ray.is_initialized() and len(starts) == 1  # kept up after the search
        second = tunelab.search(SMALL_CNN, name="second", seed=1, **options)
        assert ray.is_initialized() and len(starts) == 1  # the second search started no Ray of its own
    finally:
        cluster.keep_local(False)
    assert not ray.is_initialized()

    epochs = {run.name: pd.concat(leaderboard.histories(run.stored).values()) for run in (first, second)}
    assert set(epochs["first"]["node_id"]) == set(epochs["second"]["node_id"])  # one Ray node served both
    assert not set(epochs["first"]["worker_pid"]) & set(epochs["second"]["worker_pid"])  # each had its own actors
    for run in (first, second):
        board = run.leaderboard
        assert len(board) == 2 and board["status"].eq("completed").all(), board
        assert sorted(p.name for p in run.dir.glob("trial_*")) == sorted(f"trial_{t}" for t in board["trial_id"])
        trials = study.open_study(run.stored).trials  # its own study holds its own trials, none of the other's
        assert {t.user_attrs.get("ray_trial_id") for t in trials} == set(board["trial_id"])
        logged = sorted((run.dir / "wandb").glob("offline-run-*"))
        assert logged and {wandb_run(next(f.glob("run-*.wandb")))["group"] for f in logged} == {run.name}
