# The two commands of the README: `make demo` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Local copies of the data sets that `tunelab data fetch` may copy from (besides system packages).
ifneq ($(wildcard ../shared/data),)
export TUNELAB_LOCAL_COPIES ?= $(abspath ../shared/data)
endif

.PHONY: venv demo test test-fast lint bench bench-record bench-priors bench-gpu

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# A 5-minute search of the Fashion-MNIST CNN, planned for this machine (it tries only configs whose retrain takes at
# most 5 minutes), then the planned retrain of the best config on all of the training set, and the report.
demo: venv
	$(BIN)/tunelab data fetch fashion_mnist
	rm -rf results/demo
	$(BIN)/tunelab search fashion_cnn --name demo --time-budget 5m
	$(BIN)/tunelab retrain demo --seeds 1
	$(BIN)/tunelab report demo
	@echo "Leaderboard: results/demo/leaderboard.md"
	@echo "Report:      results/demo/report/report.md (and report.html)"

test: venv
	$(BIN)/python -m pytest -q

# While working: the tests not marked slow (no end-to-end searches, dashboards, browser or notebook).
test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

# ruff (its lint and its formatter) and mypy (the type checker, basic mode: what it checks is under [tool.mypy]), configured in pyproject.toml;
# the docs (mkdocs.yml), built in strict mode into a temporary folder, so that a broken link or anchor, or a page
# missing from the nav, fails (not --quiet: it hides the warnings strict counts).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@site=$$(mktemp -d) && NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir "$$site"; \
	status=$$?; rm -rf "$$site"; exit $$status

# The CPU benchmarks (sized for about 40 minutes on 2 cores, 35 of them bench/efficiency.py's searches; run them on a
# quiet machine, one at a time); each prints its ratios against a baseline measured in the same run. `--quick` on any
# of them is a smoke run.
bench: venv
	$(BIN)/tunelab data fetch fashion_mnist
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/efficiency.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/second_search.py

# Learning curves of fashion_cnn's wide space for bench/replay.py (about an hour and a quarter on 2 cores; an
# interrupted recording resumes where it stopped): writes bench/curves/fashion_cnn.csv, then the priors' recording
# bench/curves/fashion_cnn_priors.csv on another slice of the data (--offset) with other configs (--seed).
bench-record: venv
	$(BIN)/tunelab data fetch fashion_mnist
	$(BIN)/python bench/record_curves.py
	$(BIN)/python bench/record_curves.py --offset 0.5 --seed 1 --configs 30 --out bench/curves/fashion_cnn_priors.csv

# The built-in experiments' priors (search_spaces/*.yaml's priors:): a 90-second search of each with seed 1, whose top
# 3 trials bench/record_priors.py writes into the file (about half an hour on 2 cores, one search at a time; those
# whose data set is missing are skipped, fashion_cnn's come from bench-record and `bench/replay.py --show-priors`).
bench-priors: venv
	$(BIN)/python bench/record_priors.py

# Trials per minute of a search on one GPU, whole vs packed (needs CUDA; `bench/gpu.py --quick` runs anywhere).
bench-gpu: venv
	$(BIN)/tunelab data fetch fashion_mnist
	$(BIN)/python bench/gpu.py
