"""What every trainable must get right, run on a tiny in-memory data set: the registry's tests
(tests/test_trainables.py, parametrised over ``trainables.NAMES`` like timm's over its models) and
``tunelab check FILE.py`` (``run``) on a student's own file run the same checks.

``tiny_data`` shapes the data set like the trainable's ``DATASET`` (images of its size or short texts; its
classes; soft labels where the data set has them), with random content: the checks test that the code runs,
learns and saves, not what it learns. Each check in ``CHECKS`` is a function of (trainable, data) that raises
(an AssertionError with a message, or whatever the trainable raised) where the trainable fails it.
"""

import io
import math
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tunelab.data import SOURCES, Data
from tunelab.data.sources import ImageFolders
from tunelab.data.text import TextSource
from tunelab.errors import UserError
from tunelab.trainable import protocol
from tunelab.trainable.protocol import Trainable

SIZES = {"train": 64, "val": 32, "test": 32}  # examples per split of the tiny data set
WORDS = ("good", "bad", "film", "plot", "great", "awful", "the", "a", "!", "rain", "sun", "hot")


def tiny_data(trainable: Trainable | str) -> Data:
    """A tiny random data set shaped like the trainable's DATASET (or the data set of that name): uint8 images
    (N x 1 x H x W, as the data set's) or texts of a few words; int64 classes, or soft labels (N x K float32 shares
    that sum to 1) where the data set has them."""
    name = trainable if isinstance(trainable, str) else trainable.dataset
    if name not in SOURCES:
        raise UserError(f"unknown data set {name!r} (DATASET); known: {', '.join(sorted(SOURCES))}")
    source = SOURCES[name]
    k = len(source.classes)
    gen = torch.Generator().manual_seed(0)
    texts = isinstance(source, TextSource)
    soft = isinstance(source, TextSource) and source.soft_labels
    side = source.size if isinstance(source, ImageFolders) else 28

    def inputs(n: int):
        if not texts:
            return torch.randint(0, 256, (n, 1, side, side), dtype=torch.uint8, generator=gen)
        lengths = torch.randint(1, 12, (n,), generator=gen).tolist()
        words = [torch.randint(0, len(WORDS), (m,), generator=gen).tolist() for m in lengths]
        return np.array([" ".join(WORDS[i] for i in text) for text in words], dtype=object)

    def labels(n: int) -> torch.Tensor:
        if soft:
            shares = torch.rand(n, k, generator=gen) ** 4
            return shares / shares.sum(1, keepdim=True)
        return torch.arange(n) % k if texts else torch.randint(0, k, (n,), generator=gen)

    splits = {split: (inputs(n), labels(n)) for split, n in SIZES.items()}
    return Data("tiny", splits, list(source.classes), torch.device("cpu"))


def describe_data(data: Data) -> str:
    """What the tiny data set is, in words (``tunelab check``'s first line)."""
    x, y = data.splits["train"]
    what = "texts" if isinstance(x, np.ndarray) else f"images {'x'.join(map(str, x.shape[1:]))}"
    labels = "soft labels over" if y.is_floating_point() else "labels of"
    return f"{len(y)} training {what}, {labels} {len(data.classes)} classes"


def one_batch_config(trainable: Trainable, data: Data) -> dict:
    """The defaults, with the whole training split as one batch, no weight decay and one epoch."""
    return {**trainable.defaults, "batch_size": len(data.splits["train"][1]), "weight_decay": 0.0, "epochs": 1}


def assert_finite(metrics, what: str) -> None:
    assert isinstance(metrics, dict) and metrics, f"{what} returned {metrics!r}, not a dict of metrics"
    bad = {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isfinite(v))}
    assert not bad, f"{what}: metrics that are not finite floats: {bad}"


def build(t: Trainable, data: Data) -> None:
    """build(config, data) on the tiny data set gives a dict of parts with state_dict and load_state_dict,
    parts["model"] an nn.Module that takes example_input(parts, data)."""
    parts = t.build(one_batch_config(t, data), data)
    assert isinstance(parts, dict) and "model" in parts, f"build returned a {type(parts).__name__}, not a dict of parts"
    model = parts["model"]
    assert isinstance(model, nn.Module), f"parts['model'] is a {type(model).__name__}, not an nn.Module"
    lacking = [k for k, part in parts.items() if not (hasattr(part, "state_dict") and hasattr(part, "load_state_dict"))]
    assert not lacking, f"parts without state_dict() and load_state_dict(): {lacking}"
    example = t.example_input(parts, data)
    with torch.no_grad():
        model.eval()
        try:
            model(*example) if isinstance(example, tuple) else model(example)
        except Exception as e:
            raise AssertionError(f"parts['model'] on example_input(parts, data): {failure(e, t)}") from e


