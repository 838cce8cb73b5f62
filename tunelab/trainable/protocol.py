"""The trainable protocol: what a trainable module must have and may have, checked once when it is loaded.

A trainable is a plain-PyTorch module (no Ray, no W&B). ``load_trainable(ref)`` imports it (a name of the registry
``trainables.NAMES``, an importable module or a Python file of the user's), checks it against the protocol and
returns a ``Trainable``: every caller asks that object (``t.build``, ``t.outputs is None``, ``t.ensembles``),
never the module through ``getattr``. A missing or misspelled name, or one of the wrong type, is a
``ProtocolError`` naming the module and what is wrong.

Required:

- ``DATASET``: the data set it trains on by default (a name in ``tunelab.data``).
- ``METRIC``, ``MODE``: the metric a search optimises by default and ``"max"`` or ``"min"``.
- ``DEFAULTS``: every hyperparameter with a typed default (bool, int, float or str), ``epochs`` among them; a
  search space may override some of them, and a key that is not here is an error.
- ``build(config, data) -> parts``: a dict of named objects that have ``state_dict()`` and ``load_state_dict()``
  (``parts["model"]`` is the ``nn.Module`` that is evaluated and saved; optimizers and schedulers sit beside it).
- ``train_epoch(parts, data, config) -> metrics``: one pass over ``data.splits["train"]``; returns floats such as
  ``{"loss": ..., "acc": ...}`` (the harness prefixes them with ``train_``).
- ``evaluate(parts, data, split) -> metrics``: metrics on ``data.splits[split]`` (prefixed with the split's name:
  ``val_acc``, ``test_loss``, ...).
- ``figures(parts, data, outdir) -> {caption: path}``: the report's model-specific PNGs, drawn from
  ``data.splits["test"]``.

Optional (see ``OPTIONAL`` for each one's signature):

- ``EXTRA_DATASETS``: other data sets it reads (e.g. to pretrain on), checked before a search and shipped to a
  cluster's nodes with the search's own.
- ``CHOICES``: the values some string hyperparameters may take (``{"optimizer": ("sgd", "adam")}``); a search
  space that sets or searches another value is an error naming the file, the key and these values.
- ``RANGES``: the valid range of some numeric hyperparameters, each a string: ``">= 1"``, ``"> 0"``, ``"<= 1"``,
  ``"< 1"`` or an interval, ``"[0, 1)"`` (``[``/``]`` include the bound, ``(``/``)`` exclude it), e.g.
  ``{"batch_size": ">= 1", "dropout": "[0, 1)", "lr": "> 0"}``; a search space whose values reach outside is an
  error naming the file, the key and the range.
- ``METRICS``: every metric name a search of it may optimise, on any data set it takes: ``evaluate``'s prefixed with
  ``val_`` and ``train_epoch``'s with ``train_`` (``("val_acc", "val_loss", "train_loss")``), METRIC among them. A
  search space's ``metric`` is checked against them when it is read; without METRICS, by one epoch on a tiny data
  set before the search starts.
- ``IMAGE_CLASSIFIER = True``: ``parts["model"]`` maps uint8 images to class logits through a last linear layer;
  the report then adds the classifier analysis (t-SNE, activation maximisation, confusion matrix), running the
  model through ``predict(model, x) -> logits`` (default ``trainables.common.predict``).
- ``example_input(parts, data)``: what the model takes, for layer tables (default: one training input).
- ``prepare(values, data_dir)``: called before a search with every value each hyperparameter may take (a list
  per key); raises ``tunelab.UserError`` for what cannot work (e.g. missing pretrained weights). It may return the
  names of data sets that these values read besides ``DATASET`` and ``EXTRA_DATASETS`` (a backbone pretrained on
  MNIST): a search on a cluster ships them to the nodes too.
- ``outputs``, ``metrics`` and ``ensemble`` (all three or none), a classifier's, for ``tunelab retrain
  --ensemble``: ``outputs(parts, data, split) -> logits`` (N x outputs) and ``metrics(logits, data, split,
  config) -> metrics``, so that ``evaluate`` is ``metrics`` of ``outputs``; ``ensemble(configs, data) ->
  combine``, where ``combine(list of logits)`` gives the logits of the models' mean predicted probabilities. It
  raises ``tunelab.UserError`` where models of these configs do not average, before any is trained.
- ``classical_baseline(data) -> (name, {test split: metrics})``: a simple non-neural model fitted on
  ``data.splits["train"]`` and tested on every test split, with metrics named as ``evaluate``'s.
- What sets several runs' models side by side (``tunelab compare``, a report's ``compare_with``), by what the
  models are: ``predict_proba(parts, data, split) -> (probabilities, labels)`` (classifiers, numpy arrays: ROC
  curves), ``reconstruct(model, images) -> images in [0, 1]`` (autoencoders, of uint8 test images: their
  reconstructions), ``sample(model, n, seed) -> images in [0, 1]`` (generative models: n samples, seeded; a
  conditional model's labels cycle through the classes, image i of class i modulo their number). Runs are
  compared by the first of these that all their trainables have (``tunelab.report.comparison``).
"""

