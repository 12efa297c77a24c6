# Two commands on a fresh machine: `make run` and `make test`.
# A user with a GPU overrides the torch build, e.g.
#   make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
CONFIG ?= configs/srn_explode.yaml
BIN := $(VENV)/bin
STAMP := $(VENV)/.gradexp-installed

.PHONY: setup run test test-fast bench docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	touch $(STAMP)

run: setup
	$(BIN)/gradexp run $(CONFIG)

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not ray and not subprocess"

bench: setup
	$(BIN)/python benchmarks/bench_srn.py
	cd benchmarks && ../$(BIN)/python bench_gated.py

# Rerun the commands whose output README.md and docs/ quote, and rewrite the quotes (several minutes).
docs: setup
	$(BIN)/python docs/regenerate.py

clean:
	rm -rf $(VENV) build *.egg-info
