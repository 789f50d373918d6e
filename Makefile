# Two commands matter: `make demo` and `make test`. Both create .venv when
# missing and install what they need; a stamp file re-installs when
# pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench lint clean install

# The venv without pip (ensurepip alone took 18 s of a fresh set-up here); uv goes in with the system's pip
# (--python, pip >= 22.3), and uv puts pip in for whoever wants it. Where that fails, the venv's own pip
# does all the work.
$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)

# uv (from PyPI) installs the same versions as pip in a fraction of the time
# (docs/architecture.md#set-up-and-tests).
# A .venv made by a Python older than pyproject's 3.11 would fail every later install: say how to start over.
$(STAMP): pyproject.toml | $(BIN)/python
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: .venv has $$($(BIN)/python -V 2>&1); signalwise needs Python 3.11 or newer:" \
	       "make clean, then make $(or $(MAKECMDGOALS),install) PYTHON=python3.11 (or newer)"; exit 1; }
	if $(PYTHON) -m pip --python $(BIN)/python install --quiet uv; then \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[dev]" pip; \
	else \
	  $(BIN)/python -m ensurepip --upgrade && $(BIN)/python -m pip install --quiet -e ".[dev]"; \
	fi
	touch $(STAMP)

install: $(STAMP)

# Python writes the .pyc files of what these commands import, once, into .venv and src/, even where
# PYTHONDONTWRITEBYTECODE is set (our machines set it): the many `signalwise` processes of a demo, the suite
# or a benchmark then load them instead of compiling every module again. Compiling all of .venv at install
# time instead (uv --compile-bytecode: 12,700 files, Ray's 2,600 among them) cost more than the suite
# compiles on first import.
demo test test-all bench: export PYTHONDONTWRITEBYTECODE :=

demo: $(STAMP)
	$(BIN)/signalwise demo

# three workers on two cores: many tests wait on a subprocess, a server or a browser, and a third worker
# runs meanwhile (the whole suite alone on a 2-core machine: 463 s against 633 s with two; four were no
# faster: 772 s against 745 s with three, on another, slower day; on a third, 670 s against 706 s: one run each, both
# ways within the machines' noise, and the suite's CPU, not its waits, is what bounds it there:
# docs/architecture.md#set-up-and-tests). The longest files run first, then the
# others directory by directory (tests/conftest.py), not most tests first (xdist's default reorder, turned off
# here).
# `make test` (CI's) leaves out the tests marked slow: five seconds or more each on the slowest 2-core machine
# measured, four where another test runs the same command (a long SUMO run, a training, a restart), while each
# main command keeps an end-to-end test here.
# The whole suite took 1,417 s there, 598 s on another machine (docs/architecture.md#set-up-and-tests).
# `make test-all` runs every test.
test: $(STAMP)
	$(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder -q

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache
