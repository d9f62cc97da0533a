# The two commands every user runs: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
CORES ?= 2

.PHONY: install demo numbers test report lint bench clean

install: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/snakemake --cores $(CORES) demo
	@echo "Done. The numbers: results/demo/summary.csv (print them: $(BIN)/rpsloc summary results/demo)"
	@echo "The figures: results/demo/figures/; every job's log: logs/demo/"
	@echo "A report of it all: make report (results/report.html)"

numbers: $(INSTALLED)
	$(BIN)/snakemake --cores $(CORES) demo_numbers
	@echo "Results: results/demo/summary.csv"

report: demo
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo "Report: results/report.html"

test: $(INSTALLED)
	$(BIN)/python -m pytest

# Every benchmark, and bench/RESULTS.md's table rewritten (bench/README.md). Run on an idle
# machine: make bench AUTHORS_CODE=... AUTHORS_PYTHON=... WSOLEVALUATION=... PREPARED=...
AUTHORS_CODE ?= ../UOLwRPS
AUTHORS_PYTHON ?= python3
WSOLEVALUATION ?= ../wsolevaluation
WSOL_PYTHON ?= $(AUTHORS_PYTHON)
PREPARED ?=
WSOL_METADATA ?= ../shared/wsol-metadata/CUB
BENCH_SET = $(if $(PREPARED),--prepared $(PREPARED),--wsol-metadata $(WSOL_METADATA))

bench: $(INSTALLED)
	$(BIN)/python bench/run_all.py --authors-code $(AUTHORS_CODE) \
		--authors-python $(AUTHORS_PYTHON) --wsolevaluation $(WSOLEVALUATION) \
		--wsol-python $(WSOL_PYTHON) $(BENCH_SET) $(BENCH_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check src tests bench
	$(BIN)/snakemake --lint

clean:
	rm -rf results logs benchmarks .snakemake
