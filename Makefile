# Two commands on a fresh machine: `make run` and `make test`. `make run` installs only what the core needs, so a
# new user's first command stays quick; the tests, benchmarks and docs get every extra, so the tests exercise them.
# A user with a GPU overrides the torch build, e.g.
#   make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
CONFIG ?= configs/srn_explode.yaml
BIN := $(VENV)/bin
STAMP := $(VENV)/.gradexp-installed
DEV_STAMP := $(VENV)/.gradexp-dev-installed

.PHONY: setup setup-dev run test test-fast bench docs clean

# The core: torch first (TORCH_SPEC chooses the build), then gradexp without extras.
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

# The core and every extra: the test tools, Ray, TensorBoard and MLflow.
setup-dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,ray,tensorboard,mlflow]"
	touch $(DEV_STAMP)

run: setup
	$(BIN)/gradexp run $(CONFIG)

test: setup-dev
	$(BIN)/python -m pytest

# Every core (pytest-xdist): on two cores 1:40 instead of 2:30. `make test` stays in one process: its Ray tests
# each start a local Ray instance.
test-fast: setup-dev
	$(BIN)/python -m pytest -m "not slow and not ray and not subprocess" -n auto

bench: setup-dev
	$(BIN)/python benchmarks/bench_srn.py
	cd benchmarks && ../$(BIN)/python bench_gated.py

# Rerun the commands whose output README.md and docs/ quote, and rewrite the quotes (several minutes).
docs: setup-dev
	$(BIN)/python docs/regenerate.py

clean:
	rm -rf $(VENV) build *.egg-info
