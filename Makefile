# pyvaccel: every target works on a fresh machine with Python 3.11 and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYNQ_VENV := .venv-pynq
PYNQ_STAMP := $(PYNQ_VENV)/.installed

.PHONY: install test demo agent bench lint clean test-pynq

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The pynq package pins numpy<2: it gets an environment of its own.
$(PYNQ_STAMP): pyproject.toml
	$(PYTHON) -m venv $(PYNQ_VENV)
	$(PYNQ_VENV)/bin/python -m pip install -q --upgrade pip
	$(PYNQ_VENV)/bin/python -m pip install -q -e '.[dev,pynq]'
	touch $(PYNQ_STAMP)

test: $(STAMP) $(PYNQ_STAMP)
	$(PY) -m pytest -q
	$(PYNQ_VENV)/bin/python -m pytest -q tests/test_pynq.py tests/test_pynq_agent.py

# The vsock end-to-end test in a QEMU guest (root, Debian): vm/run.sh, see vm/README.md.
.PHONY: test-vm
test-vm: $(STAMP)
	vm/run.sh

test-pynq: $(PYNQ_STAMP)
	$(PYNQ_VENV)/bin/python -m pytest -q tests/test_pynq.py tests/test_pynq_agent.py

demo: $(STAMP)
	$(PY) -m vaccel.demo

agent: $(STAMP)
	VACCEL_PLUGINS=$${VACCEL_PLUGINS:-numpy} $(VENV)/bin/vaccel-agent -a $${VACCEL_AGENT_ENDPOINT:-tcp://127.0.0.1:65500}

bench: $(STAMP)
	$(VENV)/bin/vaccel bench

lint: $(STAMP)
	$(VENV)/bin/ruff check vaccel protocol transport server client plugins tests
	rm -rf build/typecheck && $(PY) -m pip install -q --no-deps --target build/typecheck .
	cd build/typecheck && ../../$(PY) -m mypy --config-file ../../pyproject.toml -p vaccel

clean:
	rm -rf $(VENV) $(PYNQ_VENV) build *.egg-info
