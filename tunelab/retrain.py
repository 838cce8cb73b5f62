"""The best config(s) of a search, retrained on train+validation with several seeds and tested once.

The data, test splits included, is read once per retrain. Besides each model, what is tested comes from that
same read: the ensemble of all the models (the mean of their predicted probabilities, from their test outputs
kept in memory) and a trainable's classical baseline, fitted on the same training data.
"""

import time
from pathlib import Path

import pandas as pd
import torch
import yaml

import trainables
from tunelab import UserError, data as datasets, leaderboard, tracking, training
from tunelab.runs import Run

ENSEMBLE_HOOKS = ("outputs", "metrics", "ensemble")  # what a trainable needs for --ensemble (trainables/__init__.py)
ENSEMBLE, BASELINE = "ensemble.csv", "baseline.csv"  # in the retrain folder


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
    run: Run, top_k: int = 1, seeds: int = 3, epochs: int | None = None, wandb: str | None = None,
    subset: float | None = None, ensemble: bool = False,
) -> pd.DataFrame:
    """Write retrain/retrain.csv (one row per rank and seed) and the weights; with ``ensemble`` retrain/ensemble.csv
    (the test metrics of the mean of all the models' predicted probabilities); for a trainable with a
    ``classical_baseline``, retrain/baseline.csv. Return ``table``. ``subset``: the fraction of train+validation to
    train on (default: the search's); the test set is whole."""
    spec = run.spec
    module = trainables.get(spec.trainable)
    if ensemble and spec.trainable not in ensemble_trainables():
        raise UserError(f"--ensemble averages the class probabilities of classifiers: trainable {spec.trainable} "
                        f"(run {run.name!r}) has none; it works for {', '.join(ensemble_trainables())}")  # fmt: skip
    ranked = _ranked(run, top_k)
    if ensemble and len(ranked) * seeds < 2:
        raise UserError(f"--ensemble needs at least 2 models, not {len(ranked)} config(s) x {seeds} seed(s): "
                        f"give --seeds 2 or more")  # fmt: skip
    subset = run.options.subset if subset is None else subset
    data = datasets.load(spec.dataset, run.data_dir, "retrain", subset, training.device())
    configs = [leaderboard.config_of(row, run) | ({"epochs": epochs} if epochs else {}) for _, row in ranked.iterrows()]
    combine = module.ensemble(configs, data) if ensemble else None  # refuses members that cannot average, up front
    folder(run).mkdir(parents=True, exist_ok=True)
    for stale in (ENSEMBLE, BASELINE):  # an earlier retrain's
        (folder(run) / stale).unlink(missing_ok=True)
    mode = tracking.configure(wandb or run.options.wandb, run.dir)
    outputs = _retrain_all(run, module, list(zip(ranked["trial_id"], configs)), data, subset, seeds, mode)
    if combine and outputs:
        _test_ensemble(run, module, combine, outputs, configs[0], data)
    if hasattr(module, "classical_baseline"):
        _test_baseline(run, module, data)
    return table(run)


def ensemble_trainables() -> list[str]:
    """The trainables whose models average into an ensemble (classifiers with the ENSEMBLE_HOOKS)."""
    return [name for name in trainables.NAMES if all(hasattr(trainables.get(name), h) for h in ENSEMBLE_HOOKS)]


def _ranked(run: Run, top_k: int) -> pd.DataFrame:
    board = leaderboard.load(run)
    ranked = board[board[run.spec.metric].notna()].head(top_k)
    if ranked.empty:
        raise UserError(f"run {run.name!r} has no finished trial to retrain; see `tunelab leaderboard {run.name}`")
    return ranked


