"""Several runs' retrained models side by side, for `tunelab compare A B [C ...]` and a report's ``compare_with``.

What is drawn depends on what the models are: it is the first of these protocol hooks that every run's trainable
has (the order is the rule):

- ``predict_proba`` (classifiers): ROC curves of all the models on the same test split in one figure (a panel per
  class or kind and, with several, the micro-average; AUCs in the legends), and a table of the AUCs and the test
  metrics, a column per run;
- ``reconstruct`` (autoencoders): the same randomly chosen test images, then a row of reconstructions per run;
- ``sample`` (generative models): a panel of samples per run, ``SAMPLE_ROWS`` rows of a column per class (a
  conditional model's samples cycle through the classes, so its column j is of class j).

A VAE has both ``reconstruct`` and ``sample``: beside autoencoders and other VAEs its reconstructions are compared,
beside a GAN its samples. Each run's best retrained model (rank 1, seed 0) is built on the data set as it was
retrained on (a text model's vocabulary is its own). The runs must be on one data set, and those compared on test
images or test labels must have been tested on the same test split. Only ``tunelab.store.runs`` reads the results
folder; the models are handed what they draw.
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from tunelab import data as datasets, figures, files
from tunelab.errors import UserError
from tunelab.store.runs import StoredRun
from tunelab.trainable import protocol, training

HOOKS = {"predict_proba": "ROC curves", "reconstruct": "reconstructions", "sample": "samples"}  # in the rule's order
SAMPLE_ROWS = 4  # rows of samples per run, each a column per class
SAMPLE_SEED = 1  # the seed of every run's samples (the models' own figures use it too)


@dataclass(frozen=True)
class Model:
    """A run's best retrained model: its parts (in eval mode) and the data set it was built on."""

    run: StoredRun
    data: datasets.Data
    parts: dict

    @property
    def trainable(self) -> protocol.Trainable:
        return protocol.load_trainable(self.run.spec.trainable)

    @property
    def label(self) -> str:
        return f"{self.run.name} ({self.run.spec.trainable_name})"


@dataclass(frozen=True)
class Comparison:
    """What ``side_by_side`` drew: the hook it used, {caption: PNG}, and a table (ROC: AUCs and test metrics);
    ``folder``: where ``compare`` wrote them (tunelab.api.compare)."""

    hook: str
    figures: dict[str, Path]
    table: pd.DataFrame | None = None
    folder: Path | None = None

    def blocks(self) -> list[tuple]:
        """As a report's blocks: the figures, then the table."""
        images = [("img", caption, path) for caption, path in self.figures.items()]
        return images + ([("table", self.table)] if self.table is not None else [])


def retrained(run: StoredRun) -> Model:
    """The run's best retrained model (rank 1, seed 0) on the data set as it was retrained on."""
    data = run.retrained_data(training.device())
    return Model(run, data, training.rebuild(run.retrained(), data))


def hook(runs: list[StoredRun]) -> str | None:
    """The hook that the comparison of ``runs`` uses: the first of ``HOOKS`` that every run's trainable has."""
    loaded = [protocol.load_trainable(run.spec.trainable) for run in runs]
    return next((h for h in HOOKS if all(getattr(t, h) is not None for t in loaded)), None)


def check(runs: list[StoredRun]) -> str:
    """The hook of ``runs``, or a UserError naming them: fewer than two runs, a run twice, several data sets, or
    trainables that share no hook."""
    names = [run.name for run in runs]
    if len(set(names)) < 2 or len(set(names)) < len(names):
        raise UserError(f"compare needs two or more different runs, not {' '.join(names) or 'none'}")
    if len({run.spec.dataset for run in runs}) > 1:
        on = ", ".join(f"{run.name} ({run.spec.dataset})" for run in runs)
        raise UserError(f"runs on different data sets do not compare: {on}")
    found = hook(runs)
    if found is None:
        kinds = "; ".join(f"{run.name} ({run.spec.trainable_name}: {_kinds(run)})" for run in runs)
        raise UserError(f"runs of different kinds do not compare: {kinds}. Each kind compares on its own: "
                        f"{', '.join(f'{what} ({h})' for h, what in HOOKS.items())}")  # fmt: skip
    return found


def _kinds(run: StoredRun) -> str:
    t = protocol.load_trainable(run.spec.trainable)
    return ", ".join(what for h, what in HOOKS.items() if getattr(t, h) is not None) or "no comparison"


