# lepton_nb: two commands on a fresh machine
#   make demo   - create .venv, install everything, run the quickstart notebook on a 2-engine cluster
#   make test   - install the test extras and run the whole suite (nbval on example_notebooks/ included;
#                 tests/test_docs.py builds the docs with sphinx-build -W --keep-going, and link-checks them)
#   make docs   - the documentation site, into docs/_build/html
#
# LEPTON_SKIP_JS=1 skips the npm build of the JupyterLab extension (labextension/) for Python-only
# work, and make test then deselects the tests that need it (-m "not labextension"). CI builds it.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip -q --disable-pip-version-check
STAMP  := $(VENV)/.lepton-installed
LABEXT := $(wildcard labextension/package.json labextension/src/*.ts labextension/style/*)
NOT_JS :=

ifeq ($(CI),)
ifeq ($(LEPTON_SKIP_JS),1)
export SKIP_JUPYTER_BUILDER := 1
NOT_JS := and not labextension
endif
endif

# make test: the tests wait far more than they compute (engines registering, Slurm, a browser,
# timeouts), so two pytest-xdist workers run them, grouped by conftest.py (a file per worker,
# the rig's and hub's on one, the longest first); then the tests marked "alone" (they time
# the machine or count all of /dev/shm) run one at a time
PYTEST := $(PY) -m pytest tests example_notebooks --nbval-lax --nbval-kernel-name lepton \
  -p no:cacheprovider --durations=60
WORKERS ?= 2

.PHONY: demo test install lint bench clean chromium rig-packages hub-proxy docs notebooks \
  prerequisites system-packages

$(STAMP): pyproject.toml $(LABEXT)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# the CPU build of torch first, so the package's torch>=2.3 pulls nothing more
	$(PIP) install torch==2.13.0
	# also builds labextension/ with npm (hatch-jupyter-builder), unless LEPTON_SKIP_JS=1
	$(PIP) install -e ".[test]"
	touch $(STAMP)

# Debian's Chromium for the browser tests (Playwright drives it; no browser is ever downloaded)
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# Debian's Slurm, munge and sshd for the two-node test rig (tests/hosts/rig.py), which the
# tests start in network namespaces and remove again; nothing is written to /etc/slurm
RIG_BINS := /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged /usr/sbin/sshd
rig-packages:
	@for b in $(RIG_BINS); do test -x $$b || missing=1; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    slurm-wlm munge openssh-server openssh-client iproute2 >/dev/null; fi

# JupyterHub's proxy for the hub tests (tests/hub/), from npm into build/hub
CHP := build/hub/node_modules/.bin/configurable-http-proxy
$(CHP):
	mkdir -p build/hub && npm install --silent --no-audit --no-fund --prefix build/hub \
	  configurable-http-proxy@5
hub-proxy: $(CHP)

install: $(STAMP)

demo: install
	$(PY) -m lepton_nb.demo

lint: install
	$(PY) -m ruff check lepton_nb tests benchmarks docs
	$(PY) -m mypy lepton_nb --ignore-missing-imports

# what the tests need, side by side: the Python install and its lint, the system packages
# (apt: one after the other, they share dpkg's lock) and JupyterHub's proxy (npm)
prerequisites:
	$(MAKE) -j3 --no-print-directory lint system-packages hub-proxy

system-packages:
	$(MAKE) --no-print-directory chromium
	$(MAKE) --no-print-directory rig-packages

test: prerequisites
	$(PYTEST) -n $(WORKERS) --dist loadscope --no-loadscope-reorder -m "not alone $(NOT_JS)"; a=$$?; \
	$(PYTEST) -m "alone $(NOT_JS)"; b=$$?; \
	echo "make test: the grouped tests exited $$a, the alone ones $$b"; test $$a = 0 -a $$b = 0

# a warning fails the build; the example notebooks are rendered as committed (never run here)
docs: install
	$(PY) -m sphinx -W --keep-going -b html -d docs/_build/doctrees docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

# run the example notebooks in place, so that the docs show their outputs (then commit them)
notebooks: install rig-packages
	$(PY) docs/run_notebooks.py

bench: install
	$(PY) -m pip install -q "dask[distributed]>=2024.1"
	$(PY) benchmarks/bench_import.py
	$(PY) benchmarks/bench_roundtrip.py
	$(PY) benchmarks/bench_hosts.py
	$(PY) benchmarks/bench_push.py
	$(PY) benchmarks/bench_kernels.py
	$(PY) benchmarks/bench_allreduce.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_tasks.py

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis lepton_nb/labextension labextension/lib \
	  labextension/node_modules