import difflib
import importlib
import inspect
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType

import trainables
from tunelab.errors import UserError

HYPERPARAMETER_TYPES = (bool, int, float, str)
REQUIRED_FUNCTIONS = {
    "build": ("config", "data"),
    "train_epoch": ("parts", "data", "config"),
    "evaluate": ("parts", "data", "split"),
    "figures": ("parts", "data", "outdir"),
}
OPTIONAL: dict[str, type | tuple[str, ...]] = {  # name: the arguments of a function, or the type of a constant
    "EXTRA_DATASETS": tuple,
    "CHOICES": dict,
    "RANGES": dict,
    "METRICS": tuple,
    "IMAGE_CLASSIFIER": bool,
    "predict": ("model", "x"),
    "example_input": ("parts", "data"),
    "prepare": ("values", "data_dir"),
    "outputs": ("parts", "data", "split"),
    "metrics": ("logits", "data", "split", "config"),
    "ensemble": ("configs", "data"),
    "classical_baseline": ("data",),
    "predict_proba": ("parts", "data", "split"),
    "reconstruct": ("model", "images"),
    "sample": ("model", "n", "seed"),
}
ENSEMBLE = ("outputs", "metrics", "ensemble")
NAMES = ("DATASET", "METRIC", "MODE", "DEFAULTS", *REQUIRED_FUNCTIONS, *OPTIONAL)


class ProtocolError(UserError):
    """A trainable module that does not follow the protocol."""


