"""The best config(s) of a search, retrained on train+validation with several seeds and tested once.

The data, test splits included, is read once per retrain. Besides each model, what is tested comes from that
same read: the ensemble of all the models (the mean of their predicted probabilities, from their test outputs
kept in memory) and a trainable's classical baseline, fitted on the same training data.
"""

import dataclasses
import shutil
import time
from pathlib import Path

import pandas as pd

from tunelab import data as datasets, progress, tracking
from tunelab.errors import Failed, UserError
from tunelab.files import atomic_write
from tunelab.store import retrained
from tunelab.store.runs import StoredRun
from tunelab.trainable import protocol, training
from tunelab.trainable.protocol import Trainable


def retrain(
    run: StoredRun,
    top_k: int = 1,
    seeds: int = 3,
    epochs: int | None = None,
    wandb: str | None = None,
    subset: float | None = None,
    ensemble: bool = False,
    verbose: bool = False,
) -> pd.DataFrame:
    """Write retrain/retrain.csv (one row per rank and seed) and the weights; with ``ensemble`` retrain/ensemble.csv
    (the test metrics of the mean of all the models' predicted probabilities); for a trainable with a
    ``classical_baseline``, retrain/baseline.csv. Return ``table``. ``subset``: the fraction of train+validation to
    train on (default: all of it after a planned search, else the search's); the test set is whole. ``epochs``:
    default as ``_config`` says (a trial's best epoch where it peaked). Everything is checked before anything is
    written, and an earlier retrain's files are kept until this one has trained and tested every model.
    ``verbose``: a line per model start and per epoch (``_retrain_all``)."""
    spec = run.spec
    mode = tracking.mode(wandb or run.options.wandb)  # a mode that cannot work is refused before anything else
    trainable = protocol.load_trainable(spec.trainable)
    if ensemble and not trainable.ensembles:
        known = ", ".join(t.name for t in protocol.registered() if t.ensembles)
        raise UserError(f"--ensemble averages the class probabilities of classifiers: trainable {spec.trainable_name} "
                        f"(run {run.name!r}) has none; it works for {known}")  # fmt: skip
    ranked = run.ranked(top_k)
    if ensemble and len(ranked) * seeds < 2:
        raise UserError(f"--ensemble needs at least 2 models, not {len(ranked)} config(s) x {seeds} seed(s): "
                        f"give --seeds 2 or more")  # fmt: skip
    if subset is None:
        subset = 1.0 if run.plan else run.options.subset
    data = datasets.load_dataset(spec.dataset, run.data_dir, "retrain", subset, training.device())
    configs = [_config(run, row, epochs) for _, row in ranked.iterrows()]
    # refuses members that cannot average, up front (`and trainable.ensemble`: true, as checked above)
    combine = trainable.ensemble(configs, data) if ensemble and trainable.ensemble else None
    earlier = run.retrain_dir.is_dir() and any(run.retrain_dir.iterdir())
    out = _Staged(**{f.name: getattr(run, f.name) for f in dataclasses.fields(run)}) if earlier else run
    if earlier:
        print(f"{run.retrain_dir} holds an earlier retrain: this one is written to {out.retrain_dir} and replaces it "
              f"once every model is tested", flush=True)  # fmt: skip
        shutil.rmtree(out.retrain_dir, ignore_errors=True)  # a staging folder left by a retrain that was killed
    out.retrain_dir.mkdir(parents=True, exist_ok=True)
    try:
        chosen = list(zip(ranked["trial_id"], configs))
        outputs = _retrain_all(out, trainable, chosen, data, subset, seeds, mode, verbose)
        if combine and outputs:
            _test_ensemble(out, trainable, combine, outputs, configs[0], data)
        if trainable.classical_baseline:
            _test_baseline(out, trainable, data)
        if earlier:
            outcome(out)  # a retrain whose every model failed does not replace the earlier one
    except BaseException:
        if earlier:
            shutil.rmtree(out.retrain_dir, ignore_errors=True)
        raise
    if earlier:
        _replace(run.retrain_dir, out.retrain_dir)
    return retrained.table(run)


def expected(run: StoredRun) -> tuple[int, float] | None:
    """After a planned search, the retrain of the config ``retrain`` takes first, one seed: its epochs and seconds,
    from its trial's seconds per epoch scaled to the whole data and the retrain's threads (the plan's
    ``retrain_speedup``); None without a plan or a finished trial. Where the plan's own estimate is the space's
    average config, this is the chosen one's."""
    if run.plan is None or not run.leaderboard_file.is_file():
        return None
    try:
        row = run.ranked(1).iloc[0]
    except UserError:
        return None
    trained, seconds = int(row.get("epochs", 0) or 0), float(row.get("duration_s", 0) or 0)
    if not trained or not seconds:
        return None
    epochs = _epochs(run, row) or run.plan.retrain_epochs
    return epochs, epochs * seconds / trained / run.plan.subset / run.plan.retrain_speedup


