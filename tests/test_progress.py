"""What a search and a retrain show while they run: in a terminal one bar (trials done of those planned, running, the
best value so far, expected time), in a log (CI, nohup: output that is no terminal) one line per trial that ends and
per model retrained, and with --verbose a line per trial start and per epoch as well."""

import dataclasses
import io
import re
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

import tunelab
from tests.helpers import SMALL_CNN
from tunelab.cli import main, parser
from tunelab.engine import cluster, search as engine
from tunelab.spec import spaces
from tunelab.store import leaderboard

END = re.compile(r"^\[ *\d+s\] trial (\S+) finished \((completed|stopped early), (\d+) epochs?\): ")
EPOCH = re.compile(r"^\[ *\d+s\] trial (\S+) epoch (\d+): val_acc=")


class Terminal(io.StringIO):
    """Standard output that is a terminal."""

    def isatty(self) -> bool:
        return True


def trial(trial_id: str, status: str = "RUNNING", analysis: dict | None = None, **last_result) -> SimpleNamespace:
    """A stand-in for Ray's Trial: what tunelab.engine.search.Progress reads of one."""
    return SimpleNamespace(trial_id=trial_id, status=status, config={"lr": 0.001, "optimizer": "adam"},
                           last_result=last_result, metric_analysis=analysis or {},
                           local_path=f"/results/run/trial_{trial_id}")  # fmt: skip


def drive(progress: engine.Progress, values: list[float], metric: str) -> list[SimpleNamespace]:
    """A search as Ray calls its callbacks: a trial that ended before a resume (its best value 0.5), then one trial
    per value, each reporting it at epochs 1 and 2 and then completing; the last one still running."""
    before = trial("t0", "TERMINATED", {metric: {"max": 0.5, "min": 0.5}}, epoch=2, **{metric: 0.5})
    trials = [before]
    progress.on_step_begin(0, trials)
    for i, value in enumerate(values, start=1):
        trials.append(trial(f"t{i}"))
        progress.on_trial_start(i, trials, trials[-1])
        for epoch in (1, 2):
            progress.on_trial_result(i, trials, trials[-1], {metric: value, "epoch": epoch})
        if i < len(values):
            trials[-1].last_result = {metric: value, "epoch": 2}
            progress.on_trial_complete(i, trials, trials[-1])
            trials[-1].status = "TERMINATED"
    return trials


@pytest.mark.parametrize("mode, values, best", [("max", [0.7, 0.9, 0.8], "0.9"), ("min", [0.7, 0.3, 0.4], "0.3")])
def test_the_bar_counts_the_trials_and_keeps_the_best_value_of_the_metrics_mode(monkeypatch, mode, values, best):
    monkeypatch.setattr(sys, "stdout", Terminal())
    spec = dataclasses.replace(spaces.load_spec(str(SMALL_CNN)), metrics=["val_loss"], modes=[mode], run_cap=5)
    progress = engine.Progress(spec, expected_s=600)
    trials = drive(progress, values, "val_loss")
    bar = progress.bar
    assert (bar.n, bar.total) == (3, 5)  # the trial ended before the resume, and two of this search's
    assert bar.postfix == f"1 running, best val_loss={best}, expected 10:00"

    progress.on_trial_error(4, trials, trials[-1])  # the one running fails
    assert bar.n == 4 and bar.postfix.startswith("0 running, ")
    progress.on_experiment_end(trials)
    assert progress.bar is None
    out = sys.stdout.getvalue()
    assert "small_cnn:  80%" in out and "4/5" in out  # the bar as it was drawn last
    lines = [line for line in re.split(r"[\r\n]", out) if line.startswith("[")]  # drawn above the bar
    assert len(lines) == 1 and "trial t3 FAILED after 2 retries (see /results/run/trial_t3/error.txt)" in lines[0]
    assert lines[0].endswith(f"; best val_loss={best}; 4 of 5 trials done")

    resumed = engine.Progress(spec)  # a resumed search's best so far: of the trials that ended before it
    resumed.on_step_begin(0, [trial("t0", "TERMINATED", {"val_loss": {"max": 0.95, "min": 0.05}})])
    assert resumed.best == {"max": 0.95, "min": 0.05}[mode] and resumed.bar.n == 1
    resumed.close()


def test_in_a_log_each_trial_that_ends_is_one_line_and_verbose_adds_its_start_and_epochs(capsys):
    spec = spaces.load_spec(str(SMALL_CNN))  # val_acc, max; ASHA's rungs at 2 of its 4 epochs
    drive(engine.Progress(spec), [0.7, 0.9, 0.8], "val_acc")
    lines = capsys.readouterr().out.splitlines()
    assert [re.sub(r"^\[ *\d+s\] ", "", line) for line in lines] == [
        "trial t1 finished (stopped early, 2 epochs): val_acc=0.7; best val_acc=0.7; 2 of 20 trials done",
        "trial t2 finished (stopped early, 2 epochs): val_acc=0.9; best val_acc=0.9; 3 of 20 trials done",
    ]
    assert all(END.match(line) for line in lines)

    drive(engine.Progress(dataclasses.replace(spec, max_epochs=2), verbose=True), [0.7, 0.9, 0.8], "val_acc")
    lines = [re.sub(r"^\[ *\d+s\] ", "", line) for line in capsys.readouterr().out.splitlines()]
    assert lines[:4] == [
        "trial t1 started: lr=0.001, optimizer=adam",
        "trial t1 epoch 1: val_acc=0.7",
        "trial t1 epoch 2: val_acc=0.7",
        "trial t1 finished (completed, 2 epochs): val_acc=0.7; best val_acc=0.7; 2 of 20 trials done",
    ]
    assert len(lines) == 11 and lines[-1] == "trial t3 epoch 2: val_acc=0.8"  # 3 starts, 6 epochs, 2 ends


