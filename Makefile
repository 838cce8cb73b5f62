# The two commands of the README: `make demo` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Local copies of the data sets that `tunelab data fetch` may copy from (besides system packages).
ifneq ($(wildcard ../shared/data),)
export TUNELAB_LOCAL_COPIES ?= $(abspath ../shared/data)
endif

.PHONY: venv demo test lint bench bench-record bench-gpu

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# A search of the Fashion-MNIST CNN sized for a 2-core CPU (at most 5 minutes), then retrain on all of the training set
# (about 4 minutes) and report.
demo: venv
	$(BIN)/tunelab data fetch fashion_mnist
	rm -rf results/demo
	$(BIN)/tunelab search fashion_cnn_quick --name demo --subset 0.5 --concurrency 2 --time-budget 300
	$(BIN)/tunelab retrain demo --seeds 1 --epochs 18 --subset 1
	$(BIN)/tunelab report demo
	@echo "Leaderboard: results/demo/leaderboard.md"
	@echo "Report:      results/demo/report/report.md (and report.html)"

test: venv
	$(BIN)/python -m pytest -q

# ruff, configured in pyproject.toml.
lint: venv
	$(BIN)/ruff check .

# The CPU benchmarks (sized for about 20 minutes on 2 cores; run them on a quiet machine, one at a time); each prints its
# ratios against a baseline measured in the same run. `--quick` on any of them is a smoke run.
bench: venv
	$(BIN)/tunelab data fetch fashion_mnist
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/efficiency.py
	$(BIN)/python bench/replay.py

# Learning curves of fashion_cnn's wide space for bench/replay.py (most of an hour on 2 cores; an interrupted recording
# resumes where it stopped): writes bench/curves/fashion_cnn.csv.
bench-record: venv
	$(BIN)/tunelab data fetch fashion_mnist
	$(BIN)/python bench/record_curves.py

# Trials per minute of a search on one GPU, whole vs packed (needs CUDA; `bench/gpu.py --quick` runs anywhere).
bench-gpu: venv
	$(BIN)/tunelab data fetch fashion_mnist
	$(BIN)/python bench/gpu.py
