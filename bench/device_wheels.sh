#!/usr/bin/env bash
# Wheels that take tunelab's search to a GPU machine that has Python, torch and the scientific stack but no package
# index, Ray or Optuna (bench/gpu.py's run there, see its docstring): the versions installed in this checkout's
# venv, built for that machine's Python, into build/device-wheels/. Ray's wheel loses ray/jars/ (Java) and the
# dashboard's web client, which a search never uses, so that the wheels travel in one 64 MiB transfer.
#
#   bench/device_wheels.sh [PYTHON_VERSION]     (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_VERSION=${1:-3.12}
PY=${PY:-.venv/bin/python}
OUT=build/device-wheels
# What a search imports that such a machine lacks, with what those need in turn (Ray's tune extra included; W&B
# and tensorboardX stay behind: `--wandb disabled` and tunelab's search import neither).
NAMES="ray optuna alembic mako sqlalchemy colorlog jsonschema jsonschema-specifications referencing rpds-py
       pydantic pydantic-core annotated-types typing-inspection kornia kornia-rs torchinfo"
# shellcheck disable=SC2086
PINS=$($PY -c 'import sys, importlib.metadata as m; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $NAMES)
PLATFORMS=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do
  PLATFORMS="$PLATFORMS --platform $p"
done
rm -rf "$OUT" && mkdir -p "$OUT"
# shellcheck disable=SC2086
$PY -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp \
  $PLATFORMS -d "$OUT" $PINS
$PY - "$OUT" <<'EOF'
import sys, zipfile
from pathlib import Path

DROP = ("ray/jars/", "ray/dashboard/client/build/")
DROPPED = tuple(d.encode() for d in DROP)  # the same, as RECORD's lines start
wheel = next(Path(sys.argv[1]).glob("ray-*.whl"))
slim = wheel.with_suffix(".slim")
with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if item.filename.startswith(DROP):
            continue
        data = src.read(item)
        if item.filename.endswith(".dist-info/RECORD"):  # the record lists only what the wheel holds
            data = b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(DROPPED))
        dst.writestr(item, data)
slim.replace(wheel)
EOF
du -ch "$OUT"/*.whl | tail -1
