"""Search-space files: YAML in the Weights & Biases sweep schema (plus tunelab's own keys) -> a validated Spec.

Every mistake is reported with the file, the key and what is allowed; nothing in the file is evaluated.
"""

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import optuna.distributions as od
import optuna.trial
import yaml

from tunelab.errors import UserError
from tunelab.trainable import protocol

# The built-in experiments, one YAML file each. The repository keeps them at its top level, search_spaces/, beside
# tunelab/ (a checkout, an editable install); a wheel (`pip install .` or `git+URL`) installs the same files inside the
# package as tunelab/search_spaces/ (pyproject's package-dir maps the one onto the other). Where tunelab/ has that
# folder it is the installed copy, else this is a checkout and the files are in the repository's search_spaces/.
_INSTALLED = Path(__file__).resolve().parents[1] / "search_spaces"
SPACES_DIR = _INSTALLED if _INSTALLED.is_dir() else Path(__file__).resolve().parents[2] / "search_spaces"

WANDB_KEYS = {"program", "command", "entity", "project", "name", "description",
              "method", "metric", "parameters", "early_terminate", "run_cap"}  # fmt: skip
TUNELAB_KEYS = {"trainable", "dataset", "max_epochs", "time_budget_s", "resources", "seed", "baseline", "priors",
                "ablation", "compare_with", "targets", "prefer"}  # fmt: skip
PRIOR_FROM = "from"  # the key of a prior that says where it came from (documentation, not a hyperparameter)
MAX_EPOCHS = 10  # the epochs of every trial where the file sets neither max_epochs nor epochs
RUN_CAP = 10  # the trials of a search whose file sets no run_cap (a grid: its size)
MAX_GRID = 10**6  # grid points a search may have: Optuna's GridSampler holds every one in memory
SEEDS = 2**32  # seeds are below this: numpy's and Optuna's random generators take no larger one
LOG_EXPONENT = 700  # log_uniform's exponents: e^700 and e^-700 are finite floats, and e^-700 is not 0
HARNESS_METRICS = ("params", "duration_s", "epoch_s")  # tunelab.engine.trial reports them of every trial
METHODS = {"bayes": "Optuna TPE", "random": "Optuna random sampling", "grid": "Optuna grid sampling"}
PREFER = {"best": "the best trial", "small": "the fewest parameters", "fast": "the least time per epoch"}  # of the tied
# W&B's hyperband keys: strict (stop more runs, as the original algorithm does) is accepted and ignored
HYPERBAND_KEYS = ("type", "min_iter", "eta", "max_iter", "s", "strict")
PARAM_KEYS = {"value", "values", "distribution", "min", "max", "q", "mu", "sigma", "a", "b", "probabilities"}
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform",
                 "log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values")  # fmt: skip
REFUSED = {  # W&B distributions that a bounded Optuna sampler cannot reproduce faithfully
    d: "it is unbounded or not log/uniform-shaped, which Optuna's samplers cannot reproduce"
    for d in ("normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta", "inv_log_uniform", "q_log_uniform")
}


