# The README's commands. Each creates or refreshes .venv and installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.hamgrad-installed
JOBS   ?= 2

.PHONY: demo test test-slow bench lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hamgrad demo

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q

test-slow: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q -m slow

bench: $(STAMP)
	$(PY) -m benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info
