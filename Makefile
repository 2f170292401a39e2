# lepton_nb: two commands on a fresh machine
#   make demo   - create .venv, install everything, run the quickstart notebook on a 2-engine cluster
#   make test   - install the test extras and run the whole suite (nbval on example_notebooks/ included)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip -q --disable-pip-version-check
STAMP  := $(VENV)/.lepton-installed

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# the CPU build of torch first, so the package's torch>=2.3 pulls nothing more
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m lepton_nb.demo

lint: install
	$(PY) -m ruff check lepton_nb tests benchmarks

test: install lint
	$(PY) -m pytest tests example_notebooks --nbval-lax --nbval-kernel-name lepton -p no:cacheprovider

bench: install
	$(PY) benchmarks/bench_roundtrip.py
	$(PY) benchmarks/bench_push.py

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