def _peak(row: pd.Series) -> int | None:
    """A ranked trial's best epoch where it trained all its epochs and peaked before the last, else None."""
    best, trained = int(row.get("best_epoch", 0) or 0), int(row.get("epochs", 0) or 0)
    return best if row.get("status") == "completed" and 0 < best < trained else None


def _epochs(run: StoredRun, row: pd.Series) -> int | None:
    """A ranked trial's retrain epochs where ``--epochs`` gives none: its best epoch where it peaked (``_peak``: the
    retrain has no validation set to stop on, and later epochs overfit), else the plan's retrain epochs; None: the
    search's. The best epoch counts as it is on all the data, where an epoch has more steps: a model that peaked on
    less data peaks no sooner on more."""
    return _peak(row) or (run.plan.retrain_epochs if run.plan else None)


def _config(run: StoredRun, row: pd.Series, epochs: int | None) -> dict:
    """A ranked trial's config at its retrain epochs: ``epochs`` where given, else ``_epochs``'s (a line says so
    where it is the trial's best)."""
    if not epochs and (best := _peak(row)):
        print(f"trial {row['trial_id']} retrains for {best} epochs, its best on validation of the "
              f"{int(row['epochs'])} it trained (--epochs sets them)", flush=True)  # fmt: skip
    epochs = epochs or _epochs(run, row)
    return run.config_of(row) | ({"epochs": epochs} if epochs else {})


class _Staged(StoredRun):
    """A run whose retrain is written beside its earlier one, to replace it once it succeeds."""

    @property
    def retrain_dir(self) -> Path:
        return self.dir / "retrain.new"


