# pyvaccel: every target works on a fresh machine with Python 3.11 and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
PYNQ_VENV := .venv-pynq
# PYNQ 3.x images run Python 3.10: .venv-pynq mirrors one (Python 3.10, pynq, numpy<2).
# The first python3.10 that runs (a pyenv shim may exist and refuse).
PYNQ_PYTHON ?= $(shell for p in $$(command -v python3.10) $(HOME)/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null && { echo "$$p"; break; }; done)
PYNQ_STAMP := $(PYNQ_VENV)/.installed-py3.10
# The inference plugins (onnxruntime, ai-edge-litert, CPU torch) and what their tests use.
INFERENCE_EXTRAS := onnx,tflite,torch,inference-test
MEDIAPIPE_VERSION := 0.10.21
MEDIAPIPE_WHEEL := build/mediapipe/mediapipe-$(MEDIAPIPE_VERSION)-cp311-cp311-manylinux_2_28_x86_64.whl

.PHONY: install test demo agent bench lint clean test-pynq wheel docs

$(STAMP): pyproject.toml $(MEDIAPIPE_WHEEL)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,$(INFERENCE_EXTRAS)]'
	touch $(STAMP)

# The inference tests' pretrained models (face detection, selfie segmentation, pose
# landmarks) are TFLite files inside mediapipe's wheel: fetched here, at install time,
# and read from the wheel by the tests (mediapipe itself is never installed or imported).
$(MEDIAPIPE_WHEEL):
	mkdir -p $(dir $@)
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 -d $(dir $@) mediapipe==$(MEDIAPIPE_VERSION)
	test -f $@

install: $(STAMP)

# The pynq package pins numpy<2: it gets an environment of its own, on the board's Python.
$(PYNQ_STAMP): pyproject.toml
	@test -n "$(PYNQ_PYTHON)" || { echo "make: $(PYNQ_VENV) needs Python 3.10, the Python of PYNQ 3.x images; install it (pyenv install 3.10) or pass PYNQ_PYTHON=/path/to/python3.10" >&2; exit 1; }
	@$(PYNQ_PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' || { echo "make: PYNQ_PYTHON=$(PYNQ_PYTHON) is not Python 3.10" >&2; exit 1; }
	rm -rf $(PYNQ_VENV)
	$(PYNQ_PYTHON) -m venv $(PYNQ_VENV)
	$(PYNQ_VENV)/bin/python -m pip install -q --upgrade pip
	$(PYNQ_VENV)/bin/python -m pip install -q -e '.[dev,pynq]' 'numpy<2'
	touch $(PYNQ_STAMP)

test: $(STAMP) $(PYNQ_STAMP)
	$(PY) -m pytest -q
	$(PYNQ_VENV)/bin/python -m pytest -q  # again on Python 3.10 (PYNQ 3.x), with the real pynq

# The vsock end-to-end test in a QEMU guest (root, Debian): vm/run.sh, see vm/README.md.
.PHONY: test-vm
test-vm: $(STAMP)
	vm/run.sh

test-pynq: $(PYNQ_STAMP)
	$(PYNQ_VENV)/bin/python -m pytest -q tests/test_pynq*.py

# A wheel to copy to a board (README: the pynq plugin): dist/pyvaccel-VERSION-py3-none-any.whl
wheel: $(STAMP)
	rm -rf build/lib build/bdist.*
	$(PY) -m pip wheel -q --no-deps -w dist .
	@ls dist/*.whl

demo: $(STAMP)
	$(PY) -m vaccel.cli.demo

agent: $(STAMP)
	VACCEL_PLUGINS=$${VACCEL_PLUGINS:-numpy} $(VENV)/bin/vaccel-agent -a $${VACCEL_AGENT_ENDPOINT:-tcp://127.0.0.1:65500}

bench: $(STAMP)
	$(VENV)/bin/vaccel bench

lint: $(STAMP) $(DOCS_STAMP)
	$(VENV)/bin/ruff check vaccel protocol transport server client plugins cli tests
	rm -rf build/typecheck build/lib build/bdist* && $(PY) -m pip install -q --no-deps --target build/typecheck .
	cd build/typecheck && ../../$(PY) -m mypy --config-file ../../pyproject.toml -p vaccel
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -q

# The documentation site (mkdocs-material, mkdocstrings): build/site/index.html. The docs
# extra is installed here, not by make install. --strict: any warning fails the build.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(STAMP) $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

clean:
	rm -rf $(VENV) $(PYNQ_VENV) build *.egg-info
