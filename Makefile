# The README's two commands: `make demo` and `make test`. Both do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench setup clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch pinned: 2.13.0 resolves to the local CPU build here; unpinned pulls GBs of CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/deblurdiff demo --out demo-output

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --timeout=600

test-all: $(STAMP)
	$(PY) -m pytest -q --timeout=3600

bench: $(STAMP)
	$(PY) benchmarks/run.py $(NAME)

clean:
	rm -rf $(VENV) demo-output .pytest_cache
