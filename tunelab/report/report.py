"""A run's report: search figures, the retrained model's figures, tables -> report.md and report.html."""

import html
import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import optuna
import pandas as pd
import torch
import torchinfo
from matplotlib.ticker import MaxNLocator

from tunelab import tracking
from tunelab.errors import UserError
from tunelab.files import atomic_write
from tunelab.report import ablation, analysis, comparison
from tunelab.spec import spaces
from tunelab.store import leaderboard, pareto, retrained, runs
from tunelab.store.runs import StoredRun

# pyplot picks its backend at the first figure, not at import, so this may follow the import
matplotlib.use("Agg")


def write(run: StoredRun, wandb: str | None = None) -> Path:
    mode = tracking.mode(wandb or run.options.wandb)  # a mode that cannot work is refused before anything is written
    out = run.report_dir
    out.mkdir(parents=True, exist_ok=True)
    spec = run.spec
    board = run.leaderboard()
    histories = leaderboard.histories(run)
    blocks: list[tuple] = [("h1", f"tunelab report: {run.name}")]
    where = f" ({spec.trainable})" if spec.trainable != spec.trainable_name else ""
    blocks.append(("p", f"Experiment `{spec.name}`: trainable `{spec.trainable_name}`{where} on `{spec.dataset}`, "
                        f"{spec.method} search of {len(board)} trials, up to {spec.max_epochs} epochs each, "
                        f"optimising {spec.metric} ({spec.mode}) on the validation split."))  # fmt: skip
    blocks += _search_section(run, board, histories, out)
    if spec.ablation:
        blocks += ablation.section(spec, board, histories, out)
    models = run.retrain_table()
    if models is None:
        blocks.append(("p", f"No retrained model yet: run `tunelab retrain {run.name}` for test metrics and figures."))
    else:
        blocks += _retrain_section(run, models, out)
    images = {rest[0]: rest[1] for kind, *rest in blocks if kind == "img"}

    atomic_write(out / "report.md", _markdown(blocks, out))
    atomic_write(out / "report.html", _html(blocks, out))
    wandb_name = f"{run.name}-report"
    with tracking.wandb_run(mode, spec.project, run.name, "report", wandb_name, {"run": run.name}, run.dir) as log:
        log.log_images(images)
    return out / "report.md"


def _search_section(run: StoredRun, board: pd.DataFrame, histories: dict, out: Path) -> list[tuple]:
    spec = run.spec
    blocks: list[tuple] = [("h2", "Search")]
    ok = board[board[spec.metric].notna()]
    if ok.empty:
        return blocks + [("p", "No trial finished an epoch.")]
    best = ok.iloc[0]
    multi = spec.multi_objective
    counts = board["status"].value_counts().to_dict()
    summary = (
        f"Trials: {', '.join(f'{n} {s}' for s, n in counts.items())}. "
        f"{'To hand in' if multi else 'Best'}: trial {best['trial_id']} with {_values(best, spec.metrics)} "
        f"at epoch {best['best_epoch']}."
    )
    blocks.append(("p", summary))
    chosen = runs.preferred_first(ok, spec.prefer).iloc[0]
    if chosen["trial_id"] != best["trial_id"]:
        blocks.append(("p", f"Of the {ok['tied'].eq(True).sum()} trials tied with the best (it included), "
                            f"`prefer: {spec.prefer}` takes trial {chosen['trial_id']} ({spaces.PREFER[spec.prefer]}): "
                            "best.yaml and `tunelab retrain` use its config."))  # fmt: skip
    baseline = _baseline_row(board, spec)
    if baseline is not None and pd.notna(baseline[spec.metric]):
        comparison = (
            f"Baseline (the assignment's configuration, trial {baseline['trial_id']}): "
            f"{_values(baseline, spec.metrics)}; the search's {'hand-in' if multi else 'best'} differs by "
            f"{_values(best[spec.metrics] - baseline[spec.metrics], spec.metrics, '+')}."
        )
        blocks.append(("p", comparison))
    if multi:
        reached = "" if not spec.targets else " It reaches the targets." if best["on_target"] else (
            " No Pareto-optimal trial reaches the targets: it is chosen from the whole front.")  # fmt: skip
        blocks.append(("p", leaderboard.order_note(spec) + " " + pareto.RULE + reached))
        front = _pareto_front(board, spec, out / "pareto_front.png")
        caption = (
            f"Pareto front: {spec.metric} against each other objective; the star is the trial to hand in, "
            f"trial {best['trial_id']}"
        )
        blocks.append(("img", caption, front))
    blocks += [("p", leaderboard.noise_note(spec)), ("table", leaderboard.shown(board.head(10), spec))]
    curves = _learning_curves(histories[best["trial_id"]], out / "learning_curves.png")
    blocks.append(("img", "Learning curves of the best trial", curves))
    trials = _all_trials(histories, spec.metric, out / "search_trials.png")
    blocks.append(("img", f"{spec.metric} per epoch of every trial", trials))
    importance = _importance(spec, ok, out / "importance.png")
    if importance:
        caption = (f"Hyperparameter importance: Optuna's fANOVA over the {len(ok)} trials with a {spec.metric} "
                   f"(a stopped trial at its best epoch)")  # fmt: skip
        blocks.append(("img", caption, importance))
    return blocks


