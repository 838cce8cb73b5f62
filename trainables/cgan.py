"""The conditional GAN: ``gan``'s networks and objectives, with the class label conditioning both networks.

Its evaluation adds ``class_acc``: the share of generated images that the Fréchet classifier assigns to the
class they were generated for, beside ``class_acc_real``, its accuracy on the real images. The report
draws one row of samples per class and, beside it, the samples of the latest retrained ``gan`` run on the
same data in the same results folder (when there is one).
"""

from pathlib import Path

import torch
import yaml

from trainables import gan
from tunelab.data import Data

DATASET = gan.DATASET
METRIC = gan.METRIC
MODE = gan.MODE
DEFAULTS = gan.DEFAULTS
PER_CLASS = 8  # samples per class in the report's grid

train_epoch = gan.train_epoch
evaluate = gan.evaluate
example_input = gan.example_input


def build(config: dict, data: Data) -> dict:
    return gan.make_parts(config, data, n_classes=len(data.classes))


def gan_beside(outdir: Path, data: Data) -> tuple[str, gan.GAN] | None:
    """The name and retrained model of the newest retrained ``gan`` run on ``data`` beside this report's run.

    A report is written to <results>/<run>/report; a retrain saves <results>/<run>/retrain/rank1.yaml (its
    config) and rank1_seed0.pt (its weights), and a search <results>/<run>/tunelab.yaml (its experiment).
    """
    found = []
    for run in Path(outdir).resolve().parents[1].iterdir():
        info, weights = run / "tunelab.yaml", run / "retrain" / "rank1_seed0.pt"
        if info.is_file() and weights.is_file():
            spec = yaml.safe_load(info.read_text())["spec"]
            if spec.get("trainable") == "gan" and spec.get("dataset", gan.DATASET) == data.name:
                found.append((weights.stat().st_mtime, run, weights))
    if not found:
        return None
    _, run, weights = max(found)
    config = yaml.safe_load((run / "retrain" / "rank1.yaml").read_text())["config"]
    model = gan.make_model(config, tuple(data.splits["test"][0].shape[1:]), n_classes=0).to(data.device)
    model.load_state_dict(torch.load(weights, map_location=data.device, weights_only=True))
    return run.name, model


def figures(parts: dict, data: Data, outdir: Path) -> dict[str, Path]:
    # plotting libraries load only for the report, not in every trial worker
    from matplotlib.figure import Figure

    from trainables.images import show_grid

    n_classes = len(data.classes)
    labels = torch.arange(n_classes, device=data.device).repeat_interleave(PER_CLASS)
    other = gan_beside(outdir, data)
    fig = Figure(figsize=(13 if other else 7, 8.5), layout="constrained")
    axes = fig.subplots(1, 2 if other else 1, squeeze=False)[0]
    show_grid(axes[0], parts["model"].sample(len(labels), labels, seed=1), PER_CLASS, "cGAN: one row per class")
    step = (data.splits["test"][0].shape[2] + 2)  # a grid row's height in px: image and frame
    axes[0].set_yticks([step * (i + 0.5) for i in range(n_classes)], data.classes)
    if other:
        name, model = other
        show_grid(axes[1], model.sample(len(labels), seed=1), PER_CLASS, f"GAN (run {name}): unconditional samples")
    path = Path(outdir) / "class_samples.png"
    fig.savefig(path, dpi=110)
    caption = "cGAN samples, one row per class" + (f", beside the samples of the GAN run {other[0]}" if other else
                                                    " (retrain a `gan` run in the same results folder to see its samples beside)")  # fmt: skip
    return {caption: path}