def _replace(folder: Path, new: Path) -> None:
    """Put ``new`` in ``folder``'s place and delete the old one: two renames, so ``folder`` is always whole."""
    old = folder.with_name(f"{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    folder.rename(old)
    new.rename(folder)
    shutil.rmtree(old)


def _retrain_all(run: StoredRun, trainable: Trainable, chosen: list[tuple[str, dict]], data: datasets.Data,
                 subset: float, seeds: int, mode: str, verbose: bool = False) -> dict:  # fmt: skip
    """Train and test each (trial id, config) with every seed. Return the test outputs of every model that
    completed, by the name of its weights (rank<k>_seed<s>), where the trainable has outputs. Where someone watches
    (tunelab.progress) a bar runs over every model's epochs, named after the model it trains, with its last epoch's
    metrics; elsewhere one line per model that ends, with its test metric (a failed model's line is always
    shown); ``verbose`` adds a line per model start and per epoch."""
    rows, outputs = [], {}
    n_train = len(data.splits["train"][1])
    total = seeds * sum(config["epochs"] for _, config in chosen)
    bar = progress.bar(total, "epoch", desc="retrain") if progress.watched() else None
    trained = 0  # the epochs of the models that ended, failed ones' included

    def shown(epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        values = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch_s")
        if bar is not None:
            bar.set_postfix_str(values, refresh=False)
            bar.update()
        if verbose:
            progress.line(f"  epoch {epoch}/{epochs}: {values} ({metrics['epoch_s']:.0f} s)")

    try:
        for rank, (trial_id, config) in enumerate(chosen, start=1):
            for seed in range(seeds):
                model = f"rank {rank} (trial {trial_id}) seed {seed}"
                if bar is not None:
                    bar.set_description(f"retrain rank {rank} seed {seed}")
                if verbose:
                    progress.line(f"retrain {model}: {config['epochs']} epochs on {n_train:,} examples")
                wandb_name = f"{run.name}-rank{rank}-seed{seed}"
                project = run.spec.project
                with tracking.wandb_run(mode, project, run.name, "retrain", wandb_name, config, run.dir) as log:
                    result = _train(trainable, config, data, seed, log, shown)
                trained += config["epochs"]
                if bar is not None:
                    bar.update(trained - bar.n)  # the epochs a failed model did not train
                if bar is None or verbose or result["status"] != "completed":
                    progress.line(f"retrain {model}: {_ended(run.spec.metric, data, config, result, n_train)}")
                if "model" in result:
                    run.save_retrained(rank, seed, trial_id, config, subset, result.pop("model"))
                if tested := result.pop("outputs", None):
                    outputs[run.checkpoint_file(rank, seed).stem] = tested
                rows.append({"rank": rank, "trial_id": trial_id, "seed": seed, **result})
                atomic_write(run.retrain_file, pd.DataFrame(rows).to_csv(index=False))  # each finished seed is kept
    finally:
        if bar is not None:
            bar.close()
    return outputs


def _ended(metric: str, data: datasets.Data, config: dict, result: dict, n_train: int) -> str:
    """How a model's retrain ended: its status, epochs and time, and its test value of the search's metric on each
    test split."""
    if result["status"] != "completed":
        return f"{result['status']} ({result['duration_s']:.0f} s)"
    named = metric.removeprefix("val_")
    tested = ", ".join(f"{split}_{named}={result[f'{split}_{named}']:.4g}" for split in data.test_splits
                       if isinstance(result.get(f"{split}_{named}"), (int, float)))  # fmt: skip
    return f"completed {config['epochs']} epochs on {n_train:,} examples in {result['duration_s']:.0f} s" + (
        f": {tested}" if tested else ""
    )


def _train(trainable: Trainable, config: dict, data: datasets.Data, seed: int, log,
           shown=lambda epoch, epochs, metrics: None) -> dict:  # fmt: skip
    """Train and test one model; ``shown(epoch, epochs, metrics)`` after each epoch."""
    start = time.perf_counter()
    try:
        parts = training.build(trainable, config, data, seed)
        for epoch in range(1, config["epochs"] + 1):
            metrics = training.epoch(trainable, parts, data, config, None)
            log.log(metrics | {"epoch": epoch})
            shown(epoch, config["epochs"], metrics)
        test, outputs = _test(trainable, parts, config, data)
    except training.Diverged as e:
        return {"status": f"failed: {e}", "duration_s": round(time.perf_counter() - start, 1)}
    log.log(test)
    return {"status": "completed", **test, "epochs": config["epochs"], "params": training.param_count(parts),
            "duration_s": round(time.perf_counter() - start, 1), "model": parts["model"].state_dict(),
            "outputs": outputs}  # fmt: skip


def _test(trainable: Trainable, parts: dict, config: dict, data: datasets.Data) -> tuple[dict[str, float], dict]:
    """The metrics of every test split; for a trainable with outputs, computed from them, which come back too."""
    metrics: dict[str, float] = {}
    outputs: dict = {}
    for split in data.test_splits:
        if trainable.outputs and trainable.metrics:  # the protocol: both or neither
            outputs[split] = trainable.outputs(parts, data, split)
            metrics |= training.named(trainable.metrics(outputs[split], data, split, config), split)
        else:
            metrics |= training.evaluate(trainable, parts, data, split)
    return metrics, outputs


def _test_ensemble(run: StoredRun, trainable: Trainable, combine, outputs: dict[str, dict], config: dict,
                   data: datasets.Data) -> None:  # fmt: skip
    """retrain/ensemble.csv: the test metrics of the mean of the models' probabilities, computed by the
    trainable's own metrics from the logits of that mean (``config``: a member's, for how logits are read)."""
    assert trainable.metrics is not None  # an ensemble's trainable has it (the protocol)
    metrics: dict[str, float] = {}
    for split in data.test_splits:
        logits = combine([member[split] for member in outputs.values()])
        metrics |= training.named(trainable.metrics(logits, data, split, config), split)
    row = {"members": len(outputs), "models": " ".join(outputs), **metrics}
    atomic_write(run.ensemble_file, pd.DataFrame([row]).to_csv(index=False))


def _test_baseline(run: StoredRun, trainable: Trainable, data: datasets.Data) -> None:
    """retrain/baseline.csv: the trainable's classical baseline fitted on the retrain's training split."""
    print(f"classical baseline: fitting on {len(data.splits['train'][1]):,} examples", flush=True)
    start = time.perf_counter()
    assert trainable.classical_baseline is not None  # called only for a trainable with one
    name, per_split = trainable.classical_baseline(data)
    metrics = {k: v for split, m in per_split.items() for k, v in training.named(m, split).items()}
    row = {"model": name, **metrics, "duration_s": round(time.perf_counter() - start, 1)}
    atomic_write(run.baseline_file, pd.DataFrame([row]).to_csv(index=False))


def outcome(run: StoredRun) -> str | None:
    """A retrain that ended: a Failed where every model failed (diverged); a one-line warning where some did; else
    None."""
    rows = run.retrain_table()
    if rows is None:
        return None
    failed = rows[rows["status"] != "completed"]
    if not len(failed):
        return None
    row = failed.iloc[0]
    first = f"the first: rank {row['rank']} seed {row['seed']} (trial {row['trial_id']}) {row['status']}"
    if len(failed) == len(rows):
        raise Failed(f"every retrained model of run {run.name!r} failed ({len(rows)}); {first}")
    return f"warning: {len(failed)} of {len(rows)} retrained models failed; {first}"