def _retrain_section(run: StoredRun, models: pd.DataFrame, out: Path) -> list[tuple]:
    spec = run.spec
    ranks = retrained.table(run)
    blocks: list[tuple] = [("h2", "Retrained on train+validation, tested on the test set"), ("table", ranks)]
    ensemble = run.ensemble_table()
    if ensemble is not None:
        blocks.append(("p", f"Mean ± std over the seeds of each rank; the row `ensemble`: the mean of the predicted "
                            f"class probabilities of all {ensemble['members'].iloc[0]} retrained models "
                            f"({ensemble['models'].iloc[0]}), with equal weights."))  # fmt: skip
    blocks.append(("table", models))
    first_try = retrained.first_try(run, ranks)
    if first_try is not None:
        missing = [c for c in models if c.startswith("test_") and c not in first_try]
        left_out = f" The baseline has no {', '.join(missing)}: left out." if missing else ""
        blocks += [("h3", "What a student would try first"),
                   ("p", "A classical baseline fitted on the same training data and tested on the same test split(s), "
                         "beside the best retrained model (and the ensemble, if tested)." + left_out),
                   ("table", first_try)]  # fmt: skip
    if not run.has_retrained():
        return blocks
    best = comparison.retrained(run)
    trainable, data, parts = best.trainable, best.data, best.parts
    blocks.append(("h3", "Layers of the best model"))
    blocks.append(("table", layer_table(parts["model"], trainable.example_input(parts, data))))
    for caption, path in trainable.figures(parts, data, out).items():
        blocks.append(("img", caption, path))
    if spec.compare_with:
        blocks += _comparison(best, out)
    if trainable.image_classifier:
        blocks += analysis.section(parts["model"], data, out, trainable.predict)
    return blocks


def _comparison(best: comparison.Model, out: Path) -> list[tuple]:
    """The run's retrained model ``best`` beside those of the runs in its compare_with
    (``tunelab.report.comparison``)."""
    run = best.run
    models, missing = [best], []
    for name in run.spec.compare_with:
        try:
            other = runs.open_run(name, run.dir.parent)
        except UserError:
            missing.append(f"`{name}` (run `tunelab search {name}`, then retrain it)")
            continue
        if not other.has_retrained():
            missing.append(f"`{name}` (not retrained yet: `tunelab retrain {name}`)")
        elif other.spec.dataset != run.spec.dataset or comparison.hook([*(m.run for m in models), other]) is None:
            missing.append(f"`{name}` (trains `{other.spec.trainable_name}` on `{other.spec.dataset}`: not comparable)")
        elif other.name not in {m.run.name for m in models}:
            models.append(comparison.retrained(other))
    blocks = [("h3", f"Compared with {', '.join(run.spec.compare_with)}")]
    if missing:
        blocks.append(("p", f"Left out of the comparison: {'; '.join(missing)}."))
    if len(models) > 1:
        blocks += comparison.side_by_side(models, out).blocks()
    return blocks