def _retrain_all(run: Run, module, chosen: list[tuple[str, dict]], data, subset: float, seeds: int, mode) -> dict:
    """Train and test each (trial id, config) with every seed. Return the test outputs of every model that
    completed, by the name of its weights (rank<k>_seed<s>), where the trainable has outputs."""
    rows, outputs = [], {}
    for rank, (trial_id, config) in enumerate(chosen, start=1):
        saved = {"trial_id": trial_id, "subset": subset, "config": config}
        (folder(run) / f"rank{rank}.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
        for seed in range(seeds):
            n_train = len(data.splits["train"][1])
            print(f"retrain rank {rank} (trial {trial_id}) seed {seed}: {config['epochs']} epochs on {n_train:,} "
                  f"examples", flush=True)  # fmt: skip
            wandb_name = f"{run.name}-rank{rank}-seed{seed}"
            with tracking.run(mode, run.spec.project, run.name, "retrain", wandb_name, config) as log:
                result = _train(module, config, data, seed, log)
            if "model" in result:
                torch.save(result.pop("model"), weights_path(run, rank, seed))
            if tested := result.pop("outputs", None):
                outputs[weights_path(run, rank, seed).stem] = tested
            rows.append({"rank": rank, "trial_id": trial_id, "seed": seed, **result})
            pd.DataFrame(rows).to_csv(folder(run) / "retrain.csv", index=False)  # each finished seed is kept
    return outputs


def _train(module, config: dict, data, seed: int, log) -> dict:
    start = time.perf_counter()
    try:
        parts = training.build(module, config, data, seed)
        for epoch in range(1, config["epochs"] + 1):
            metrics = training.epoch(module, parts, data, config, None)
            log.log(metrics | {"epoch": epoch})
            shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch_s")
            print(f"  epoch {epoch}/{config['epochs']}: {shown} ({metrics['epoch_s']:.0f} s)", flush=True)
        test, outputs = _test(module, parts, config, data)
    except training.Diverged as e:
        return {"status": f"failed: {e}", "duration_s": round(time.perf_counter() - start, 1)}
    log.log(test)
    return {"status": "completed", **test, "epochs": config["epochs"], "params": training.param_count(parts),
            "duration_s": round(time.perf_counter() - start, 1), "model": parts["model"].state_dict(),
            "outputs": outputs}  # fmt: skip


def _test(module, parts: dict, config: dict, data) -> tuple[dict[str, float], dict]:
    """The metrics of every test split; for a trainable with outputs, computed from them, which come back too."""
    metrics, outputs = {}, {}
    for split in data.test_splits:
        if hasattr(module, "outputs"):
            outputs[split] = module.outputs(parts, data, split)
            metrics |= training.named(module.metrics(outputs[split], data, split, config), split)
        else:
            metrics |= training.evaluate(module, parts, data, split)
    return metrics, outputs


def _test_ensemble(run: Run, module, combine, outputs: dict[str, dict], config: dict, data) -> None:
    """retrain/ensemble.csv: the test metrics of the mean of the models' probabilities, computed by the
    trainable's own metrics from the logits of that mean (``config``: a member's, for how logits are read)."""
    metrics = {}
    for split in data.test_splits:
        logits = combine([member[split] for member in outputs.values()])
        metrics |= training.named(module.metrics(logits, data, split, config), split)
    row = {"members": len(outputs), "models": " ".join(outputs), **metrics}
    pd.DataFrame([row]).to_csv(folder(run) / ENSEMBLE, index=False)


def _test_baseline(run: Run, module, data) -> None:
    """retrain/baseline.csv: the trainable's classical baseline fitted on the retrain's training split."""
    print(f"classical baseline: fitting on {len(data.splits['train'][1]):,} examples", flush=True)
    start = time.perf_counter()
    name, per_split = module.classical_baseline(data)
    metrics = {k: v for split, m in per_split.items() for k, v in training.named(m, split).items()}
    row = {"model": name, **metrics, "duration_s": round(time.perf_counter() - start, 1)}
    pd.DataFrame([row]).to_csv(folder(run) / BASELINE, index=False)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std of each test metric over seeds, per rank (``models``: how many seeds completed)."""
    done = table[table["status"] == "completed"]
    tests = [c for c in table if c.startswith("test_")]
    rows = []
    for (rank, trial_id), group in done.groupby(["rank", "trial_id"]):
        row = {"rank": rank, "trial_id": trial_id, "models": len(group)}
        for c in tests:
            row[c] = f"{group[c].mean():.4f} ± {group[c].std(ddof=1) if len(group) > 1 else 0:.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def table(run: Run) -> pd.DataFrame:
    """``summary`` of the run's retrain, with the ensemble (if tested) as a last row, rank ``ensemble``."""
    ranks, ensemble = summary(load(run)), load_ensemble(run)
    if ensemble is None:
        return ranks
    row = ensemble.iloc[0]
    tests = {c: f"{row[c]:.4f}" for c in ensemble if c.startswith("test_")}
    below = {"rank": "ensemble", "trial_id": "all", "models": row["members"], **tests}
    return pd.concat([ranks, pd.DataFrame([below])])


def first_try(run: Run, retrained: pd.DataFrame) -> pd.DataFrame | None:
    """What a student would try first (the classical baseline, if the retrain tested one) beside what the search
    found (``retrained``: the run's ``table``): the best config's mean ± std over seeds and the ensemble's, in the
    baseline's test metrics."""
    baseline = load_baseline(run)
    if baseline is None:
        return None
    metrics = [c for c in baseline if c.startswith("test_")]
    rows = [{"model": baseline["model"].iloc[0], **{m: f"{baseline[m].iloc[0]:.4f}" for m in metrics}}]
    for _, row in retrained.iterrows():
        if row["rank"] == 1:
            seeds = f"{row['models']} seed{'s' if row['models'] > 1 else ''}"
            label = f"{run.spec.trainable}, best config (trial {row['trial_id']}): mean ± std of {seeds}"
        elif row["rank"] == "ensemble":
            label = f"ensemble of all {row['models']} retrained models"
        else:
            continue
        rows.append({"model": label, **{m: row.get(m, "") for m in metrics}})
    return pd.DataFrame(rows)


def load(run: Run) -> pd.DataFrame | None:
    return _read(run, "retrain.csv", dtype={"trial_id": str})


def load_ensemble(run: Run) -> pd.DataFrame | None:
    return _read(run, ENSEMBLE)


def load_baseline(run: Run) -> pd.DataFrame | None:
    return _read(run, BASELINE)


def _read(run: Run, name: str, **options) -> pd.DataFrame | None:
    path = folder(run) / name
    return pd.read_csv(path, **options) if path.is_file() else None