@dataclass
class Spec:
    """A validated experiment: what to train, on what, what to search and how."""

    name: str
    path: Path
    trainable: str
    dataset: str
    method: str  # bayes | random | grid
    metrics: list[str]  # one metric, or several for a multi-objective search
    modes: list[str]  # "max" | "min", one per metric
    params: dict[str, od.BaseDistribution]  # searched hyperparameters
    constants: dict[str, Any]  # fixed overrides of the trainable's defaults
    defaults: dict[str, Any]  # the trainable's DEFAULTS when the spec was read (a run keeps them)
    max_epochs: int = MAX_EPOCHS
    run_cap: int = RUN_CAP
    time_budget_s: float | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    seed: int = 0
    hyperband: dict[str, int] | None = None  # {"min_iter", "eta"} -> ASHA
    baseline: dict[str, Any] | None = None  # a config evaluated first
    # configs evaluated next, after the baseline (tunelab.engine.priors): each a mapping of hyperparameters to values,
    # maybe with a "from" (where it came from); checked against the trainable here, against the space at search start
    priors: list[dict[str, Any]] = field(default_factory=list)
    ablation: str | None = None  # a hyperparameter searched over a list of values: the report compares its values
    project: str = "tunelab"
    # runs whose retrained models the report sets beside this one's
    compare_with: list[str] = field(default_factory=list)
    targets: dict[str, float] = field(default_factory=dict)  # metric -> value the trial to hand in should reach
    prefer: str = "best"  # of the trials tied with the best, the one best.yaml and retrain take (PREFER)

    @property
    def argument(self) -> str:
        """What ``tunelab search`` takes for this spec: a built-in experiment's name, else its file."""
        return self.name if self.path.resolve().parent == SPACES_DIR else str(self.path)

    @property
    def trainable_name(self) -> str:
        """The trainable as people name it: a registered name, a module's, or a Python file's stem."""
        return Path(self.trainable).stem if self.trainable.endswith(".py") else self.trainable

    @property
    def metric(self) -> str:
        return self.metrics[0]

    @property
    def multi_objective(self) -> bool:
        """Whether the search has several objectives (a Pareto front, no single best) rather than one."""
        return len(self.metrics) > 1

    @property
    def rungs(self) -> list[int]:
        """The epochs at which ASHA compares trials; none without early_terminate."""
        return asha_rungs(self.hyperband["min_iter"], self.hyperband["eta"], self.max_epochs) if self.hyperband else []

    @property
    def mode(self) -> str:
        return self.modes[0]

    def config(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """The complete config of one trial: the trainable's defaults, the constants, the sampled values (the one
        place where a config is merged)."""
        return {**self.defaults, **self.constants, **sampled, "epochs": self.max_epochs}

    def saved(self) -> dict:
        """The resolved spec as plain data: a run keeps it, and reopens from it alone (see ``restore``)."""
        saved = {f.name: getattr(self, f.name) for f in fields(self)}
        params = {k: od.distribution_to_json(d) for k, d in self.params.items()}
        return saved | {"path": str(self.path.resolve()), "params": params}


def restore(saved: dict) -> Spec:
    """The Spec that ``Spec.saved`` gave."""
    params = {k: od.json_to_distribution(d) for k, d in saved["params"].items()}
    return Spec(**saved | {"path": Path(saved["path"]), "params": params})


def experiments() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SPACES_DIR.glob("*.yaml"))}


def find(experiment: str) -> Path:
    """The file of an experiment given by name (a file in search_spaces/) or by path."""
    path = Path(experiment)
    if path.suffix in (".yaml", ".yml") and path.exists():  # a folder or an unreadable file: read_yaml says so
        return path
    known = experiments()
    if experiment not in known:
        raise UserError(
            f"unknown experiment {experiment!r}; known: {', '.join(known) or '(none)'} (files in {SPACES_DIR})"
        )
    return known[experiment]


def load_spec(experiment: str) -> Spec:
    """The validated spec of an experiment given by name (a file in search_spaces/) or by path."""
    path = find(experiment)
    return parse(read_yaml(path), path)


def read_yaml(path: Path) -> Any:
    """A YAML file the user gives or tunelab wrote (a search space, a config, a run's tunelab.yaml) as plain data;
    a file that cannot be read, is not UTF-8 text or is not YAML is a UserError naming it (and the line)."""
    try:
        return yaml.safe_load(Path(path).read_bytes().decode("utf-8"))
    except OSError as e:
        raise UserError(f"{path}: cannot read it: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not a YAML text file (byte {e.object[e.start]:#04x} at offset {e.start} is not "
                        f"UTF-8)") from None  # fmt: skip
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        what = getattr(e, "problem", None) or getattr(e, "reason", None) or e  # a ReaderError has a reason
        raise UserError(f"{where}: YAML syntax error: {' '.join(str(what).split())}") from None


