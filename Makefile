# Every target bootstraps .venv from python3 alone, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# A project-local Numba cache: warm across runs, never shared with other checkouts.
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache
export MPLBACKEND := Agg

.PHONY: check check-full test test-thorough bench docs clean phase phase-redraw scaling scaling-redraw ladder ladder-redraw ll-one-step ll-one-step-figures

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[test,dask,images]'
	touch $(STAMP)

# OpenBLAS picks its kernels from the CPU, and its AVX2 and AVX-512 kernels round
# differently (a GEMM and an SVD on this machine: other last bits with each), so a committed
# report would change with the machine that regenerates it.  make check pins the AVX2
# ("Haswell") kernels wherever the CPU has AVX2; the report records the kernels it ran.
ifeq ($(shell grep -qs avx2 /proc/cpuinfo && echo yes),yes)
check check-full: export OPENBLAS_CORETYPE ?= Haswell
endif

## The main job: run every theorem check in the quick regime on 3 seeds, print the table,
## write reports/check_report.{md,json} and the figures.  A FAIL is a measured result and
## is reported, not an error of the run; a check that crashes fails the target.
check: $(STAMP)
	$(BIN)/theorylab check --quick --seeds 3 --jobs 2 --no-fail-exit \
		--report reports/check_report.md --json reports/check_report.json \
		--timings reports/check_timings.json --figures figures

## The checks in the full regime (the spec's sizes, 3 seeds, 2 jobs): reports/check_report_full.*
## and figures/full/.  Tens of minutes; never in `make test`.
check-full: $(STAMP)
	$(BIN)/theorylab check --full --seeds 3 --jobs 2 --no-fail-exit \
		--report reports/check_report_full.md --json reports/check_report_full.json \
		--figures figures/full

## The test suite (Hypothesis in its deterministic `ci` profile), on both cores: every
## test is independent of the others, so the split between workers cannot change a result.
TEST_WORKERS ?= 2
test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --durations=15

test-thorough: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -q -n $(TEST_WORKERS)

## The documentation site (Sphinx, numpydoc, PyData theme, an executed sphinx-gallery of
## examples/gallery/): docs/_build/html, warnings are errors.  Its dependencies are the
## `docs` extra, installed here only: `make check` and `make test` do not need them.
DOCS_STAMP := $(VENV)/.docs-stamp
$(DOCS_STAMP): $(STAMP) setup.cfg
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html -j 1 docs docs/_build/html

## Phase maps (issue 20): every claim over (d, k, training length), on the claims' own
## criteria; examples/sweeps/phase_*.toml into resumable stores in reports/phase/, cheap cells
## first, with a progress bar and a time estimate; then the committed CSVs, the figures
## figures/phase_*.png and reports/phase_report.md.  The whole map is ~5 CPU hours: stop it
## when you like (PHASE_ARGS="--max-minutes 45"), the next run resumes.  Never in `make test`.
PHASE_WORKERS ?= 1
PHASE_ARGS ?=
phase: $(STAMP)
	$(BIN)/python -m proofs_check.phase --workers $(PHASE_WORKERS) $(PHASE_ARGS)

## The figures and the report from the committed CSVs in reports/phase/, without computing.
phase-redraw: $(STAMP)
	$(BIN)/python -m proofs_check.phase --redraw
## Issue 20 part 3: the FP claims along the scaling paths k = round(c d^0.4) through the
## quick regimes, d = 64 ... 1024, l2 and linf, 3 seeds (examples/sweeps/scaling_*.toml),
## cheap d first, resumable stores in reports/scaling/, a progress bar with a time estimate;
## then the committed CSVs, the exponent fits, figures/scaling_*.png and
## reports/scaling_report.md.  SCALING_ARGS="--max-minutes 45" stops starting cells after
## 45 minutes; the next run resumes.  Never in `make test`.
SCALING_WORKERS ?= 1
SCALING_ARGS ?=
scaling: $(STAMP)
	$(BIN)/python -m proofs_check.scaling --workers $(SCALING_WORKERS) $(SCALING_ARGS)

## The fits, figures and report from the committed CSVs in reports/scaling/, without computing.
scaling-redraw: $(STAMP)
	$(BIN)/python -m proofs_check.scaling --redraw
## The FGM length ladder: V3 and V4 at the quick regime with the FGM stage's length
## T_adv x 1, 2, 4, 8, 16 on seeds 0-2 (examples/sweeps/ladder_*.toml, 11 CPU min), resumable
## stores in reports/ladder/, a progress bar; then the committed CSVs, figures/ladder_fp.png,
## reports/ladder_report.md and the summary the check report quotes.  Never in `make test`.
LADDER_WORKERS ?= 1
LADDER_ARGS ?=
ladder: $(STAMP)
	$(BIN)/python -m proofs_check.ladder --workers $(LADDER_WORKERS) $(LADDER_ARGS)

## The report and figure from the committed CSVs in reports/ladder/, without computing.
ladder-redraw: $(STAMP)
	$(BIN)/python -m proofs_check.ladder --redraw
## Issue 17's map of Li & Li's one-step algorithm from scratch (63 cells = 21 settings x 3
## seeds, ~50-70 min on one shared core): one worker under nice 10, resumable (re-running
## runs only the cells not done), a progress bar; then the CSV export (committed) and the
## figures.  `make ll-one-step-figures` redraws the figures from the committed CSV alone.
LL_MAP := examples/sweeps/ll_one_step
LL_STORE := .sweeps/ll_one_step.sqlite
ll-one-step: $(STAMP)
	nice -n 10 $(BIN)/theorylab sweep run $(LL_MAP).toml --backend processes --workers 1 \
		--results $(LL_STORE)
	$(BIN)/theorylab sweep export $(LL_STORE) --csv $(LL_MAP).csv
	$(MAKE) ll-one-step-figures

ll-one-step-figures: $(STAMP)
	$(BIN)/python -m theorylab.sweep.ll_one_step figures $(LL_MAP).csv --out figures

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .numba_cache .pytest_cache .hypothesis build *.egg-info docs/_build \
		docs/api docs/auto_examples docs/sg_execution_times.rst
