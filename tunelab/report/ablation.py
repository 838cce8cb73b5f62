"""The report's ablation: the values of one hyperparameter searched over a list (a search file's ``ablation:`` key,
e.g. the variants of a network): the best trial of each value with its best epoch's metrics, and the
learning curves of all of them together, one figure for the training set and one for the held-out set."""

from pathlib import Path

import pandas as pd
from optuna.distributions import CategoricalDistribution

from tunelab.spec.spaces import Spec

SPLITS = {"train": "training set", "val": "held-out (validation) set"}


def section(spec: Spec, board: pd.DataFrame, histories: dict[str, pd.DataFrame], out: Path) -> list[tuple]:
    """Report blocks (see tunelab.report.report); none when no trial has a result."""
    assert spec.ablation is not None, "the report makes this section only for a spec with an ablation"
    key = f"config/{spec.ablation}"
    ok = board[board[spec.metric].notna()]
    if ok.empty:
        return []
    best = ok.drop_duplicates(key)  # the board is sorted best first
    searched = spec.params[spec.ablation]
    assert isinstance(searched, CategoricalDistribution)  # spaces checked it: "searched over a list of values"
    order = {v: i for i, v in enumerate(searched.choices)}
    best = best.sort_values(key, key=lambda column: column.map(order))
    others = [f"config/{k}" for k in spec.params if k != spec.ablation]
    curves, rows = {}, []
    for _, row in best.iterrows():
        history = curves[str(row[key])] = histories[row["trial_id"]]
        at_best = history[history["epoch"] == row["best_epoch"]].iloc[0]
        metrics = {c: at_best[c] for c in history if c.startswith(tuple(f"{s}_" for s in SPLITS))}
        rows.append(
            {
                spec.ablation: row[key],
                "trial_id": row["trial_id"],
                **{k.removeprefix("config/"): row[k] for k in others},
                "params": row["params"],
                "epochs": row["epochs"],
                "best epoch": row["best_epoch"],
                **metrics,
            }
        )

    def measured(split: str) -> set[str]:
        return {c.removeprefix(f"{split}_") for h in curves.values() for c in h if c.startswith(f"{split}_")}

    kinds = sorted(measured("train") & measured("val"))  # loss, acc, ...: one panel each
    blocks: list[tuple] = [("h2", f"Ablation of {spec.ablation}"),
              ("p", f"The best trial of each value of {spec.ablation} (by {spec.metric}), at its best epoch."),
              ("table", pd.DataFrame(rows))]  # fmt: skip
    for split, name in SPLITS.items():
        title = f"{name}: best trial of each {spec.ablation}"
        path = _curves(curves, split, kinds, title, out / f"ablation_{split}.png")
        blocks.append(("img", f"Learning curves on the {name}, one line per {spec.ablation}", path))
    return blocks


def _curves(curves: dict[str, pd.DataFrame], split: str, kinds: list[str], title: str, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * len(kinds), 4), layout="constrained")
    for ax, kind in zip(fig.subplots(1, len(kinds), squeeze=False)[0], kinds):
        for value, history in curves.items():
            ax.plot(history["epoch"], history[f"{split}_{kind}"], marker="o", markersize=3, label=value)
        ax.set(xlabel="epoch", ylabel=kind, title=kind)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path