def side_by_side(models: list[Model], outdir: Path) -> Comparison:
    """The models of several runs side by side, by the first hook they all have (see the module's docstring);
    the figure is written to ``outdir`` as compare_<roc|reconstructions|samples>.png."""
    found = check([m.run for m in models])
    draw = {"predict_proba": _roc, "reconstruct": _reconstructions, "sample": _samples}[found]
    return draw(models, Path(outdir))


def compare(runs: list[StoredRun], root: Path) -> tuple[Path, Comparison]:
    """`tunelab compare`: the comparison of ``runs`` in ``<root>/compare_<A>_vs_<B>[_vs_<C>...]/``, its table (if
    any) also as auc.csv and auc.md there; checked before any model is loaded."""
    check(runs)
    missing = [run.name for run in runs if not run.has_retrained()]
    if missing:
        raise UserError(f"not retrained yet: {', '.join(missing)}; run `tunelab retrain {missing[0]}` first")
    out = files.writable(root / ("compare_" + "_vs_".join(run.name for run in runs)))
    result = side_by_side([retrained(run) for run in runs], out)
    if result.table is not None:
        result.table.to_csv(out / "auc.csv", index=False)
        title = f"# {' vs '.join(run.name for run in runs)} on the {runs[0].spec.dataset} test split"
        (out / "auc.md").write_text(f"{title}\n\n{result.table.to_markdown(index=False, floatfmt='.4f')}\n")
    return out, result


def _same_test_split(models: list[Model]) -> None:
    first = models[0]
    for m in models[1:]:
        a, b = first.data.splits["test"][1].cpu(), m.data.splits["test"][1].cpu()
        if a.shape != b.shape or not torch.equal(a, b):
            raise UserError(f"runs {first.run.name!r} and {m.run.name!r} were not tested on the same test split "
                            f"(their data: {first.run.data_dir}, {m.run.data_dir})")  # fmt: skip


def _names(models: list[Model]) -> str:
    return ", ".join(m.run.name for m in models)


def _roc(models: list[Model], outdir: Path) -> Comparison:
    _same_test_split(models)
    data = models[0].data
    predicted = {}
    for m in models:
        proba = m.trainable.predict_proba
        assert proba is not None  # check() chose the hook that every model has; so below
        predicted[m.label] = proba(m.parts, m.data, "test")
    n = len(data.splits["test"][1])
    path = figures.roc_figure(predicted, data.classes, outdir / "compare_roc.png",
                              f"ROC curves on the {data.name} test split ({n} examples)")  # fmt: skip
    rows = {}
    for m in models:
        p, y = predicted[m.label]
        aucs = figures.aucs(*figures.roc_columns(p, y, data.classes))
        tested = training.evaluate(m.trainable, m.parts, m.data, "test")
        rows[m.label] = {f"AUC {k}": v for k, v in aucs.items()} | tested
    table = pd.DataFrame(rows).rename_axis("metric").reset_index()
    return Comparison("predict_proba", {f"ROC curves of {_names(models)} on the same test split": path}, table)


def _reconstructions(models: list[Model], outdir: Path) -> Comparison:
    _same_test_split(models)
    x, _ = figures.shown_images(models[0].data)
    rows = {"input": x / 255}  # uint8 images (the protocol's) in [0, 1]
    for m in models:
        reconstruct = m.trainable.reconstruct
        assert reconstruct is not None
        rows[m.run.name] = reconstruct(m.parts["model"], x)
    path = figures.image_rows(rows, outdir / "compare_reconstructions.png")
    return Comparison("reconstruct", {f"The same test images reconstructed by {_names(models)}, a row each": path})


def _samples(models: list[Model], outdir: Path) -> Comparison:
    from matplotlib.figure import Figure

    classes = models[0].data.classes
    n = SAMPLE_ROWS * len(classes)
    fig = Figure(figsize=(0.55 * len(classes) * len(models) + 0.5, 0.6 * SAMPLE_ROWS + 0.6), layout="constrained")
    for ax, m in zip(fig.subplots(1, len(models), squeeze=False)[0], models):
        sample = m.trainable.sample
        assert sample is not None
        figures.show_grid(ax, sample(m.parts["model"], n, SAMPLE_SEED), len(classes), m.label)
    path = outdir / "compare_samples.png"
    fig.savefig(path, dpi=110)
    caption = (f"{n} samples of each of {_names(models)} (seed {SAMPLE_SEED}); a conditional model's columns are "
               f"the classes: {', '.join(classes)}")  # fmt: skip
    return Comparison("sample", {caption: path})