class _Errors:
    """The mistakes found in one file, each reported as "<file>: <key>: <what is wrong>"; ``parse`` raises them all
    at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []

    def __call__(self, key: str, msg: str) -> None:
        self.messages.append(f"{self.path}: {key}: {msg}")

    def at(self, key: str) -> Callable[[str], None]:
        """A reporter of the mistakes of one key (a hyperparameter's entry), which names only what is wrong."""
        return lambda msg: self(key, msg)


@dataclass
class _Parameters:
    """The file's parameters, read: the searched ones, the fixed ones, the wrong ones (reported) and W&B's epochs."""

    params: dict[str, od.BaseDistribution] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    invalid: set[str] = field(default_factory=set)
    epochs: int | None = None


def parse(raw: Any, path: Path) -> Spec:
    """The Spec of a search-space file's contents ``raw``; every mistake in them is reported, all in one UserError."""
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the file must be a mapping of keys (method, metric, parameters, ...)")
    err = _Errors(path)
    for key in sorted(set(raw) - WANDB_KEYS - TUNELAB_KEYS, key=str):  # YAML keys may be numbers too
        err(key, f"unknown key; allowed: {', '.join(sorted(WANDB_KEYS | TUNELAB_KEYS))}")
    trainable, module = _trainable(raw.get("trainable"), path, err)
    dataset = _dataset(raw.get("dataset", module.dataset if module else None), module, err)
    method = _method(raw.get("method", "bayes"), err)
    metrics, modes = _metrics(raw.get("metric"), module, err)
    parameters = _parameters(raw.get("parameters", {}), module, method, err)
    params, constants, invalid = parameters.params, parameters.constants, parameters.invalid
    defaults = module.defaults if module else {}
    cpus, gpus = _resources(raw.get("resources", {}) or {}, err)
    spec = Spec(
        name=path.stem,
        path=path,
        trainable=trainable,
        dataset=dataset,
        method=method,
        metrics=metrics,
        modes=modes,
        params=params,
        constants=constants,
        defaults=dict(defaults),
        max_epochs=_max_epochs(raw, parameters.epochs, err),
        run_cap=_number(raw, "run_cap", _grid(params, err) if method == "grid" else RUN_CAP, err),
        time_budget_s=_number(raw, "time_budget_s", None, err, float),
        cpus=cpus,
        gpus=gpus,
        seed=_number(raw, "seed", 0, err, int, 0, SEEDS),
        hyperband=_hyperband(raw.get("early_terminate"), err),
        baseline=_baseline(raw.get("baseline"), params, {**defaults, **constants}, err, invalid) if module else None,
        priors=_priors(raw.get("priors", []), module, err) if module else [],
        ablation=_ablation(raw.get("ablation"), params, err),
        project=str(raw.get("project") or "tunelab"),
        compare_with=_compare_with(raw.get("compare_with", []), trainable, module, err),
        targets=_targets(raw.get("targets", {}), metrics, err),
        prefer=_prefer(raw.get("prefer", "best"), metrics, err),
    )
    if module and not params and not invalid:  # an invalid one is reported already
        err("parameters", "nothing is searched (each hyperparameter has one value): give at least one a list of "
            "values: [...] or a distribution")  # fmt: skip
    if err.messages:
        raise UserError("\n".join(err.messages))
    return spec


def _trainable(name: Any, path: Path, err: _Errors) -> tuple[Any, protocol.Trainable | None]:
    """The file's trainable (a Python file's name made absolute, beside the file) and, where it loads, its module."""
    if isinstance(name, str) and name.endswith(".py"):  # a file beside the search-space file
        name = str((path.parent / name).resolve())
    if not isinstance(name, str):
        err("trainable", f"required: one of {', '.join(protocol.registered_names())}, a module or a Python file")
        return name, None
    try:
        return name, protocol.load_trainable(name)
    except protocol.UnknownTrainable as e:
        err("trainable", str(e))
        return name, None


def _dataset(dataset: Any, module: protocol.Trainable | None, err: _Errors) -> Any:
    from tunelab.data import SOURCES, other_kind

    if not isinstance(dataset, str) or dataset not in SOURCES:  # a list is no key of SOURCES
        err("dataset", f"unknown data set {dataset!r}; known: {', '.join(sorted(SOURCES))}")
    elif module and (mismatch := other_kind(dataset, module.dataset)):
        err("dataset", mismatch)
    return dataset


def _method(method: Any, err: _Errors) -> Any:
    if not isinstance(method, str) or method not in METHODS:
        err("method", f"{method!r} is not allowed; allowed: {', '.join(f'{k} ({v})' for k, v in METHODS.items())}")
    return method


def _parameters(parameters: Any, module: protocol.Trainable | None, method: str, err: _Errors) -> _Parameters:
    """Each entry of ``parameters`` checked against the trainable's hyperparameters (without a trainable, none is
    checked: there are no defaults to check them against)."""
    read = _Parameters()
    if not isinstance(parameters, dict):
        err("parameters", "must be a mapping of hyperparameter names to value/values/distribution")
        return read
    if module is None:  # without a trainable there are no defaults to check the parameters against
        return read
    for name, p in parameters.items():
        key = f"parameters.{name}"
        if name == "epochs":  # a W&B sweep's epochs per run: here, the epochs of every trial (max_epochs)
            read.epochs = _epochs(p, method, err.at(key))
            continue
        if name not in module.defaults:
            err(key, f"{module.name} has no hyperparameter {name!r}; it has: {', '.join(module.defaults)}")
            continue
        parsed = _parameter(p, module.defaults[name], method, err.at(key), module.choices.get(name))
        if parsed is not _INVALID and name in module.ranges:
            parsed = _in_range(parsed, name, module.ranges[name], err.at(key))
        if parsed is _INVALID:
            read.invalid.add(name)
        elif isinstance(parsed, od.BaseDistribution):
            read.params[name] = parsed
        else:
            read.constants[name] = parsed
    return read


def _resources(resources: Any, err: _Errors) -> tuple[float, float]:
    """The CPUs and GPUs of every trial: the file's resources, else 1 CPU and no GPU."""
    if not isinstance(resources, dict):
        err("resources", "must be a mapping with the keys cpu and gpu (numbers; gpu may be a fraction)")
        resources = {}
    elif unknown := _unknown_keys(resources, ("cpu", "gpu")):
        err("resources", unknown)
    cpus, gpus = resources.get("cpu", 1), resources.get("gpu", 0)
    if not _finite(cpus) or cpus <= 0:
        err("resources.cpu", f"must be a number > 0, not {cpus!r}")
    if not gpus_ok(gpus):
        err("resources.gpu", f"must be {GPUS}, not {gpus!r}")
    return (float(cpus) if isinstance(cpus, (int, float)) else 1.0,
            float(gpus) if isinstance(gpus, (int, float)) else 0.0)  # fmt: skip


def _max_epochs(raw: dict, epochs: int | None, err: _Errors) -> int:
    """The epochs of every trial: max_epochs, or W&B's parameters.epochs (``epochs``), not both."""
    if epochs is not None and raw.get("max_epochs", epochs) != epochs:
        err(
            "parameters.epochs",
            f"{epochs} and max_epochs {raw['max_epochs']!r} both set the epochs per trial: keep one",
        )
    return _number(raw, "max_epochs", epochs or MAX_EPOCHS, err)


def _number(raw: dict, key: str, default: Any, err: _Errors, kind: type = int, low: float = 1,
            below: float = math.inf) -> Any:  # fmt: skip
    """The file's ``key``, a number of ``kind`` within [low, below); ``default`` where the file has none or (after
    reporting it) a wrong one."""
    value = raw.get(key, default)
    if value is None and default is None:
        return None
    if not _finite(value) or not low <= value < below or (kind is int and value != int(value)):
        upper = f" and < {below}" if below < math.inf else ""
        err(key, f"must be {'an integer' if kind is int else 'a number'} >= {low}{upper}, not {value!r}")
        return default
    return kind(value)


def _unknown_keys(mapping: dict, allowed: Collection[str]) -> str | None:
    """What is wrong with the keys of ``mapping`` that are not ``allowed``, or None where it has no other."""
    unknown = set(mapping) - set(allowed)
    if not unknown:
        return None
    return f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; allowed: {', '.join(sorted(allowed))}"


_INVALID = object()
_TYPES = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}


