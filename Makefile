# lstmkit: `make demo` and `make test` each set up everything on a fresh machine.
# `make demo` installs only what `lstmkit train` needs (torch, the core dependencies and
# scikit-learn for the TF-IDF baseline it prints); `make test` and the rest add the dev extra.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := $(VENV)/.torch
DEMO_STAMP := $(VENV)/.installed-demo
STAMP := $(VENV)/.installed-dev
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test test-slow lint format bench bench-threads bench-streaming figures clean

# torch's CPU build: a bare `pip install torch` on Linux pulls the multi-GB CUDA build.
# 1. torch already importable: keep it.  2. PyTorch's CPU wheel index reachable: torch from
# there (PyPI as extra index for its dependencies; a +cpu wheel outranks PyPI's of the same
# version).  3. Otherwise (offline, pip's own configured index and wheels): $(TORCH_PIN).
$(TORCH):
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	if $(BIN)/python -c "import torch" 2>/dev/null; then :; \
	elif $(BIN)/python -c "import urllib.request as u; u.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=10)" 2>/dev/null; then \
	  $(BIN)/pip install -q $(TORCH_PIN) --index-url $(TORCH_CPU_INDEX) --extra-index-url https://pypi.org/simple \
	    || $(BIN)/pip install -q $(TORCH_PIN); \
	else \
	  $(BIN)/pip install -q $(TORCH_PIN); \
	fi
	touch $@

$(DEMO_STAMP): pyproject.toml $(TORCH)
	$(BIN)/pip install -q -e ".[demo]"
	touch $@

$(STAMP): pyproject.toml $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@ $(DEMO_STAMP)

setup: $(STAMP)

demo: $(DEMO_STAMP)
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

# Regenerates this machine class's benchmark page (about 10 minutes on 2 cores): one table per
# ISA path this CPU can run (an AVX-512 machine also runs the forced AVX2 path, torch held to
# AVX2 too), one thread on the process clock (other load on a shared host does not enter it).
# The page is named by the CPU's best path, so each class keeps its own: docs/benchmarks.md
# (AVX-512), docs/benchmarks-avx2.md (an AVX2 machine), docs/benchmarks-portable.md.
# bench-threads: the same with every core this machine has (2 here) on the wall clock, into
# docs/benchmarks-threads[-avx2|-portable].md.  Earlier two-thread runs swung from 0.02x to 30x:
# onnxruntime's pool kept spinning after its calls and took the next series' cores; the bench
# now lets the workers go idle between samples (bench.SETTLE_S).  9 repeats: on a shared VM
# host (the AVX2 Zen 3 machine) 5 left single points swinging by +-0.2.
BENCH_ISA ?= $(shell if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then echo avx512,avx2; \
  elif grep -qw avx2 /proc/cpuinfo 2>/dev/null; then echo avx2; else echo portable; fi)
comma := ,
BENCH_CLASS = $(firstword $(subst $(comma), ,$(BENCH_ISA)))
BENCH_SUFFIX = $(if $(filter avx512,$(BENCH_CLASS)),,-$(BENCH_CLASS))
BENCH_REPEATS ?= 9
bench: $(STAMP)
	$(BIN)/lstmkit bench --isa $(BENCH_ISA) --threads 1 --clock process --scale-t 0.5 \
	  --repeats $(BENCH_REPEATS) --markdown docs/benchmarks$(BENCH_SUFFIX).md

BENCH_THREADS ?= $(shell nproc)
bench-threads: $(STAMP)
	$(BIN)/lstmkit bench --isa $(BENCH_ISA) --threads $(BENCH_THREADS) --clock wall \
	  --scale-t 0.5 --repeats $(BENCH_REPEATS) --markdown docs/benchmarks-threads$(BENCH_SUFFIX).md

# Streaming and short inference calls (benchmarks/streaming.json: one step per call, as a
# server or an online decoder calls a layer), forward only, 1 thread, into
# docs/benchmarks-streaming[-avx2|-portable].md (a few minutes).
bench-streaming: $(STAMP)
	$(BIN)/lstmkit bench --isa $(BENCH_ISA) --threads 1 --clock process --modes fwd \
	  --grid benchmarks/streaming.json --repeats $(BENCH_REPEATS) \
	  --markdown docs/benchmarks-streaming$(BENCH_SUFFIX).md

# Regenerates docs/experiments.md and the cell diagrams (about 25 minutes on 2 cores).
figures: $(STAMP)
	$(BIN)/lstmkit experiment all
	for c in lstm gru rnn; do $(BIN)/lstmkit diagram $$c -o docs/figures/$$c-cell.svg; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
