VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install run test test-gpu gpu-check lint docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev,plot]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/emobench compare --device auto

test: $(STAMP)
	$(PY) -m pytest

test-gpu: $(STAMP)
	$(PY) -m pytest -m gpu

# The GPU acceptance run (benchmarks/gpu_check.py, <= 6 min); DRY_RUN=1 lists its commands and
# budgets without a GPU; GPU_CHECK=--full for the wider run. No install stamp: it runs from a
# .venv built elsewhere, with no pip and no network.
gpu-check:
	DRY_RUN=$(DRY_RUN) $(PY) benchmarks/gpu_check.py $(GPU_CHECK)

lint: $(STAMP)
	$(VENV)/bin/ruff check emobench tests
	$(VENV)/bin/ruff format --check emobench tests
	$(VENV)/bin/mypy emobench
	$(VENV)/bin/lint-imports

# Generated pages: the metric table in docs/metrics.md and the CLI reference docs/commands.md
# (tests fail when either differs from the code).
docs: $(STAMP)
	$(PY) -m emobench.results docs/metrics.md
	$(PY) -m emobench.cli.reference > docs/commands.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
