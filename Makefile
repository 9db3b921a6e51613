# Two entry points: `make run` (set up, then run the default study) and `make test`.
# Both create .venv when missing and install what is missing into it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hwtune-installed
# CPU build of torch unless an NVIDIA GPU is present (a bare `torch` pulls a multi-GB CUDA build).
TORCH_CPU_VERSION ?= 2.13.0
# Test processes (pytest-xdist); one file per process at a time, so a file's module fixtures (a Ray
# cluster, a trained network) are built once. TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= 2

.PHONY: run test setup clean

run: $(STAMP)
	$(BIN)/hwtune run

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not gpu" -n $(TEST_WORKERS) --dist loadfile

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if ! $(BIN)/python -c "import torch" 2>/dev/null; then \
	  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	    echo "NVIDIA GPU found: installing the default (CUDA) torch build"; \
	    $(BIN)/python -m pip install -q torch; \
	  else \
	    echo "No NVIDIA GPU: installing the CPU build torch==$(TORCH_CPU_VERSION)"; \
	    $(BIN)/python -m pip install -q torch==$(TORCH_CPU_VERSION); \
	  fi; \
	fi
	# keras: pure Python (Keras 3 + h5py, optree, absl-py); its tests run on the torch backend, no TensorFlow
	$(BIN)/python -m pip install -q -e ".[test,onnx,compress,agent,ray,keras]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) hwtune.db
