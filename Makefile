# On a fresh Debian/Ubuntu machine:  make demo     (the whole job on generated songs: build, train, evaluate, predict)
#                                    make example  (only build a data set from generated songs)
#                                    make test     (the test suite)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: test demo example setup system-deps bench-build bench-labels bench-train bench-predict bench-dask bench-resume clean

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: system-deps $(VENV)/.installed

# SoX with MP3 support (and python3-venv) via apt-get, only when missing.
system-deps:
	@bash scripts/install_system_deps.sh

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dask]'
	touch $@

# Generate 80 tagged songs of 4 genres, then build, train, evaluate and predict on them (genreslice-demo/).
demo: setup
	$(BIN)/genreslice demo --out genreslice-demo

# Generate a small tagged music folder and build it into example/dataset.
example: setup
	$(BIN)/python -m genreslice.scripts.example example

# Build benchmark: decode floor vs predecessor vs genreslice build (1 and 2 workers).
bench-build: setup
	$(BIN)/python -m benchmarks.bench_build

# Label benchmark: tag reading vs the SoX step; FMA (106,574 rows) and MTG-Jamendo metadata load and planning.
bench-labels: setup
	$(BIN)/python -m benchmarks.bench_labels

# Training benchmark: data source throughput, lazy vs in-memory epoch, peak memory at 2,000 vs 20,000 slices.
bench-train: setup
	$(BIN)/python -m benchmarks.bench_train

# Prediction benchmark: songs per second for 1 and 2 workers, SoX vs model time, batched vs per-song model calls.
bench-predict: setup
	$(BIN)/python -m benchmarks.bench_predict

# Dask benchmark: the same build on the process pool and on a local Dask cluster, alternated; ratio and outputs.
bench-dask: setup
	$(BIN)/python -m benchmarks.bench_dask

# Resume-check benchmark: what checking built tracks' slices costs per run (file count, sizes, full decode).
bench-resume: setup
	$(BIN)/python -m benchmarks.bench_resume

clean:
	rm -rf $(VENV) build *.egg-info