def layer_table(model: torch.nn.Module, example: torch.Tensor | tuple) -> pd.DataFrame:
    """Every layer with its output shape and parameter count, and the total (via torchinfo)."""
    stats = torchinfo.summary(model, input_data=example, verbose=0, depth=8)
    rows = [
        {
            "layer": _path(layer),
            "type": layer.class_name,
            "output shape": str(layer.output_size),
            "parameters": layer.num_params,
        }
        for layer in stats.summary_list
        if layer.depth > 0 and not layer.children
    ]
    rows.append({"layer": "total", "type": "", "output shape": "", "parameters": stats.total_params})
    return pd.DataFrame(rows)


def _path(layer) -> str:
    """A layer's dotted name inside the model (generator.net.0), as its state_dict names it."""
    names = []
    while layer is not None and layer.depth > 0:
        names.append(layer.var_name)
        layer = layer.parent_info
    return ".".join(reversed(names))


def _number(v: float, sign: str = "") -> str:
    return f"{v:{sign},.0f}" if abs(v) >= 1000 else f"{v:{sign}.4g}"


def _values(row: pd.Series, metrics: list[str], sign: str = "") -> str:
    return ", ".join(f"{m} = {_number(row[m], sign)}" for m in metrics)


def _baseline_row(board: pd.DataFrame, spec) -> pd.Series | None:
    if not spec.baseline:
        return None
    match = board
    for k, v in spec.baseline.items():
        match = match[match[f"config/{k}"] == v]
    return match.iloc[0] if len(match) else None


def _learning_curves(history: pd.DataFrame, path: Path) -> Path:
    kinds = sorted({c.split("_", 1)[1] for c in history if c.startswith(("train_", "val_")) and c != "val_examples"})
    cols = min(len(kinds), 3)
    rows = math.ceil(len(kinds) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(kinds) :]:
        ax.remove()
    for ax, kind in zip(axes.flat, kinds):
        for split in ("train", "val"):
            if f"{split}_{kind}" in history:
                ax.plot(history["epoch"], history[f"{split}_{kind}"], marker="o", label=split)
        ax.set(xlabel="epoch", ylabel=kind, title=kind)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        ax.grid(alpha=0.3)
    return _save(fig, path)


