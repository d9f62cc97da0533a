# The two commands every user runs: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
CORES ?= 2

.PHONY: install demo test report lint clean

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

report: demo
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo "Report: results/report.html"

test: $(INSTALLED)
	$(BIN)/python -m pytest

lint: $(INSTALLED)
	$(BIN)/ruff check src tests bench
	$(BIN)/snakemake --lint

clean:
	rm -rf results logs benchmarks .snakemake
