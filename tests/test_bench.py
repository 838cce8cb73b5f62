"""The benchmarks' smoke runs: each bench's ``--quick`` in a subprocess exits 0 and prints its ratio line (for
record_priors.py, which measures nothing, the priors: block it would write), so that none of them rots again when the
engine changes. Their figures are not checked: a smoke run's mean nothing."""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

TIMEOUT_S = 600  # each takes a minute or two on a quiet 2-core CPU; a loaded one can take several times that
RATIO = r"(>= |<= |~)?\d+\.\d\dx"
BENCHES = {  # bench -> the line that carries its ratio (record_priors.py: its priors: block's first lines)
    "overhead.py": rf"^tunelab wall / plain wall: {RATIO}",
    "efficiency.py": rf"^TPE\+ASHA / random, time to target: {RATIO}",
    "gpu.py": rf"^packed / whole trials per minute: {RATIO}",
    "throughput.py": rf"^\| tunelab train_epoch .*\| +{RATIO} \|$",
    "record_curves.py": rf"^costliest / cheapest config, CPU s per epoch: {RATIO}",
    "replay.py": rf"^TPE\+ASHA / random, median time to target: {RATIO}",
    "second_search.py": rf"^second / first search, call to first trial start: {RATIO}",
    "record_priors.py": r"^priors:\n  - \{.+, from: '?tunelab search mnist_mlp_ae --time-budget 30s --seed 1 .+\}$",
}


@pytest.mark.slow
@pytest.mark.parametrize("bench", BENCHES)
def test_quick_run_prints_its_ratio(bench, fashion_root, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "RAY_ADDRESS")}
    env["TUNELAB_DATA"] = str(fashion_root)
    done = subprocess.run([sys.executable, str(REPO / "bench" / bench), "--quick"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert done.returncode == 0, (
        f"{bench} --quick exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    print(done.stdout)  # the smoke run's figures, for `pytest -rP`
    assert re.search(BENCHES[bench], done.stdout, re.MULTILINE), f"no ratio line in:\n{done.stdout[-4000:]}"