def train_epoch(t: Trainable, data: Data) -> None:
    """train_epoch(parts, data, config) on the tiny training split in one batch returns finite float metrics, each
    in METRICS (as train_<name>) where the trainable declares them."""
    config = one_batch_config(t, data)
    parts = t.build(config, data)
    metrics = t.train_epoch(parts, data, config)
    assert_finite(metrics, "train_epoch")
    assert_declared(t, metrics, "train", "train_epoch")


def evaluate(t: Trainable, data: Data) -> None:
    """evaluate(parts, data, split) on val and test returns finite float metrics, METRIC among them (as the split's
    metric without its prefix: val_acc is evaluate's acc), each in METRICS (as val_<name>) where it declares them."""
    assert t.metric.startswith("val_"), f"METRIC {t.metric!r} must be a validation metric (val_<name of evaluate's>)"
    parts = t.build(one_batch_config(t, data), data)
    for split in ("val", "test"):
        metrics = evaluate_split(t, parts, data, split)
        if split == "val":
            assert_declared(t, metrics, "val", "evaluate")
        key = t.metric.removeprefix("val_")
        assert key in metrics, f"evaluate(parts, data, {split!r}) has no {key!r} (METRIC {t.metric}): {sorted(metrics)}"


def assert_declared(t: Trainable, metrics: dict, prefix: str, what: str) -> None:
    """A search space's metric is checked against METRICS: a metric reported but not declared could not be searched."""
    missing = [f"{prefix}_{k}" for k in metrics if t.metric_names and f"{prefix}_{k}" not in t.metric_names]
    assert not missing, f"{what} reports {', '.join(missing)}, which METRICS does not list: add it there"


def evaluate_split(t: Trainable, parts: dict, data: Data, split: str) -> dict:
    metrics = t.evaluate(parts, data, split)
    assert_finite(metrics, f"evaluate(parts, data, {split!r})")
    return metrics


def check_search_metrics(spec, t: Trainable) -> None:
    """Refuse a search (a ``tunelab.spec.spaces.Spec`` of ``t``) whose metric ``t`` does not report, found by one epoch
    of the search's config on the tiny data set shaped like its data set: for a trainable that declares no METRICS."""
    from tunelab.spec.spaces import HARNESS_METRICS
    from tunelab.trainable import training

    data = tiny_data(spec.dataset)
    config = spec.config({}) | {"batch_size": len(data.splits["train"][1]), "epochs": 1}
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            reported = training.epoch(t, t.build(config, data), data, config, "val")
    except Exception as e:
        raise UserError(
            f"{spec.path}: metric: could not see what {t.name} reports, as one epoch on a tiny data set "
            f"failed: {failure(e, t)} (`tunelab check` says more; or declare METRICS)"
        ) from None
    known = ", ".join(dict.fromkeys([*reported, *HARNESS_METRICS]))
    for i, name in enumerate(spec.metrics):
        if name not in reported and name not in HARNESS_METRICS:
            key = "metric" if not spec.multi_objective else f"metric[{i}]"
            raise UserError(f"{spec.path}: {key}.name: {t.name} reports no metric {name!r}; allowed: {known}")


def gradients(t: Trainable, data: Data) -> None:
    """One train_epoch changes every parameter of parts["model"] that requires a gradient."""
    config = one_batch_config(t, data)
    parts = t.build(config, data)
    before = {n: p.detach().clone() for n, p in parts["model"].named_parameters()}
    t.train_epoch(parts, data, config)
    unchanged = [n for n, p in parts["model"].named_parameters() if p.requires_grad and torch.equal(before[n], p)]
    assert not unchanged, (f"no gradient reached {', '.join(unchanged)} (not used in the loss, or not given to the "
                           f"optimizer; set requires_grad=False on what stays frozen)")  # fmt: skip


