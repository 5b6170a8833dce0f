# vertebro — the two quick-start commands are `make demo` and `make test`.
# Both need only Python >= 3.11 with pip; they create .venv themselves.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench rules analyses clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet .
	touch $@

$(VENV)/.dev-installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

## demo: install and screen the bundled demo corpus into reports/demo/
demo: $(VENV)/.installed
	$(BIN)/vertebro screen corpora/demo/notes.csv -o reports/demo
	@echo "open reports/demo/report.html"

## test: install the dev dependencies and run the test suite
test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q

## bench: the side-by-side performance benchmark (minutes; reads ../shared/external when present)
bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/bench.py

## rules: validate the rule files and run their examples
rules: $(VENV)/.installed
	$(BIN)/vertebro rules check

## analyses: rewrite the pre-filter's table of the shipped regexes (after editing a rule's regex or
## pipeline/prefilter.py; a test says when it is out of date)
analyses: $(VENV)/.dev-installed
	$(BIN)/python -c "from pipeline.prefilter import write_analyses; print(write_analyses(), 'patterns')"

clean:
	rm -rf $(VENV) build *.egg-info reports/demo
