"""Ray Tune's results -> one row per trial, best first -> leaderboard.csv / leaderboard.md / best.yaml."""

import math

import pandas as pd
import yaml
from ray.tune import ExperimentAnalysis

from tunelab import UserError, pareto
from tunelab.files import atomic_write
from tunelab.runs import Run, plain
from tunelab.spaces import Spec

_STATUS = {"TERMINATED": "completed", "ERROR": "failed", "RUNNING": "interrupted", "PENDING": "pending",
           "PAUSED": "interrupted"}


def histories(run: Run) -> dict[str, pd.DataFrame]:
    """Each trial's per-epoch metrics, by trial id."""
    return {trial_id: df for trial_id, (_, df) in _trials(run).items()}


def _trials(run: Run) -> dict:
    try:
        analysis = ExperimentAnalysis(run.experiment_path)
    except (ValueError, FileNotFoundError):
        raise UserError(f"{run.experiment_path} holds no search results yet; "
                        f"run `tunelab search {run.spec.argument}`") from None
    frames = {k: _one_row_per_epoch(df) for k, df in analysis.trial_dataframes.items()}
    return {t.trial_id: (t, frames.get(t.trial_id, pd.DataFrame())) for t in analysis.trials}


def _one_row_per_epoch(df: pd.DataFrame) -> pd.DataFrame:
    """A trial resumed from a checkpoint older than its last results (Ray's saved state lags by up to a second)
    runs those epochs again: the later run of each epoch is the trial's history."""
    return df.drop_duplicates("epoch", keep="last").reset_index(drop=True) if "epoch" in df else df


def end_status(spec: Spec, epochs: int) -> str:
    """The status of a trial that Ray ended after ``epochs``: completed, stopped early (ASHA stops a trial only at
    one of its rungs), or cut by the time budget (ended at another epoch, or before its first)."""
    if epochs >= spec.max_epochs:
        return "completed"
    return "cut by the time budget" if spec.time_budget_s and epochs not in spec.rungs else "stopped early"


def table(run: Run) -> pd.DataFrame:
    """One row per trial: its status, its metrics at the best epoch it reported (for several objectives, its last),
    its epochs, size, time and sampled config; best first (for several objectives, see tunelab.pareto)."""
    spec = run.spec
    multi = len(spec.metrics) > 1
    rows = []
    for trial_id, (trial, df) in _trials(run).items():
        row = {"trial_id": trial_id, "status": _STATUS.get(trial.status, trial.status.lower())}
        reported = df.dropna(subset=["best_epoch"]) if "best_epoch" in df else df.iloc[0:0]
        best = df[df["epoch"] == reported["best_epoch"].iloc[-1]].tail(1) if len(reported) else df.iloc[0:0]
        for m in spec.metrics:
            row[m] = float(best[m].iloc[0]) if len(best) and m in best else math.nan
        epochs = int(df["epoch"].max()) if "epoch" in df and len(df) else 0
        seconds = next((c for c in ("duration_s", "time_total_s") if c in df and len(df)), None)  # epochs, or wall time
        if row["status"] == "completed":
            row["status"] = end_status(spec, epochs)
        elif row["status"] == "pending" and epochs:  # Ray saves a trial stopped by Ctrl-C as pending
            row["status"] = "interrupted"
        row |= {
            "epochs": epochs,
            "best_epoch": int(best["epoch"].iloc[0]) if len(best) else 0,
            "params": int(df["params"].iloc[-1]) if "params" in df and len(df) else 0,
            "duration_s": round(float(df[seconds].iloc[-1]), 3) if seconds else 0.0,
        }
        row |= {f"config/{k}": v for k, v in trial.config.items()}
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    if multi:
        values, targets = frame[spec.metrics].to_numpy(float), [spec.targets.get(m) for m in spec.metrics]
        order, on_front = pareto.rank(values, spec.modes, targets)
        frame.insert(2 + len(spec.metrics), "pareto", on_front)
        if spec.targets:
            frame.insert(3 + len(spec.metrics), "on_target", pareto.on_target(values, spec.modes, targets))
        return frame.iloc[order].reset_index(drop=True)
    frame = frame.sort_values(spec.metric, ascending=spec.mode == "min", na_position="last", kind="stable")
    return frame.reset_index(drop=True)


def write(run: Run) -> pd.DataFrame:
    """Write leaderboard.csv, leaderboard.md and best.yaml from the search's results; return the table."""
    frame = table(run)
    atomic_write(run.leaderboard_file, frame.to_csv(index=False))
    atomic_write(run.dir / "leaderboard.md", _markdown(frame, run) + "\n")
    ok = frame[frame[run.spec.metric].notna()] if not frame.empty else frame
    if len(ok):
        best = ok.iloc[0]
        info = {
            "run": run.name,
            "experiment": run.spec.name,
            "trainable": run.spec.trainable,
            "dataset": run.spec.dataset,
            "trial_id": best["trial_id"],
            "metric": run.spec.metric,
            "value": float(best[run.spec.metric]),
            "best_epoch": int(best["best_epoch"]),
            "config": run.config_of(best),
        }
        if len(run.spec.metrics) > 1:
            info["objectives"] = {m: plain(best[m]) for m in run.spec.metrics}
        atomic_write(run.best_file, yaml.safe_dump(info, sort_keys=False))
    return frame


def _markdown(frame: pd.DataFrame, run: Run, top: int | None = None) -> str:
    if frame.empty:
        return f"# {run.name}\n\nNo trials yet."
    shown = frame.head(top) if top else frame
    shown = shown.rename(columns=lambda c: c.removeprefix("config/"))
    return f"# Leaderboard: {run.name}\n\n{order_note(run.spec)}\n\n" + shown.to_markdown(index=False, floatfmt=".4g")


def order_note(spec) -> str:
    """How the leaderboard is ordered, in a sentence."""
    if len(spec.metrics) == 1:
        return f"{spec.metric} ({spec.mode}), best first."
    objectives = ", ".join(f"{m} ({mode})" for m, mode in zip(spec.metrics, spec.modes))
    targets = f" (those reaching the targets {spec.targets} first)" if spec.targets else ""
    return (f"Objectives {objectives}, each trial at its last epoch. Pareto-optimal trials (`pareto`) first{targets}, "
            "nearest the ideal point first: the first row is the one to hand in. "
            f"Then the others by {spec.metric}.")


def render(frame: pd.DataFrame, run: Run, top: int) -> str:
    return _markdown(frame, run, top)
