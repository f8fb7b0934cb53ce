# lstmkit: `make demo` and `make test` each set up everything on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow lint format bench figures clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch's CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/lstmkit train

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .

# Regenerates docs/benchmarks.md (about 6 minutes on 2 cores; run it on a quiet machine;
# 11 repeats per series because this shared host's speed drifts from run to run).
bench: $(STAMP)
	$(BIN)/lstmkit bench --repeats 11 --markdown docs/benchmarks.md

# Regenerates docs/experiments.md and the cell diagrams (about 25 minutes on 2 cores).
figures: $(STAMP)
	$(BIN)/lstmkit experiment all
	for c in lstm gru rnn; do $(BIN)/lstmkit diagram $$c -o docs/figures/$$c-cell.svg; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