GPUS = "0, a fraction of one GPU (0.25, 0.5) or a whole number of GPUs"  # what a trial may ask for


def asha_rungs(min_iter: int, eta: int, max_epochs: int) -> list[int]:
    """ASHA's rungs: min_iter, min_iter * eta, ... below max_epochs."""
    rungs = []
    while min_iter < max_epochs:
        rungs.append(min_iter)
        min_iter *= eta
    return rungs


def gpus_ok(value: Any) -> bool:
    """Whether ``value`` is GPUs a trial may ask for (Ray packs fractions of one GPU, not of several)."""
    return _finite(value) and value >= 0 and (value <= 1 or value == int(value))


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (not a bool, not YAML's .inf or .nan)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _type_ok(value: Any, default: Any) -> bool:
    """Whether ``value`` may replace ``default`` (an int is a fine float; a bool is not a number)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def contains(distribution: od.BaseDistribution, key: str, value: Any) -> bool:
    """Whether ``distribution`` holds ``value``, by Optuna's public check of a trial's values."""
    try:
        optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, params={key: value},
                                  distributions={key: distribution})  # fmt: skip
    except (ValueError, TypeError):
        return False
    return True


def allowed(distribution: od.BaseDistribution) -> str:
    """What ``distribution`` holds, in words: "among [...]" or "in [low, high]"."""
    if isinstance(distribution, od.CategoricalDistribution):
        return f"among {list(distribution.choices)}"
    assert isinstance(distribution, od.IntDistribution | od.FloatDistribution)  # the others that parse makes
    return f"in [{distribution.low:g}, {distribution.high:g}]"


def _parameter(p: Any, default: Any, method: str, err: Callable[[str], None], allowed: tuple | None = None) -> Any:
    """An Optuna distribution, a constant value, or _INVALID after reporting what is wrong. ``allowed``: the
    values the trainable's CHOICES give this hyperparameter, if any."""
    if problem := _entry_problem(p) or _distribution_problem(_distribution(p), p, default, method, allowed):
        err(problem)
        return _INVALID
    dist = _distribution(p)
    if dist == "constant":
        return p["value"]
    if dist == "categorical":
        return od.CategoricalDistribution(p["values"])
    return _numeric(dist, p["min"], p["max"], p.get("q", 1), default)


def _entry_problem(p: Any) -> str | None:
    """What is wrong with a parameter's entry as a whole (not a mapping, keys that W&B's parameters lack), or None."""
    if not isinstance(p, dict):
        return f"must be a mapping with value, values or distribution (e.g. {{values: [1, 2]}}), not {p!r}"
    unknown = _unknown_keys(p, PARAM_KEYS)
    return f"{unknown} (nested parameters are not supported)" if unknown else None


def _distribution(p: dict) -> Any:
    """The distribution that a parameter's entry names, else W&B's for its keys: constant for value, categorical for
    values, int_uniform or uniform for min and max (integers or not); None where it has none of them."""
    dist = p.get("distribution") or ("constant" if "value" in p else "categorical" if "values" in p else None)
    if dist is None and {"min", "max"} <= set(p):
        integers = all(isinstance(p[k], int) and not isinstance(p[k], bool) for k in ("min", "max"))
        dist = "int_uniform" if integers else "uniform"
    return dist


def _distribution_problem(dist: Any, p: dict, default: Any, method: str, allowed: tuple | None) -> str | None:
    """What keeps the entry ``p`` from giving this hyperparameter the distribution ``dist``, or None."""
    if isinstance(dist, str) and dist in REFUSED:  # a list or mapping is no key of REFUSED
        return f"distribution {dist!r} is not supported: {REFUSED[dist]}; use one of {', '.join(DISTRIBUTIONS)}"
    if dist not in DISTRIBUTIONS:
        return f"unknown distribution {dist!r}; allowed: {', '.join(DISTRIBUTIONS)}"
    if dist == "constant":
        return _constant_problem(p, default, allowed)
    if dist == "categorical":
        return _categorical_problem(p, default, allowed)
    return _bounds_problem(dist, p) or _numeric_problem(dist, p["min"], p["max"], p.get("q", 1), default, method)


def _constant_problem(p: dict, default: Any, allowed: tuple | None) -> str | None:
    if "value" not in p:
        return "distribution constant needs 'value'"
    if not _type_ok(p["value"], default):
        return f"value {p['value']!r} has the wrong type; expected {_expected(default)}"
    return _values_problem([p["value"]], allowed)


def _categorical_problem(p: dict, default: Any, allowed: tuple | None) -> str | None:
    values = p.get("values")
    if not isinstance(values, list) or not values:
        return "distribution categorical needs a non-empty list 'values'"
    wrong = [v for v in values if not _type_ok(v, default)]
    if wrong:
        return f"values {wrong!r} have the wrong type; expected {_expected(default)}"
    if problem := _values_problem(values, allowed):
        return problem
    return "'probabilities' cannot be honoured by Optuna's samplers; remove it" if "probabilities" in p else None


def _values_problem(values: list, allowed: tuple | None) -> str | None:
    """What keeps a trial from taking ``values`` (YAML's .nan or .inf, or not among the CHOICES ``allowed``), or
    None."""
    infinite = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
    if infinite:
        return f"{', '.join(map(repr, infinite))}: YAML's .nan and .inf are no values a trial can take"
    wrong = [v for v in values if v not in allowed] if allowed is not None else []
    if wrong:
        return f"{', '.join(map(repr, wrong))} not allowed; allowed: {', '.join(map(str, allowed or ()))}"
    return None


def _bounds_problem(dist: str, p: dict) -> str | None:
    """What is wrong with a numeric distribution's numbers min, max and q themselves, or None."""
    bounds: list[Any] = [p.get("min"), p.get("max"), p.get("q", 1)]  # Any until checked, as the file's values are
    lo, hi, q = bounds
    if not all(_finite(v) for v in bounds):
        return (f"distribution {dist} needs finite numbers min and max (and optionally q); got min={lo!r}, "
                f"max={hi!r}, q={q!r}")  # fmt: skip
    if lo > hi:
        return f"min ({lo}) > max ({hi}); min must not exceed max"
    if q <= 0:
        return f"q must be > 0, not {q}"
    return None


def _numeric_problem(dist: str, lo: Any, hi: Any, q: Any, default: Any, method: str) -> str | None:
    """What keeps the numeric distribution ``dist`` (its numbers checked) from giving this hyperparameter its values
    in a search by ``method``, or None."""
    expect = _expected(default)
    if not isinstance(default, (int, float)) or isinstance(default, bool):
        return f"distribution {dist} gives numbers, but this hyperparameter is {expect}; use values: [...]"
    if dist in ("log_uniform_values", "inv_log_uniform_values", "q_log_uniform_values") and lo <= 0:
        return f"distribution {dist} needs min > 0, not {lo}"
    if method == "grid" and dist not in ("int_uniform", "q_uniform"):
        return (f"method grid needs discrete values; distribution {dist} is continuous (use values: [...], "
                "int_uniform or q_uniform)")  # fmt: skip
    integers = all(isinstance(v, int) for v in (lo, hi, q))  # bools are refused already (_finite)
    if dist == "int_uniform":
        return None if isinstance(lo, int) and isinstance(hi, int) else (
            f"int_uniform needs integer min and max, not {lo!r} and {hi!r}")  # fmt: skip
    if isinstance(default, int) and (dist not in ("q_uniform", "q_log_uniform_values") or not integers):
        return (f"this hyperparameter is {expect}; use int_uniform, q_uniform or q_log_uniform_values with integer "
                "min, max and q")  # fmt: skip
    if dist == "log_uniform" and max(-lo, hi) > LOG_EXPONENT:  # e^x overflows a float, or is 0 (no log-uniform's low)
        return (f"log_uniform's min and max are exponents of e, within ±{LOG_EXPONENT}, not {lo} and {hi} "
                "(log_uniform_values takes the values themselves)")  # fmt: skip
    if dist == "q_log_uniform_values" and (q != 1 or not (isinstance(lo, int) and isinstance(hi, int))):
        # Optuna has no stepped log scale except integers with step 1
        return ("q_log_uniform_values is supported with integer min and max and q: 1 (a log-scale integer); for "
                "other steps list the values: [...]")  # fmt: skip
    return None


def _numeric(dist: str, lo: Any, hi: Any, q: Any, default: Any) -> od.BaseDistribution:
    """The Optuna distribution of a numeric W&B distribution that _numeric_problem found nothing wrong with."""
    if dist == "int_uniform":
        return od.IntDistribution(lo, hi)
    if dist == "uniform":
        return od.FloatDistribution(lo, hi)
    if dist == "q_uniform":  # an integer hyperparameter's (integer min, max and q) takes integers
        return od.IntDistribution(lo, hi, step=q) if isinstance(default, int) else od.FloatDistribution(lo, hi, step=q)
    if dist == "log_uniform":  # W&B's min and max are exponents here
        return od.FloatDistribution(math.exp(lo), math.exp(hi), log=True)
    if dist in ("log_uniform_values", "inv_log_uniform_values"):  # 1/X log-uniform <=> X log-uniform
        return od.FloatDistribution(lo, hi, log=True)
    return od.IntDistribution(lo, hi, log=True)  # q_log_uniform_values: q is 1 (_numeric_problem)


def _expected(default: Any) -> str:
    """The type of a hyperparameter's values, in words, and its default."""
    return f"{_TYPES.get(type(default), type(default).__name__)} (the default is {default!r})"


def _in_range(parsed: Any, name: str, allowed: protocol.Range, err) -> Any:
    """``parsed`` (a distribution or a constant), or _INVALID after reporting that it reaches outside ``allowed``,
    the trainable's RANGES of this hyperparameter."""
    where = f"the allowed range {allowed.describe(name)}"
    if isinstance(parsed, od.IntDistribution | od.FloatDistribution):
        if parsed.low in allowed and parsed.high in allowed:
            return parsed
        kind = "log-uniform" if parsed.log else "int_uniform" if isinstance(parsed, od.IntDistribution) else "uniform"
        err(f"{kind} [{parsed.low:g}, {parsed.high:g}] reaches outside {where}")
        return _INVALID
    values: list[Any] = list(parsed.choices) if isinstance(parsed, od.CategoricalDistribution) else [parsed]
    wrong = [v for v in values if v not in allowed]
    if wrong:
        err(
            f"{'value' if len(wrong) == 1 else 'values'} {', '.join(map(repr, wrong))} "
            f"{'is' if len(wrong) == 1 else 'are'} outside {where}"
        )
        return _INVALID
    return parsed


def _metrics(metric: Any, module, err) -> tuple[list[str], list[str]]:
    default = ([module.metric], [module.mode]) if module else (["val_loss"], ["min"])
    if metric is None:
        return default
    entries = metric if isinstance(metric, list) else [metric]
    if not entries:
        err("metric", "is an empty list; give {name: <metric>, goal: maximize|minimize} or a list of them")
        return default
    known = (*module.metric_names, *HARNESS_METRICS) if module and module.metric_names else None
    names, modes = [], []
    for i, m in enumerate(entries):
        key = "metric" if not isinstance(metric, list) else f"metric[{i}]"
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("name"), str)
            or m.get("goal", "maximize") not in ("maximize", "minimize")
        ):
            err(
                key,
                "must be {name: <metric>, goal: maximize|minimize} (or a list of them for a multi-objective search)",
            )
            return default
        if known and m["name"] not in known:
            err(f"{key}.name", f"{module.name} reports no metric {m['name']!r}; allowed: {', '.join(known)}")
        names.append(m["name"])
        modes.append("max" if m.get("goal", "maximize") == "maximize" else "min")
    return names, modes


