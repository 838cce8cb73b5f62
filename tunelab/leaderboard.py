"""Ray Tune's results -> one row per trial, best first -> leaderboard.csv / leaderboard.md / best.yaml."""

import math
from pathlib import Path

import pandas as pd
import yaml
from ray.tune import ExperimentAnalysis

from tunelab import UserError, pareto
from tunelab.runs import Run

_STATUS = {"TERMINATED": "completed", "ERROR": "failed", "RUNNING": "interrupted", "PENDING": "pending", "PAUSED": "interrupted"}


def histories(run: Run) -> dict[str, pd.DataFrame]:
    """Each trial's per-epoch metrics, by trial id."""
    return {trial_id: df for trial_id, (_, df) in _trials(run).items()}


def _trials(run: Run) -> dict:
    try:
        analysis = ExperimentAnalysis(run.experiment_path)
    except (ValueError, FileNotFoundError):
        raise UserError(f"{run.experiment_path} holds no search results yet; run `tunelab search {run.spec.name}`") from None
    frames = {k: _one_row_per_epoch(df) for k, df in analysis.trial_dataframes.items()}
    return {t.trial_id: (t, frames.get(t.trial_id, pd.DataFrame())) for t in analysis.trials}


def _one_row_per_epoch(df: pd.DataFrame) -> pd.DataFrame:
    """A trial resumed from a checkpoint older than its last results (Ray's saved state lags by up to a second)
    runs those epochs again: the later run of each epoch is the trial's history."""
    return df.drop_duplicates("epoch", keep="last").reset_index(drop=True) if "epoch" in df else df


def table(run: Run) -> pd.DataFrame:
    spec = run.spec
    multi = len(spec.metrics) > 1
    rows = []
    for trial_id, (trial, df) in _trials(run).items():
        row = {"trial_id": trial_id, "status": _STATUS.get(trial.status, trial.status.lower())}
        best = df.iloc[0:0]
        if multi and set(spec.metrics) <= set(df):
            # several objectives: a trial is its last epoch, the model as trained and the time that took
            best = df.dropna(subset=spec.metrics).tail(1)
        elif not multi and spec.metric in df:
            ranked = df.dropna(subset=[spec.metric])
            best = ranked.loc[[ranked[spec.metric].idxmax() if spec.mode == "max" else ranked[spec.metric].idxmin()]] if len(ranked) else best
        for m in spec.metrics:
            row[m] = float(best[m].iloc[0]) if len(best) and m in best else math.nan
        epochs = int(df["epoch"].max()) if "epoch" in df and len(df) else 0
        seconds = next((c for c in ("duration_s", "time_total_s") if c in df and len(df)), None)  # epochs, or wall time
        if row["status"] == "completed" and epochs < spec.max_epochs:
            row["status"] = "stopped early"
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
    """Write leaderboard.csv, leaderboard.md and best.yaml; return the table."""
    frame = table(run)
    frame.to_csv(run.dir / "leaderboard.csv", index=False)
    (run.dir / "leaderboard.md").write_text(_markdown(frame, run) + "\n")
    ok = frame[frame[run.spec.metric].notna()] if not frame.empty else frame
    if len(ok):
        best = ok.iloc[0]
        sampled = {k.removeprefix("config/"): _plain(v) for k, v in best.items() if k.startswith("config/") and pd.notna(v)}
        info = {
            "run": run.name,
            "experiment": run.spec.name,
            "trainable": run.spec.trainable,
            "dataset": run.spec.dataset,
            "trial_id": best["trial_id"],
            "metric": run.spec.metric,
            "value": float(best[run.spec.metric]),
            "best_epoch": int(best["best_epoch"]),
            "config": run.spec.config(sampled),
        }
        if len(run.spec.metrics) > 1:
            info["objectives"] = {m: _plain(best[m]) for m in run.spec.metrics}
        (run.dir / "best.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    return frame


def load(run: Run) -> pd.DataFrame:
    path = run.dir / "leaderboard.csv"
    text = {f"config/{k}": str for k, v in run.spec.config({}).items() if isinstance(v, str)}  # "3" stays "3"
    text["trial_id"] = str  # ids like "18201877" stay text
    return pd.read_csv(path, dtype=text) if path.is_file() else write(run)


def config_of(row: pd.Series, run: Run) -> dict:
    """The complete config of a leaderboard row."""
    return run.spec.config({k.removeprefix("config/"): _plain(v) for k, v in row.items() if k.startswith("config/") and pd.notna(v)})


def _plain(v):
    """numpy scalars -> Python values (for YAML and for configs)."""
    return v.item() if hasattr(v, "item") else v


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
            f"nearest the ideal point first: the first row is the one to hand in. Then the others by {spec.metric}.")  # fmt: skip


def render(run: Run, top: int) -> str:
    return _markdown(load(run), run, top)
