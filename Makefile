# On a fresh Debian/Ubuntu machine:  make demo     (the whole job on generated songs: build, train, evaluate, predict)
#                                    make example  (only build a data set from generated songs)
#                                    make test     (the test suite)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: test demo example setup system-deps bench-build bench-labels bench-train bench-predict bench-dask bench-resume bench-stopping bench-models bench-tagging bench-duplicates bench-serve same-outputs clean

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: system-deps $(VENV)/.installed

# SoX with MP3 support (and python3-venv) via apt-get, only when missing.
system-deps:
	@bash scripts/install_system_deps.sh

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dask,serve,export]'
	touch $@

# Generate 80 tagged songs of 4 genres, then build, train, evaluate and predict on them (genreslice-demo/).
demo: setup
	$(BIN)/genreslice demo --out genreslice-demo

# Generate a small tagged music folder and build it into example/dataset.
example: setup
	$(BIN)/python -m genreslice.scripts.example example

# Benchmarks (benchmarks/bench_NAME.py; each prints its figures):
#   bench-build    decode floor vs predecessor vs genreslice build (1 and 2 workers)
#   bench-labels   tag reading vs the SoX step; FMA (106,574 rows) and MTG-Jamendo metadata load and planning
#   bench-train    data source throughput, lazy vs in-memory epoch, peak memory at 2,000 vs 20,000 slices
#   bench-predict  songs per second for 1 and 2 workers, SoX vs model time, batched vs per-song model calls
#   bench-dask     the same build on the process pool and on a local Dask cluster, alternated; ratio and outputs
#   bench-resume   what checking built tracks' slices costs per run (file count, sizes, full decode)
#   bench-stopping the default --patience against others on a 3-artists-per-genre collection and the demo corpus
#   bench-models   sox and mel data sets of a harder generated corpus, every model preset trained on each; compare table
#   bench-tagging  a generated multi-label corpus against a shuffled-label control (ROC-AUC, PR-AUC); GTZAN-layout
#                  folders and a CSV-labelled dance corpus end to end; dry runs over the real MTG-Jamendo categories
#   bench-serve    genreslice serve under 1, 2, 4 and 8 concurrent clients: songs per second against predict's
#   bench-duplicates  copies planted in a generated corpus (re-encoded, resampled, louder, trimmed, under other
#                  artists): recall, false groups, and the build's time with and without fingerprints
bench-build bench-labels bench-train bench-predict bench-dask bench-resume bench-stopping bench-models bench-tagging bench-duplicates bench-serve: bench-%: setup
	$(BIN)/python -m benchmarks.bench_$*

# Same outputs: build, train and predict a fixed generated corpus; compare every output with the reference run.
same-outputs: setup
	$(BIN)/python -m benchmarks.same_outputs --work bench-out/same-outputs --cli "$(BIN)/python -m genreslice" \
		--compare benchmarks/same_outputs_reference.json

clean:
	rm -rf $(VENV) build *.egg-info
