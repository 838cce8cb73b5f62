"""`tunelab doctor`: the libraries tunelab runs with, each against the range it was tested with (pyproject.toml's
requirements, read from the checkout or else from the installed distribution, so that they are defined once), and
where it would read data and log to W&B."""

import importlib.metadata as metadata
import platform
import sys
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tunelab.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the installed distribution's requirements
    tomllib = None

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"  # in a checkout (an editable install)
CHECKED = {"Ray": "ray", "Optuna": "optuna", "torch": "torch", "W&B": "wandb", "optuna-dashboard": "optuna-dashboard"}


def requirements() -> tuple[SpecifierSet, dict[str, Requirement]]:
    """Python's range and each dependency's requirement, by distribution name."""
    project: dict[str, Any] = tomllib.loads(PYPROJECT.read_text())["project"] if tomllib and PYPROJECT.is_file() else {}
    if project.get("name") == "tunelab":
        python, deps = project["requires-python"], project["dependencies"]
    else:
        python, deps = metadata.metadata("tunelab")["Requires-Python"], metadata.requires("tunelab") or []
    reqs = [Requirement(d) for d in deps]
    return SpecifierSet(python), {r.name: r for r in reqs if r.marker is None or r.marker.evaluate()}


def report(data_root: Path, wandb: str | None) -> tuple[list[str], int]:
    """One line per library, the data root and the W&B mode; and how many libraries are outside their range."""
    python, reqs = requirements()
    rows: list[tuple[str, str | None, SpecifierSet | None, str]] = [
        ("Python", platform.python_version(), python, f"requires-python {python}")
    ]
    rows.append(("tunelab", metadata.version("tunelab"), None, str(PYPROJECT) if PYPROJECT.is_file() else ""))
    for label, dist in CHECKED.items():
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = None
        req = reqs.get(dist)
        rows.append((label, version, req.specifier if req else None, str(req) if req else "not a requirement"))
    lines, outside = [], 0
    for label, version, spec, said in rows:
        if version is None:
            verdict, outside = f"NOT INSTALLED (tested: {said})", outside + 1
        elif spec is None:
            verdict = said
        elif spec.contains(version, prereleases=True):
            verdict = f"within the tested range ({said})"
        else:
            verdict, outside = f"OUTSIDE the tested range ({said})", outside + 1
        lines.append(f"{label:17s} {version or '-':12s} {verdict}")
        if label == "torch" and version:
            lines.append(f"{'  CUDA devices':17s} {_cuda()}")
    lines.append(f"{'data root':17s} {data_root.resolve()}")
    lines.append(f"{'W&B mode':17s} {_wandb_mode(wandb)}")
    return lines, outside


def _cuda() -> str:
    import torch

    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return f"{len(names)}: {', '.join(names)}" if names else "none (CPU only)"


def _wandb_mode(wandb: str | None) -> str:
    from tunelab import tracking

    try:
        return tracking.mode(wandb)
    except UserError as e:
        return f"none that works: {e}"