def _epochs(p: Any, method: str, err) -> int | None:
    """The epochs of every trial from W&B's ``epochs: {value: N}`` (read as any parameter); a searched ``epochs`` is
    refused."""
    parsed = _parameter(p, MAX_EPOCHS, method, err)
    if isinstance(parsed, od.BaseDistribution):
        err(
            "epochs cannot be searched: every trial trains up to max_epochs epochs and early_terminate (hyperband, "
            "run as ASHA) stops the poor ones early; set max_epochs: N (or epochs: {value: N})"
        )
    elif parsed is not _INVALID and parsed < 1:
        err(f"must be {{value: N}} with an integer N >= 1 (the epochs of every trial), not {p!r}")
    elif parsed is not _INVALID:
        return parsed
    return None


def _hyperband(et: Any, err) -> dict[str, int] | None:
    if et is None:
        return None
    if not isinstance(et, dict) or et.get("type") != "hyperband":
        err("early_terminate", "must be {type: hyperband, min_iter: N, eta: N} (or max_iter and s instead of min_iter)")
        return None
    if unknown := _unknown_keys(et, HYPERBAND_KEYS):
        err("early_terminate", f"{unknown} (W&B's strict is accepted and ignored: ASHA has no stricter rule)")
        return None
    eta = et.get("eta", 3)
    if "min_iter" in et:
        min_iter = et["min_iter"]
    elif "max_iter" in et:
        # W&B: s brackets at max_iter / eta, ..., max_iter / eta^s; the first one is where ASHA first stops trials
        max_iter, brackets = et["max_iter"], et.get("s")
        if not (isinstance(brackets, int) and brackets >= 1 and isinstance(max_iter, int) and isinstance(eta, int)
                and eta >= 2 and max_iter >= eta**brackets):  # fmt: skip
            err(
                "early_terminate",
                f"max_iter needs s (W&B's number of brackets, an integer >= 1), an integer eta >= 2 "
                f"and max_iter >= eta^s; got max_iter={max_iter!r}, s={brackets!r}, eta={eta!r}",
            )
            return None
        min_iter = max_iter // eta**brackets
    else:
        err("early_terminate", "hyperband needs min_iter (or max_iter and s)")
        return None
    if not all(isinstance(v, int) and v >= 1 for v in (min_iter, eta)) or eta < 2:
        err(
            "early_terminate", f"min_iter must be an integer >= 1 and eta an integer >= 2, not {min_iter!r} and {eta!r}"
        )
        return None
    return {"min_iter": min_iter, "eta": eta}


