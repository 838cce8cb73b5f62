"""`tunelab new NAME [--like TRAINABLE]`: a student's own model and sweep file, to edit in their own folder.

``NAME.py`` is the source of the built-in trainable ``trainables/<TRAINABLE>.py`` with a header saying where it
came from; ``NAME.yaml`` is the quickest built-in experiment (search_spaces/) of that trainable with
``trainable: NAME.py`` (for cnn_classifier, fashion_cnn's wide space: ``tunelab search NAME.yaml --time-budget T``
plans it to the machine). The copy may import helpers from the installed ``trainables`` package
(``trainables.common``, a thin module's ``trainables.gan``...), which it finds wherever it lies.
"""

import importlib.util
import keyword
import math
import re
import sys
from pathlib import Path

import yaml

import trainables
from tunelab.errors import UserError
from tunelab.spec import spaces

DEFAULT_LIKE = "cnn_classifier"
TRAINABLES_DIR = Path(trainables.__file__).resolve().parent
PY_HEADER = """\
# {name}.py: your own trainable, a copy of tunelab's built-in {like!r} (trainables/{like}.py),
# made by `tunelab new {name} --like {like}`. Edit it freely: the model, DEFAULTS (the hyperparameters
# and their defaults), CHOICES (the values a string one may take), RANGES (those a number may take),
# METRICS (what a search may optimise: keep it in step with evaluate), build, train_epoch, evaluate,
# figures (the protocol: tunelab/trainable/protocol.py).
# It still imports helpers from the installed `trainables` package; copy those in too to change them.
# `tunelab check {name}.py` tests it on a tiny data set; `tunelab search {name}.yaml --time-budget 10m`
# tunes it.

"""
YAML_HEADER = """\
# {name}.yaml: your search space, a copy of tunelab's built-in experiment {experiment!r}
# (search_spaces/{experiment}.yaml), made by `tunelab new {name} --like {like}`. Its trainable is
# {name}.py (a path relative to this file); edit the parameters to search what your model has.
# Search it within a time budget, which plans the trials, their epochs and the data to fit your machine:
# `tunelab search {name}.yaml --time-budget 10m` (`tunelab plan {name}.yaml --time-budget 10m` prints the plan).

"""


def experiment_of(like: str) -> str:
    """The quickest built-in experiment of the trainable ``like``: the shortest time budget, then the fewest
    trial epochs (run_cap x max_epochs), then the first by name."""
    candidates = []
    for name, path in spaces.experiments().items():
        raw = yaml.safe_load(path.read_text()) or {}
        if raw.get("trainable") == like:
            epochs = raw.get("run_cap", 10) * raw.get("max_epochs", 10)
            candidates.append((raw.get("time_budget_s") or math.inf, epochs, name))
    if not candidates:
        raise UserError(f"no experiment in {spaces.SPACES_DIR} trains {like!r}")
    return min(candidates)[-1]


def check_name(name: str) -> None:
    """Refuse a NAME that is not a Python module name."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UserError(f"{name!r} is not a valid Python module name: use letters, digits and underscores, not "
                        f"starting with a digit (e.g. my_cnn)")  # fmt: skip


def check_unshadowed(name: str) -> None:
    """Refuse a NAME that would shadow a module Python can import (or a built-in trainable)."""
    if name in trainables.NAMES:
        raise UserError(f"{name!r} is a built-in trainable's name: pick another (e.g. my_{name})")
    try:
        taken = name in sys.builtin_module_names or name in sys.stdlib_module_names or importlib.util.find_spec(name)
    except (ImportError, ValueError):
        taken = True
    if taken:
        raise UserError(f"{name!r} would shadow the importable module {name!r}: pick another name (e.g. my_{name})")


def new(name: str, like: str = DEFAULT_LIKE, folder: Path = Path(".")) -> tuple[Path, Path, str]:
    """Write ``folder/NAME.py`` and ``folder/NAME.yaml``; return their paths and the experiment copied."""
    if like not in trainables.NAMES:
        raise UserError(f"unknown trainable {like!r} for --like; known: {', '.join(trainables.NAMES)}")
    check_name(name)
    py, space = Path(folder) / f"{name}.py", Path(folder) / f"{name}.yaml"
    existing = [str(p) for p in (py, space) if p.exists()]
    if existing:
        raise UserError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: not overwritten "
                        f"(pick another NAME, or move {'it' if len(existing) == 1 else 'them'} away)")  # fmt: skip
    check_unshadowed(name)
    experiment = experiment_of(like)
    source = TRAINABLES_DIR / f"{like}.py"
    yaml_source = spaces.experiments()[experiment]
    text, replaced = re.subn(rf"^trainable:\s*{re.escape(like)}\b", f"trainable: {name}.py", yaml_source.read_text(),
                             count=1, flags=re.MULTILINE)  # fmt: skip
    if not replaced:
        raise UserError(f"{yaml_source}: no line 'trainable: {like}' to point at {name}.py")
    fill = {"name": name, "like": like, "experiment": experiment}
    py.write_text(PY_HEADER.format(**fill) + source.read_text())
    space.write_text(YAML_HEADER.format(**fill) + text)
    return py, space, experiment
