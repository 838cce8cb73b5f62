"""The versions tunelab is tested with: pyproject.toml bounds the libraries whose private names it uses, the installed
ones are within every bound, and `tunelab doctor` says so."""

import importlib.metadata as metadata
import os
import subprocess
import sys

import tomllib
from packaging.requirements import Requirement

from tests.helpers import REPO
from tunelab import doctor


def test_the_installed_libraries_are_within_pyprojects_bounds():
    deps = [Requirement(d) for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    outside = {d.name: metadata.version(d.name) for d in deps if not d.specifier.contains(metadata.version(d.name))}
    assert not outside
    bounded = {d.name: d.specifier for d in deps}
    for private_user in ("ray", "optuna"):  # an upper bound: the next release may change their private names
        assert any(s.operator in ("<", "==", "~=") for s in bounded[private_user]), bounded[private_user]


def tunelab(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunelab", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=os.environ | env)  # fmt: skip


def test_doctor_names_each_library_its_version_and_range(tmp_path):
    done = tunelab("--data-dir", str(tmp_path / "data"), "doctor", WANDB_MODE="disabled")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {}
    for line in done.stdout.splitlines():
        lines.setdefault(line.split()[0], line)
    assert set(lines) >= {"Python", "tunelab", "Ray", "Optuna", "torch", "CUDA", "W&B", "optuna-dashboard", "data"}
    assert lines["Ray"].split()[1] == metadata.version("ray") and "within the tested range (ray[tune]" in lines["Ray"]
    assert "within the tested range (optuna<" in lines["Optuna"]
    assert lines["data"].endswith(str(tmp_path / "data")) and lines["W&B"].split()[1] == metadata.version("wandb")
    assert done.stdout.splitlines()[-1].split() == ["W&B", "mode", "disabled"]


def test_doctor_exits_1_for_a_library_outside_its_range(monkeypatch, tmp_path, capsys):
    from tunelab.cli import main

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    pinned = [d if not d.startswith("optuna>") else "optuna>=99" for d in project["project"]["dependencies"]]
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "tunelab"\nrequires-python = ">=3.10"\n'
                                             f"dependencies = {pinned!r}\n")  # fmt: skip
    monkeypatch.setattr(doctor, "PYPROJECT", tmp_path / "pyproject.toml")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert main(["doctor"]) == 1
    out, err = capsys.readouterr()
    assert "OUTSIDE the tested range (optuna>=99)" in out
    assert err.strip() == "tunelab: error: 1 library is outside the tested range (see above)"
