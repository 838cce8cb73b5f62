"""`tunelab compare A B`: the retrained models of two runs on the same test split, in one ROC figure (a
panel per kind and the micro-average for soft labels) with the AUCs in the legends, and a table."""

from pathlib import Path

import numpy as np
import pandas as pd

import trainables
from tunelab import UserError, data as datasets, figures, retrain, training
from tunelab.runs import Run


def _predictions(run: Run) -> tuple[np.ndarray, np.ndarray, dict, datasets.Data]:
    """The run's best retrained model (rank 1, seed 0) on the test split: probabilities, labels, test metrics."""
    module = trainables.get(run.spec.trainable)
    if not hasattr(module, "predict_proba"):
        known = ", ".join(n for n in trainables.NAMES if hasattr(trainables.get(n), "predict_proba"))
        raise UserError(f"run {run.name!r}: compare needs a trainable with predict_proba ({known}), not {run.spec.trainable}")
    data = retrain.data(run)
    parts = retrain.retrained_parts(run, data)
    p, y = module.predict_proba(parts, data, "test")
    return p, y, training.evaluate(module, parts, data, "test"), data


def compare(a: Run, b: Run, root: Path) -> Path:
    """Write <root>/compare_<A>_vs_<B>/roc.png, auc.csv and auc.md; return the folder."""
    if a.spec.dataset != b.spec.dataset:
        raise UserError(f"runs {a.name!r} and {b.name!r} are on different data sets ({a.spec.dataset}, {b.spec.dataset})")
    results = {run.name: _predictions(run) for run in (a, b)}
    (pa, ya, _, data), (pb, yb, _, _) = results.values()
    if not np.array_equal(ya, yb):
        raise UserError(f"runs {a.name!r} and {b.name!r} were not tested on the same test split")
    out = root / f"compare_{a.name}_vs_{b.name}"
    out.mkdir(parents=True, exist_ok=True)
    labels = {name: f"{name} ({run.spec.trainable})" for name, run in ((a.name, a), (b.name, b))}
    figures.roc_figure({labels[n]: (p, y) for n, (p, y, _, _) in results.items()}, data.classes, out / "roc.png",
                       f"ROC curves on the {data.name} test split ({len(ya)} texts)")  # fmt: skip
    rows = {}
    for name, (p, y, metrics, _) in results.items():
        aucs = figures.aucs(*figures.roc_columns(p, y, data.classes))
        rows[labels[name]] = {f"AUC {k}": v for k, v in aucs.items()} | metrics
    table = pd.DataFrame(rows)
    table.index.name = "test split"
    table.to_csv(out / "auc.csv")
    (out / "auc.md").write_text(f"# {a.name} vs {b.name} on the {data.name} test split\n\n" + table.to_markdown(floatfmt=".4f") + "\n")
    return out
