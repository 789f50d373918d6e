# Two commands matter: `make demo` and `make test`. Both create .venv when
# missing and install what they need; a stamp file re-installs when
# pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv (from PyPI) installs the same versions as pip in less than half the
# time: 26 s against 69 s for a new .venv (docs/architecture.md#set-up-and-tests).
# --compile-bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set,
# nothing would ever write the .pyc files, and every process would compile
# every module again. Where uv cannot be installed, pip does the work.
$(STAMP): pyproject.toml | $(BIN)/python
	if $(BIN)/pip install --quiet uv; then \
	  $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[dev]"; \
	else \
	  $(BIN)/pip install --quiet --upgrade pip && $(BIN)/pip install --quiet -e ".[dev]"; \
	fi
	touch $(STAMP)

install: $(STAMP)

# signalwise's own modules compiled first (the editable install leaves them as
# source, and PYTHONDONTWRITEBYTECODE keeps Python from caching them): each of
# the many `signalwise` processes a demo, the suite or a benchmark starts then
# loads them instead of compiling them again.
demo: $(STAMP)
	$(BIN)/python -m compileall -q src > /dev/null
	$(BIN)/signalwise demo

# three workers on two cores: many tests wait on a subprocess, a server or a browser, and a third worker
# runs meanwhile (the whole suite alone on a 2-core machine: 463 s against 633 s with two; four were no
# faster: 772 s against 745 s with three, on another, slower day). Files run longest directory first
# (tests/conftest.py), not most tests first (xdist's default reorder, turned off here).
test: $(STAMP)
	$(BIN)/python -m compileall -q src > /dev/null
	$(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder -q

bench: $(STAMP)
	$(BIN)/python -m compileall -q src > /dev/null
	$(BIN)/python bench/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache
