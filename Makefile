# sam2flow: the README's two commands are `make run` and `make test`.
# Both create .venv when missing and install everything they need into it.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.sam2flow-installed
CORES  ?= 2

.PHONY: install run test test-alone test-cluster test-slow test-gpu lint mutation bench bench-quick demo screenshots clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# The README's install steps for users without make: one script for both.
$(STAMP): pyproject.toml envs/install.sh | $(PY)
	PYTHON=$(PY) SAM2FLOW_EXTRAS=dev,h5 bash envs/install.sh
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded demo: synthetic video + DeepLabCut-style predictions.
run: install
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/demo.yaml
	@echo
	@echo "Results: results/demo/ (masks.h5, tracks.csv, overlay.mp4, contact_sheet.png)"
	@echo "Memory report: results/memory_report.html (summary: results/memory_summary.csv)"
	@echo "Weights: random unless resources/checkpoints/sam2.1_hiera_tiny.pt exists (see logs/)"

# The cluster tests (a real single-node SLURM, about 19 minutes on 2 cores) have their own
# target, so that `make test` stays near 30 minutes; .ci/run runs both.
test: install
	$(VENV)/bin/pytest -q -m "not slow and not slurm" --durations=15

# Each test file alone, one after another (about 20 minutes): a test that passes only
# after another one has run (a cache it filled, a logger it set) fails here.
TEST_FILES = $(sort $(wildcard tests/test_*.py tests/memory/test_*.py tests/robustness/test_*.py tests/workflow/test_*.py))
test-alone: install
	@for f in $(TEST_FILES); do \
		out=$$($(VENV)/bin/pytest -q -p no:cacheprovider -m "not slow and not slurm and not gpu" $$f 2>&1); \
		rc=$$?; echo "$$f: $$(echo "$$out" | tail -1)"; \
		[ $$rc -eq 0 ] || [ $$rc -eq 5 ] || { echo "$$out"; exit 1; }; \
	done

test-cluster: install
	$(VENV)/bin/pytest -q -m slurm --durations=10

test-slow: install
	$(VENV)/bin/pytest -q -m slow --durations=15

# Where CUDA is: the GPU tests, then the GPU rows of the benchmarks.
test-gpu: install
	$(VENV)/bin/pytest -q -m gpu tests/test_gpu.py -rA
	$(PY) bench/run.py --gpu

# Mutation testing (mutmut) of the modules that hold the promises, one group of modules at
# a time with its own tests (tests/mutation_run.py); scores per module go to TESTING.md.
# .mutation/<group>/ keeps each group's results (mutmut browse there).
mutation: install
	$(PIP) install -q "mutmut>=3.8"
	$(PY) tests/named_mutants.py
	$(PY) tests/mutation_run.py --cores $(CORES)

lint: install
	$(VENV)/bin/ruff check src tests workflow bench
	$(VENV)/bin/snakefmt --check .
	$(VENV)/bin/snakemake --lint --cores 1

bench-quick: install
	$(PY) bench/run.py --quick

bench: install
	$(PY) bench/run.py

# The memory report as a reader sees it, in headless Chromium (apt-get install chromium):
# the demo's (from make run) and one of 5,400 batches (bench/summary_scale.py).
CHROMIUM ?= chromium
SHOT := $(CHROMIUM) --headless --no-sandbox --hide-scrollbars --window-size=1200,2600
screenshots: run
	mkdir -p docs
	$(PY) bench/summary_scale.py 5400 --html docs/report-5400.html
	$(SHOT) --screenshot=docs/report-5400.png "file://$(CURDIR)/docs/report-5400.html"
	$(SHOT) --screenshot=docs/report-demo.png "file://$(CURDIR)/results/memory_report.html"
	rm docs/report-5400.html

clean:
	rm -rf results resources/sizing.json .snakemake