def save_restore(t: Trainable, data: Data) -> None:
    """Every part's state_dict saves with torch.save and loads into freshly built parts through
    torch.load(weights_only=True), as a checkpoint is restored."""
    config = one_batch_config(t, data)
    parts, fresh = t.build(config, data), t.build(config, data)
    buffer = io.BytesIO()
    torch.save({key: part.state_dict() for key, part in parts.items()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    for key, part in fresh.items():
        part.load_state_dict(saved[key])


def figures(t: Trainable, data: Data) -> None:
    """figures(parts, data, outdir) writes PNGs into outdir and returns {caption: path}."""
    parts = t.build(one_batch_config(t, data), data)
    with tempfile.TemporaryDirectory() as outdir:
        written = t.figures(parts, data, Path(outdir))
        assert isinstance(written, dict) and written, f"figures returned {written!r}, not a dict of captions to paths"
        for caption, path in written.items():
            path = Path(path)
            assert caption and isinstance(caption, str), f"a figure's caption is {caption!r}"
            assert path.parent == Path(outdir) and path.suffix == ".png", f"{path} is not a .png file in outdir"
            assert path.is_file() and path.read_bytes().startswith(b"\x89PNG"), f"{path.name} is not a PNG written"


@dataclass(frozen=True)
class Check:
    name: str
    function: Callable[[Trainable, Data], None]
    needs: tuple[str, ...] = ()  # checks that must pass first (else this one is skipped by ``run``)

    def __call__(self, trainable: Trainable, data: Data) -> None:
        """Run the check seeded (the same random numbers every time), the caller's random stream left as it was."""
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.function(trainable, data)

    @property
    def doc(self) -> str:
        return " ".join((self.function.__doc__ or "").split())


CHECKS = (
    Check("build", build),
    Check("train_epoch", train_epoch, needs=("build",)),
    Check("evaluate", evaluate, needs=("build",)),
    Check("gradients", gradients, needs=("train_epoch",)),
    Check("save_restore", save_restore, needs=("build",)),
    Check("figures", figures, needs=("build",)),
)


@dataclass(frozen=True)
class Result:
    check: str
    status: str  # "ok", "FAILED" or "skipped"
    message: str = ""  # what failed, or why it was skipped

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        return self.status == "FAILED"

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.message else self.status


def check_trainable(ref: str, report: Callable[[Result], None] = lambda result: None,
                    ) -> tuple[Trainable | None, list[Result]]:  # fmt: skip
    """The protocol check (``protocol.load_trainable``, and a DATASET that tunelab knows) and every check of
    ``CHECKS`` on the trainable ``ref`` (a registered name, a module or a Python file) and its tiny data set;
    ``report`` is called with each result as it comes. A file that does not exist or a name that is not a trainable
    is a UserError."""
    results: list[Result] = []

    def add(result: Result) -> None:
        results.append(result)
        report(result)

    if ref.endswith(".py"):
        path = Path(ref)
        if not path.is_file():
            raise UserError(f"no such file: {path}" + ("" if path.parent.is_dir() else f" (no folder {path.parent})"))
        ref = str(path.resolve())
    try:
        trainable = protocol.load_trainable(ref)
        data = tiny_data(trainable)
    except protocol.UnknownTrainable:
        raise
    except UserError as e:  # a ProtocolError, or an import or a data set that fails
        add(Result("protocol", "FAILED", str(e)))
        for check in CHECKS:
            add(Result(check.name, "skipped", "the protocol check failed"))
        return None, results
    add(Result("protocol", "ok"))
    failed: dict[str, str] = {}  # a check that did not pass -> the failed check it comes down to
    for check in CHECKS:
        causes = list(dict.fromkeys(failed[n] for n in check.needs if n in failed))
        if causes:
            failed[check.name] = causes[0]
            add(Result(check.name, "skipped", f"{', '.join(causes)} failed"))
            continue
        try:
            check(trainable, data)
            add(Result(check.name, "ok"))
        except Exception as e:
            failed[check.name] = check.name
            add(Result(check.name, "FAILED", failure(e, trainable)))
    return trainable, results


def failure(e: Exception, trainable: Trainable) -> str:
    """What went wrong, in one line or a few: an AssertionError's message, else the exception and where in the
    trainable's own file it was raised."""
    if isinstance(e, AssertionError) and str(e):
        return str(e)
    message = f"{type(e).__name__}: {e}"
    own = str(Path(getattr(trainable.module, "__file__", None) or "").resolve())
    frames = [f for f in traceback.extract_tb(e.__traceback__) if str(Path(f.filename).resolve()) == own]
    if frames:
        message += f" ({Path(frames[-1].filename).name}:{frames[-1].lineno}, in {frames[-1].name})"
    return message