@dataclass(frozen=True)
class Range:
    """The numbers a hyperparameter may take: one of ``RANGES``, parsed (``Range.parse``)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False  # the bound itself is excluded
    high_open: bool = False

    @staticmethod
    def parse(text: str) -> "Range":
        """``">= 1"``, ``"> 0"``, ``"<= 1"``, ``"< 1"``, ``"[0, 1)"``, ...; a ValueError for anything else."""
        if m := re.fullmatch(r"\s*([<>]=?)\s*(\S+)\s*", text):
            op, bound = m.group(1), _bound(m.group(2))
            low, high = (bound, math.inf) if op[0] == ">" else (-math.inf, bound)
            return Range(low, high, op == ">", op == "<")
        if m := re.fullmatch(r"\s*([\[(])\s*([^,\s]+)\s*,\s*([^,\s\])]+)\s*([\])])\s*", text):
            r = Range(_bound(m.group(2)), _bound(m.group(3)), m.group(1) == "(", m.group(4) == ")")
            if r.low < r.high or (r.low == r.high and not (r.low_open or r.high_open)):
                return r
            raise ValueError(f"{text!r} is empty")
        raise ValueError(f"{text!r} is not a range; write '>= 1', '> 0', '<= 1', '< 1' or an interval '[0, 1)'")

    def __contains__(self, x: float) -> bool:
        above = self.low < x if self.low_open else self.low <= x
        return above and (x < self.high if self.high_open else x <= self.high)

    def describe(self, name: str) -> str:
        """The range in words: ``0 <= dropout < 1``, ``lr > 0``."""
        low = f"{self.low:g} {'<' if self.low_open else '<='} " if self.low > -math.inf else ""
        high = f" {'<' if self.high_open else '<='} {self.high:g}" if self.high < math.inf else ""
        if low and not high:  # one-sided: the name first (batch_size >= 1)
            return f"{name} {'>' if self.low_open else '>='} {self.low:g}"
        return f"{low}{name}{high}"


def _bound(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise ValueError(f"its bound {text!r} is not a number")
    return value


@dataclass(frozen=True)
class Trainable:
    """A checked trainable: the module's names, and None (or the default) for each optional one it lacks."""

    name: str
    module: ModuleType
    dataset: str
    metric: str
    mode: str
    defaults: dict
    build: Callable
    train_epoch: Callable
    evaluate: Callable
    figures: Callable
    predict: Callable
    example_input: Callable
    extra_datasets: tuple[str, ...] = ()
    choices: dict[str, tuple] = field(default_factory=dict)
    ranges: dict[str, Range] = field(default_factory=dict)
    metric_names: tuple[str, ...] = ()  # METRICS: what a search may optimise (none declared: found by running it)
    image_classifier: bool = False
    prepare: Callable | None = None
    outputs: Callable | None = None
    metrics: Callable | None = None
    ensemble: Callable | None = None
    classical_baseline: Callable | None = None
    predict_proba: Callable | None = None
    reconstruct: Callable | None = None
    sample: Callable | None = None

    @property
    def ensembles(self) -> bool:
        """Whether its models average into an ensemble (``tunelab retrain --ensemble``)."""
        return self.ensemble is not None

    @property
    def comparable(self) -> bool:
        """Whether its models can be set beside other runs' (``tunelab compare``, a report's ``compare_with``)."""
        return any(hook is not None for hook in (self.predict_proba, self.reconstruct, self.sample))


class UnknownTrainable(UserError):
    pass


def load_trainable(ref: str) -> Trainable:
    """A trainable by reference, checked: a registered name (``cnn_classifier``), an importable module
    (``mypkg.mymodel``) or the path of a Python file (``/home/me/hw3/my_cnn.py``). A file is imported again once it
    changed (a notebook's ``%%writefile`` of an edited model): each search's workers import it anew, and the checks,
    the calibration, the retrain and the report in this process must see what they ran."""
    edited = Path(ref).stat().st_mtime_ns if ref.endswith(".py") and Path(ref).is_file() else None
    return _load(ref, edited)


@cache
def _load(ref: str, edited: int | None) -> Trainable:
    if ref in trainables.NAMES:
        return check(ref, trainables.get(ref))
    if ref.endswith(".py"):
        return check(Path(ref).stem, _import_file(Path(ref)))
    try:
        return check(ref, importlib.import_module(ref))
    except ModuleNotFoundError as e:
        if e.name is None or not ref.startswith(e.name):  # the module itself imports something missing
            raise UserError(f"trainable {ref!r}: importing it failed: {e}") from None
    raise UnknownTrainable(
        f"unknown trainable {ref!r}; known: {', '.join(trainables.NAMES)}, an importable module "
        f"(mypkg.mymodel) or a Python file (my_model.py)"
    )