def _baseline(baseline: Any, params: dict[str, od.BaseDistribution], defaults: dict, err, invalid: set) -> dict | None:
    """The baseline as a point of the search space: its values, and the defaults for searched keys it omits.
    ``invalid``: hyperparameters whose own entry is wrong (already reported)."""
    if baseline is None:
        return None
    if not isinstance(baseline, dict):
        err("baseline", "must be a mapping of searched hyperparameters to values")
        return None
    for k in baseline:
        if k not in params and k not in invalid:
            err(
                f"baseline.{k}",
                f"not a searched hyperparameter (searched: {', '.join(params) or 'none'}); "
                "fix other hyperparameters with parameters: {k: {value: ...}}",
            )
    point = {k: baseline.get(k, defaults.get(k)) for k in params}
    for k, v in point.items():
        d = params[k]
        try:
            inside = _type_ok(v, defaults[k]) and contains(d, k, v)
        except (ValueError, TypeError):
            inside = False
        if not inside:
            origin = "" if k in baseline else " (the default, as the baseline does not set it)"
            err(f"baseline.{k}", f"{v!r}{origin} is outside the searched range {d}")
    return point


def _priors(priors: Any, module, err) -> list[dict]:
    """The file's priors, each checked against the trainable whatever the space (a hyperparameter it has, a value of
    the default's type within its RANGES and CHOICES); whether each is inside this search's space is checked when a
    search starts (tunelab.engine.priors), where one outside it is skipped, not refused."""
    usage = (
        f"a list of configs, each a mapping of hyperparameters to values with an optional {PRIOR_FROM}: "
        f'(where it came from), e.g. [{{lr: 0.003, width: 64, {PRIOR_FROM}: "fashion_cnn search, seed 1"}}]'
    )
    if not isinstance(priors, list):
        err("priors", f"must be {usage}, not {priors!r}")
        return []
    for i, prior in enumerate(priors):
        if not isinstance(prior, dict) or not set(prior) - {PRIOR_FROM}:
            err(f"priors[{i}]", f"must be a mapping of hyperparameters to values (at least one), not {prior!r}; "
                f"priors is {usage}")  # fmt: skip
            continue
        for name, value in prior.items():
            problem = _prior_value(module, name, value)
            if problem:
                err(f"priors[{i}].{name}", problem)
    return [dict(p) for p in priors if isinstance(p, dict)]  # a wrong one is reported


