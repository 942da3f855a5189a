# make demo: nightly pipeline on the embedded default dataset. make test: the test suite.
# Both create .venv and install the project into it when missing or when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DS ?= 2026-11-22
PYTEST_ARGS ?=

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hybridrec run --ds $(DS)

lint: $(STAMP)
	$(BIN)/ruff check lib tests jobs airflow_dags

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf lakehouse .pytest_cache build dist lib/*.egg-info