def _import_file(path: Path) -> ModuleType:
    """The module of a Python file, imported by its name with its folder on the path (so that it imports what lies
    beside it). On a cluster's nodes the file is not at its path: its folder is the working directory that Ray
    ships there (tunelab.engine.cluster), which is on the path."""
    if path.is_file():
        folder = str(path.parent)
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)
        if getattr(sys.modules.get(path.stem), "__file__", None):  # another folder's file of that name came first,
            del sys.modules[path.stem]  # or this one before an edit
        importlib.invalidate_caches()  # a file written since this process started is found
    try:
        module = importlib.import_module(path.stem)
    except ModuleNotFoundError as e:
        if e.name != path.stem:
            raise UserError(f"{path}: importing it failed: {e}") from None
        raise UnknownTrainable(f"no trainable file {path}") from None
    except SyntaxError as e:
        raise UserError(f"{e.filename}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:
        raise UserError(f"{path}: importing it failed: {type(e).__name__}: {e}") from None
    found = Path(module.__file__ or "").resolve()
    if path.is_file() and found != path.resolve():
        raise UserError(f"{path}: its name {path.stem!r} is taken by another module ({found}): rename the file")
    return module


def registered_names() -> tuple[str, ...]:
    """The names of the built-in trainables (``trainables.NAMES``)."""
    return tuple(trainables.NAMES)


def registered() -> list[Trainable]:
    return [load_trainable(name) for name in trainables.NAMES]


def check(name: str, module: ModuleType) -> Trainable:
    """``module`` as a Trainable, or a ProtocolError listing every way it departs from the protocol."""
    problems = []
    for constant, kind in (("DATASET", str), ("METRIC", str), ("MODE", str), ("DEFAULTS", dict)):
        if not hasattr(module, constant):
            problems.append(f"missing {constant} (a {kind.__name__})")
        elif not isinstance(getattr(module, constant), kind):
            problems.append(f"{constant} must be a {kind.__name__}, not {type(getattr(module, constant)).__name__}")
    if getattr(module, "MODE", "max") not in ("max", "min"):
        problems.append(f"MODE must be 'max' or 'min', not {module.MODE!r}")
    defaults = getattr(module, "DEFAULTS", None)
    if isinstance(defaults, dict):
        problems += [f"DEFAULTS[{k!r}] is {v!r}; a hyperparameter's default is a bool, int, float or str"
                     for k, v in defaults.items() if not isinstance(v, HYPERPARAMETER_TYPES)]  # fmt: skip
        if "epochs" not in defaults:
            problems.append("DEFAULTS has no 'epochs' (the harness sets it to the run's length)")
        choices = getattr(module, "CHOICES", {})
        for k, allowed in choices.items() if isinstance(choices, dict) else ():
            if k not in defaults:
                problems.append(f"CHOICES[{k!r}]: {k!r} is not in DEFAULTS")
            elif defaults[k] not in allowed:
                problems.append(f"CHOICES[{k!r}] does not hold its default {defaults[k]!r}")
    ranges = _ranges(getattr(module, "RANGES", {}), defaults, problems) if isinstance(defaults, dict) else {}
    names = getattr(module, "METRICS", None)
    if isinstance(names, tuple) and (not names or not all(isinstance(n, str) for n in names)):
        problems.append(f"METRICS must be a non-empty tuple of metric names (str), not {names!r}")
    elif isinstance(names, tuple) and getattr(module, "METRIC", names[0]) not in names:
        problems.append(f"METRICS does not hold METRIC {module.METRIC!r}")
    for function, arguments in REQUIRED_FUNCTIONS.items():
        if not hasattr(module, function):
            problems.append(f"missing {function}({', '.join(arguments)})")
        else:
            problems += _signature_problems(module, function, arguments)
    for optional, spec in OPTIONAL.items():
        if hasattr(module, optional):
            if isinstance(spec, type):
                value = getattr(module, optional)
                if not isinstance(value, spec):
                    problems.append(f"{optional} must be a {spec.__name__}, not {type(value).__name__}")
            else:
                problems += _signature_problems(module, optional, spec)
    present = [h for h in ENSEMBLE if hasattr(module, h)]
    if present and len(present) < len(ENSEMBLE):
        missing = [h for h in ENSEMBLE if h not in present]
        problems.append(
            f"has {', '.join(present)} but not {', '.join(missing)}: an ensemble needs all of {', '.join(ENSEMBLE)}"
        )
    problems += _misspelled(module)
    if problems:
        where = getattr(module, "__file__", None) or module.__name__
        listed = "\n".join(f"  - {p}" for p in problems)
        raise ProtocolError(f"trainable {name!r} ({where}) does not follow the protocol "
                            f"(tunelab/trainable/protocol.py):\n{listed}")  # fmt: skip

    from trainables import common

    found = {n: getattr(module, n) for n in (*REQUIRED_FUNCTIONS, *OPTIONAL) if hasattr(module, n) and n != "RANGES"}
    return Trainable(
        name=name, module=module, dataset=module.DATASET, metric=module.METRIC, mode=module.MODE,
        defaults=dict(module.DEFAULTS), predict=found.pop("predict", common.predict),
        example_input=found.pop("example_input", _first_training_input),
        extra_datasets=tuple(found.pop("EXTRA_DATASETS", ())), image_classifier=found.pop("IMAGE_CLASSIFIER", False),
        choices={k: tuple(v) for k, v in found.pop("CHOICES", {}).items()},
        ranges=ranges, metric_names=found.pop("METRICS", ()),
        **found,
    )  # fmt: skip


def _ranges(ranges, defaults: dict, problems: list[str]) -> dict[str, Range]:
    """RANGES parsed, each holding its default; what is wrong with them is added to ``problems``."""
    parsed = {}
    for k, text in ranges.items() if isinstance(ranges, dict) else ():
        default = defaults.get(k)
        if k not in defaults:
            problems.append(f"RANGES[{k!r}]: {k!r} is not in DEFAULTS")
        elif isinstance(default, bool) or not isinstance(default, (int, float)):
            problems.append(f"RANGES[{k!r}]: its default {default!r} is not a number (a string's values are CHOICES)")
        elif not isinstance(text, str):
            problems.append(f"RANGES[{k!r}] is {text!r}, not a string such as '>= 1', '> 0' or '[0, 1)'")
        else:
            try:
                parsed[k] = Range.parse(text)
            except ValueError as e:
                problems.append(f"RANGES[{k!r}]: {e}")
                continue
            if default not in parsed[k]:
                problems.append(f"RANGES[{k!r}] ({parsed[k].describe(k)}) does not hold its default {default!r}")
    return parsed


def _signature_problems(module: ModuleType, name: str, arguments: tuple[str, ...]) -> list[str]:
    value = getattr(module, name)
    expected = f"{name}({', '.join(arguments)})"
    if not callable(value):
        return [f"{name} must be a function {expected}, not a {type(value).__name__}"]
    try:
        parameters = list(inspect.signature(value).parameters.values())
    except (TypeError, ValueError):
        return []
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    takes_any = any(p.kind == p.VAR_POSITIONAL for p in parameters)
    if len(required) > len(arguments) or (len(positional) < len(arguments) and not takes_any):
        return [f"{name} takes ({', '.join(p.name for p in positional)}); the protocol calls it as {expected}"]
    return []


def _misspelled(module: ModuleType) -> list[str]:
    """Public names of the module's own that look like a protocol name but are not one (``predict_probs``)."""
    problems = []
    for attribute, value in vars(module).items():
        if attribute.startswith("_") or attribute in NAMES or isinstance(value, ModuleType):
            continue
        own = getattr(value, "__module__", module.__name__) == module.__name__ or attribute.isupper()
        close = difflib.get_close_matches(attribute, NAMES, n=1, cutoff=0.85)
        if own and close:
            problems.append(f"{attribute!r} is not part of the protocol: did you mean {close[0]}?")
    return problems


def _first_training_input(parts: dict, data):
    return data.splits["train"][0][:1].float()
