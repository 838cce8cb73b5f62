#!/usr/bin/env bash
# bench/gpu.py on a GPU machine that has Python and torch but no package index, Ray or Optuna, from a copy of this
# checkout (see bench/gpu.py's docstring for the two transfers):
#
#   bench/on_device.sh install           installs build/device-wheels/ (bench/device_wheels.sh) into $SITE
#   bench/on_device.sh bench [ARGS]      runs bench/gpu.py ARGS with them, the data in $TUNELAB_DATA (./datasets),
#                                        its output also in $OUT/gpu.txt where OUT is set
set -euo pipefail
cd "$(dirname "$0")/.."
SITE=${SITE:-/tmp/tunelab-site}
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1
case "${1:-}" in
  install)
    # compiled once here, so that each of the searches' Ray workers does not compile Ray's sources again
    python3 -m pip install --quiet --no-index --no-deps --no-cache-dir --upgrade --target "$SITE" build/device-wheels/*.whl
    python3 -c "import ray, optuna, kornia, torch, tunelab.cli
print(f'ray {ray.__version__}, optuna {optuna.__version__}, torch {torch.__version__}, CUDA {torch.cuda.is_available()}')"
    ;;
  bench)
    shift
    export TUNELAB_DATA=${TUNELAB_DATA:-$PWD/datasets}
    python3 bench/gpu.py "$@" 2>&1 | tee "${OUT:-/tmp}/gpu.txt"
    ;;
  *)
    echo "usage: bench/on_device.sh install | bench [bench/gpu.py's arguments]" >&2
    exit 2
    ;;
esac