def test_several_objectives_show_every_value_and_no_single_best(capsys):
    spec = dataclasses.replace(spaces.load_spec(str(SMALL_CNN)), metrics=["val_acc", "params"], modes=["max", "min"])
    progress = engine.Progress(spec)
    trials = [trial("t1")]
    progress.on_step_begin(0, trials)
    progress.on_trial_result(0, trials, trials[0], {"val_acc": 0.8, "params": 12345, "epoch": 4})
    trials[0].last_result = {"val_acc": 0.8, "params": 12345, "epoch": 4}
    progress.on_trial_complete(0, trials, trials[0])
    line = capsys.readouterr().out.strip()
    assert line.endswith("trial t1 finished (completed, 4 epochs): val_acc=0.8, params=12345; 1 of 20 trials done")
    assert progress.best is None


def test_a_process_that_imported_jupyters_kernel_without_being_one_writes_lines():
    """A test runner or script that drives a notebook imports ipykernel and IPython; its own output is a log."""
    code = "import ipykernel.ipkernel, IPython; from tunelab import progress; print(progress.watched())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_verbose_is_a_flag_of_search_resume_and_retrain():
    for argv in (["search", "fashion_cnn"], ["resume", "run"], ["retrain", "run"]):
        assert parser().parse_args([*argv, "--verbose"]).verbose and not parser().parse_args(argv).verbose


@pytest.mark.slow
def test_a_search_in_a_log_shows_a_line_per_trial_and_verbose_its_epochs(env, fixture_root, capsys, monkeypatch):
    options = ["--trials", "3", "--max-epochs", "4", "--concurrency", "1", "--wandb", "disabled"]
    try:
        run = tunelab.search(
            SMALL_CNN, name="plain", data_dir=fixture_root, trials=3, max_epochs=4, concurrency=1, wandb="disabled"
        )  # fmt: skip  (the API keeps its Ray up for the next search)
        plain = capsys.readouterr().out.splitlines()
        assert main(["--data-dir", str(fixture_root), "search", str(SMALL_CNN), "--name", "verbose", "--verbose",
                     *options]) == 0  # fmt: skip
        verbose = capsys.readouterr().out.splitlines()
    finally:
        cluster.keep_local(False)

    board = run.leaderboard.set_index("trial_id")
    ended = [END.match(line) for line in plain if END.match(line)]
    assert sorted(m[1] for m in ended) == sorted(board.index)  # one line per trial, each once
    for m in ended:
        assert m[2] == board.loc[m[1], "status"] and int(m[3]) == board.loc[m[1], "epochs"]
    assert ended[-1].string.endswith(f"; best val_acc={board['val_acc'].max():.4g}; 3 of 3 trials done")
    assert not [line for line in plain if EPOCH.match(line) or " started: " in line]

    histories = leaderboard.histories(tunelab.open("verbose").stored)
    epochs = [m for line in verbose if (m := EPOCH.match(line))]
    assert sorted((m[1], int(m[2])) for m in epochs) == sorted(
        (trial_id, epoch) for trial_id, df in histories.items() for epoch in df["epoch"])  # fmt: skip
    assert sum(" started: " in line for line in verbose) == sum(bool(END.match(line)) for line in verbose) == 3

    # the retrain: in a log a line per model, with --verbose its epochs too, in a terminal a bar over all epochs
    run.retrain(seeds=2, epochs=2, wandb="disabled")
    lines = capsys.readouterr().out.splitlines()
    models = [line for line in lines if line.startswith("retrain rank 1 ")]
    assert len(models) == 2 and not [line for line in lines if "epoch 1/2" in line]
    table = pd.read_csv(run.stored.retrain_file)
    for seed, line in enumerate(models):
        assert re.fullmatch(rf"retrain rank 1 \(trial \S+\) seed {seed}: completed 2 epochs on [\d,]+ examples in "
                            rf"\d+ s: test_acc={table.loc[seed, 'test_acc']:.4g}", line), line  # fmt: skip
    run.retrain(seeds=1, epochs=2, wandb="disabled", verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("  epoch")] == ["  epoch 1/2", "  epoch 2/2"]
    monkeypatch.setattr(sys, "stdout", Terminal())
    run.retrain(seeds=2, epochs=3, wandb="disabled")
    drawn = sys.stdout.getvalue()
    assert "retrain rank 1 seed 1: 100%" in drawn and "6/6" in drawn and "train_loss=" in drawn
    assert "completed" not in drawn  # no line per model under the bar
