"""The best config(s) of a search, retrained on train+validation with several seeds and tested once."""

import time
from pathlib import Path

import pandas as pd
import torch
import yaml

import trainables
from tunelab import UserError, data as datasets, leaderboard, tracking, training
from tunelab.runs import Run


def folder(run: Run) -> Path:
    return run.dir / "retrain"


def weights_path(run: Run, rank: int, seed: int) -> Path:
    return folder(run) / f"rank{rank}_seed{seed}.pt"


def data(run: Run) -> datasets.Data:
    """The data set as the run's retrain saw it (its fraction of train+validation, so a text model's
    vocabulary is rebuilt the same), with the whole test set."""
    chosen = folder(run) / "rank1.yaml"
    saved = yaml.safe_load(chosen.read_text()) if chosen.is_file() else {}
    subset = saved.get("subset", run.options.subset)
    return datasets.load(run.spec.dataset, run.data_dir, "retrain", subset, training.device())


def retrained_parts(run: Run, data: datasets.Data, rank: int = 1, seed: int = 0) -> dict:
    """The parts of a retrained model, built from its rank<k>.yaml config with its weights, in eval mode."""
    weights, chosen = weights_path(run, rank, seed), folder(run) / f"rank{rank}.yaml"
    if not (weights.is_file() and chosen.is_file()):
        raise UserError(f"run {run.name!r} has no retrained model yet; run `tunelab retrain {run.name}` first")
    parts = training.build(trainables.get(run.spec.trainable), yaml.safe_load(chosen.read_text())["config"], data, 0)
    parts["model"].load_state_dict(torch.load(weights, map_location=data.device, weights_only=True))
    parts["model"].eval()
    return parts


def retrain(
    run: Run, top_k: int = 1, seeds: int = 3, epochs: int | None = None, wandb: str | None = None, subset: float | None = None
) -> pd.DataFrame:
    """Write retrain/retrain.csv (one row per rank and seed) and the weights; return mean and std per rank.
    ``subset``: the fraction of train+validation to train on (default: the search's); the test set is whole."""
    spec = run.spec
    board = leaderboard.load(run)
    ranked = board[board[spec.metric].notna()].head(top_k)
    if ranked.empty:
        raise UserError(f"run {run.name!r} has no finished trial to retrain; see `tunelab leaderboard {run.name}`")
    module = trainables.get(spec.trainable)
    subset = run.options.subset if subset is None else subset
    data = datasets.load(spec.dataset, run.data_dir, "retrain", subset, training.device())
    mode = tracking.configure(wandb or run.options.wandb, run.dir)
    folder(run).mkdir(parents=True, exist_ok=True)
    rows = []
    for rank, (_, row) in enumerate(ranked.iterrows(), start=1):
        config = leaderboard.config_of(row, run) | ({"epochs": epochs} if epochs else {})
        (folder(run) / f"rank{rank}.yaml").write_text(yaml.safe_dump({"trial_id": row["trial_id"], "subset": subset, "config": config}, sort_keys=False))
        for seed in range(seeds):
            n_train = len(data.splits["train"][1])
            print(f"retrain rank {rank} (trial {row['trial_id']}) seed {seed}: {config['epochs']} epochs on {n_train:,} examples", flush=True)
            with tracking.run(mode, spec.project, run.name, "retrain", f"{run.name}-rank{rank}-seed{seed}", config) as log:
                result = _train(module, config, data, seed, log)
            if "model" in result:
                torch.save(result.pop("model"), weights_path(run, rank, seed))
            rows.append({"rank": rank, "trial_id": row["trial_id"], "seed": seed, **result})
            pd.DataFrame(rows).to_csv(folder(run) / "retrain.csv", index=False)  # each finished seed is kept
    table = pd.DataFrame(rows)
    return summary(table)


def _train(module, config: dict, data, seed: int, log) -> dict:
    start = time.perf_counter()
    try:
        parts = training.build(module, config, data, seed)
        for epoch in range(1, config["epochs"] + 1):
            metrics = training.epoch(module, parts, data, config, None)
            log.log(metrics | {"epoch": epoch})
            shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch_s")
            print(f"  epoch {epoch}/{config['epochs']}: {shown} ({metrics['epoch_s']:.0f} s)", flush=True)
        test = {k: v for split in data.splits if split.startswith("test") for k, v in training.evaluate(module, parts, data, split).items()}
    except training.Diverged as e:
        return {"status": f"failed: {e}", "duration_s": round(time.perf_counter() - start, 1)}
    log.log(test)
    return {"status": "completed", **test, "epochs": config["epochs"], "params": training.param_count(parts),
            "duration_s": round(time.perf_counter() - start, 1), "model": parts["model"].state_dict()}  # fmt: skip


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std of each test metric over seeds, per rank."""
    done = table[table["status"] == "completed"]
    tests = [c for c in table if c.startswith("test_")]
    rows = []
    for (rank, trial_id), group in done.groupby(["rank", "trial_id"]):
        row = {"rank": rank, "trial_id": trial_id, "seeds": len(group)}
        for c in tests:
            row[c] = f"{group[c].mean():.4f} ± {group[c].std(ddof=1) if len(group) > 1 else 0:.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def load(run: Run) -> pd.DataFrame | None:
    path = folder(run) / "retrain.csv"
    return pd.read_csv(path, dtype={"trial_id": str}) if path.is_file() else None