def _prior_value(module, name: Any, value: Any) -> str | None:
    """What is wrong with one entry of a prior whatever the space, or None."""
    defaults = module.defaults
    if name == PRIOR_FROM:
        return None if isinstance(value, str) else (f"must be a string saying where the config came from "
                                                    f"(documentation only), not {value!r}")  # fmt: skip
    if not isinstance(name, str) or name not in defaults:
        return f"{module.name} has no hyperparameter {name!r}; it has: {', '.join(defaults)}"
    if name == "epochs":
        return "not a prior's to set: every trial trains the search's max_epochs epochs"
    if not _type_ok(value, defaults[name]):
        expect = _TYPES.get(type(defaults[name]), type(defaults[name]).__name__)
        return f"{value!r} has the wrong type; expected {expect} (the default is {defaults[name]!r})"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r}: YAML's .nan and .inf are no values a trial can take"
    if name in module.choices and value not in module.choices[name]:
        return f"{value!r} not allowed; allowed: {', '.join(map(str, module.choices[name]))}"
    if name in module.ranges and value not in module.ranges[name]:
        return f"{value!r} is outside the allowed range {module.ranges[name].describe(name)}"
    return None


def _ablation(name: Any, params: dict[str, od.BaseDistribution], err) -> str | None:
    if name is not None and not (isinstance(name, str) and isinstance(params.get(name), od.CategoricalDistribution)):
        searched = [k for k, d in params.items() if isinstance(d, od.CategoricalDistribution)]
        err("ablation", f"{name!r} is not a hyperparameter searched over a list of values; "
            f"searched that way: {', '.join(searched) or 'none'}")  # fmt: skip
        return None
    return name