def _all_trials(histories: dict, metric: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for trial_id, h in histories.items():
        if metric in h:
            ax.plot(h["epoch"], h[metric], marker=".", alpha=0.7, label=trial_id)
    ax.set(xlabel="epoch", ylabel=metric, title="every trial (early-stopped ones end early)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if len(histories) <= 12:
        ax.legend(fontsize=7)
    return _save(fig, path)


def _pareto_front(board: pd.DataFrame, spec: spaces.Spec, path: Path) -> Path:
    """The first objective against each other one: every trial, the Pareto-optimal ones marked, the targets
    dashed, the hand-in trial (the board's first row) named. ``board``: a leaderboard with a ``pareto`` column."""
    metrics, modes, targets = spec.metrics, spec.modes, spec.targets
    others = metrics[1:]
    fig, axes = plt.subplots(1, len(others), figsize=(5.2 * len(others), 4.2), squeeze=False)
    chosen = board.iloc[0]
    front, rest = board[board["pareto"]], board[~board["pareto"]]
    for ax, (other, mode) in zip(axes[0], zip(others, modes[1:])):
        ax.scatter(rest[other], rest[metrics[0]], s=28, facecolors="none", edgecolors="grey", label="dominated")
        ax.scatter(front[other], front[metrics[0]], s=36, color="tab:blue", label="Pareto-optimal (all objectives)")
        ax.scatter([chosen[other]], [chosen[metrics[0]]], s=260, marker="*", color="tab:red", zorder=3,
                   label=f"hand-in: trial {chosen['trial_id']}")  # fmt: skip
        ax.annotate(f"trial {chosen['trial_id']}", (chosen[other], chosen[metrics[0]]), textcoords="offset points",
                    xytext=(8, -14), color="tab:red")  # fmt: skip
        positive = (board[other] > 0).all() and board[other].max() > 20 * board[other].min()
        ax.set(xlabel=f"{other} ({mode}, better {'right' if mode == 'max' else 'left'})",
               ylabel=f"{metrics[0]} ({modes[0]})", xscale="log" if positive else "linear")  # fmt: skip
        if metrics[0] in targets:
            ax.axhline(targets[metrics[0]], color="tab:green", linestyle="--", label=f"target {metrics[0]}")
        if other in targets:
            ax.axvline(targets[other], color="tab:green", linestyle=":", label=f"target {other}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"Pareto front of {len(board)} trials: {len(front)} Pareto-optimal, hand-in trial {chosen['trial_id']}"
    )
    return _save(fig, path)


def importances(spec: spaces.Spec, board: pd.DataFrame) -> dict[str, float]:
    """Optuna's fANOVA importance of the searched hyperparameters over the board's trials, most important first.
    Seeded, so that a report written again shows the same; fANOVA rather than Optuna's default PED-ANOVA, which
    compares the best tenth of the trials with the rest: one or two trials in a search of a few dozen."""
    study = optuna.create_study(direction="maximize" if spec.mode == "max" else "minimize")
    for _, row in board.iterrows():
        params = {k: runs.plain(row[f"config/{k}"]) for k in spec.params}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=spec.params,
                                                  value=float(row[spec.metric])))  # fmt: skip
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=spec.seed)
    return optuna.importance.get_param_importances(study, evaluator=evaluator)


def _importance(spec: spaces.Spec, ok: pd.DataFrame, path: Path) -> Path | None:
    if len(ok) < 4 or not spec.params:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory"
    shares = pd.Series(importances(spec, ok)).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.35 * len(shares)))
    shares.plot.barh(ax=ax, color="tab:blue")
    ax.set_xlabel(f"share of the variance of {spec.metric}")
    for y, share in enumerate(shares):
        ax.annotate(f"{share:.2f}", (share, y), xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_xlim(0, max(1.0, shares.max() * 1.15))
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _markdown(blocks: list[tuple], out: Path) -> str:
    parts = []
    for kind, *rest in blocks:
        if kind.startswith("h"):
            parts.append(f"{'#' * int(kind[1])} {rest[0]}")
        elif kind == "p":
            parts.append(rest[0])
        elif kind == "table":
            parts.append(rest[0].to_markdown(index=False, floatfmt=".4g"))
        elif kind == "img":
            parts.append(f"![{rest[0]}]({Path(rest[1]).relative_to(out)})\n\n*{rest[0]}*")
    return "\n\n".join(parts) + "\n"


def _html(blocks: list[tuple], out: Path) -> str:
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:2em auto}"
        "table{border-collapse:collapse;font-size:90%}"
        "td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%}"
    )
    parts = ["<!doctype html><meta charset='utf-8'><title>tunelab report</title>", f"<style>{style}</style>"]
    for kind, *rest in blocks:
        if kind.startswith("h"):
            parts.append(f"<{kind}>{html.escape(rest[0])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(rest[0])}</p>")
        elif kind == "table":
            parts.append(rest[0].to_html(index=False, float_format="{:.4g}".format))
        elif kind == "img":
            src, caption = Path(rest[1]).relative_to(out), html.escape(rest[0])
            parts.append(f"<figure><img src='{src}'><figcaption>{caption}</figcaption></figure>")
    return "\n".join(parts) + "\n"