def _compare_with(names: Any, trainable: str, module, err) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        err("compare_with", f"must be a list of run names (e.g. [mnist_mlp_ae]), not {names!r}")
        return []
    if names and module and not module.comparable:
        err("compare_with", f"{module.name} draws no comparison figures; remove compare_with")
        return []
    return names


def _targets(targets: Any, metrics: list[str], err) -> dict[str, float]:
    """Values that the trial to hand in should reach: at least for a maximised metric, at most for a minimised one."""
    if not isinstance(targets, dict):
        err("targets", f"must be a mapping of metrics to values (e.g. {{{metrics[0]}: 0.98}}), not {targets!r}")
        return {}
    valid = {}
    for name, value in targets.items():
        if name not in metrics:
            err(f"targets.{name}", f"not a metric of this search; the metrics are {', '.join(metrics)}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            err(f"targets.{name}", f"must be a number, not {value!r}")
        else:
            valid[name] = float(value)
    return valid


def _prefer(prefer: Any, metrics: list[str], err) -> str:
    if not isinstance(prefer, str) or prefer not in PREFER:
        err("prefer", f"{prefer!r} is not allowed; allowed: {', '.join(f'{k} ({v})' for k, v in PREFER.items())}, "
            "among the trials tied with the best")  # fmt: skip
        return "best"
    if prefer != "best" and len(metrics) > 1:
        err(
            "prefer",
            f"{prefer} chooses among the trials tied with the best of one metric; a search of several "
            "objectives hands in a Pareto-optimal trial: make params or duration_s one of its metrics instead",
        )
        return "best"
    return prefer


def _grid(params: dict[str, od.BaseDistribution], err) -> int:
    """The number of points of the grid (the trials of a grid search), counted without listing them; a grid larger
    than MAX_GRID is reported."""
    size = math.prod(_points(d) for d in params.values())
    if size > MAX_GRID:
        counts = " x ".join(f"{k} {_points(d):,}" for k, d in params.items())
        err("parameters", f"the grid has {size:,} points ({counts}), more than a search can run (at most "
            f"{MAX_GRID:,}): list fewer values, or use method: random or bayes")  # fmt: skip
    return size


def _points(d: od.BaseDistribution) -> int:
    """How many values a discrete distribution has."""
    if isinstance(d, od.CategoricalDistribution):
        return len(d.choices)
    if isinstance(d, od.IntDistribution):
        return (d.high - d.low) // d.step + 1
    assert isinstance(d, od.FloatDistribution) and d.step is not None  # q_uniform's, the discrete float one
    return int(round((d.high - d.low) / d.step)) + 1


def grid_values(d: od.BaseDistribution) -> list:
    """Every value of a discrete distribution, for the grid sampler."""
    if isinstance(d, od.CategoricalDistribution):
        return list(d.choices)
    if isinstance(d, od.IntDistribution):
        return list(range(d.low, d.high + 1, d.step))
    assert isinstance(d, od.FloatDistribution) and d.step is not None  # as in _points
    return [d.low + i * d.step for i in range(_points(d))]
