# The README's commands. `make serve` and `make test` are the whole set-up on a fresh machine.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PYTHON  ?= python3

.PHONY: serve test test-fast train bench device-check lint system-deps image clean

# A stamp per extra, remade only when a pyproject.toml changes, so a ready venv is not reinstalled.
# The SDK (sdk/) is its own distribution: installed editable beside the service, in one resolve.
PROJECTS := pyproject.toml sdk/pyproject.toml

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.stamp-runtime: $(PROJECTS) | $(PY)
	$(PY) -m pip install --quiet -e ./sdk -e .
	touch $@

$(VENV)/.stamp-dev: $(PROJECTS) | $(PY)
	$(PY) -m pip install --quiet -e ./sdk -e '.[dev]'
	touch $@ $(VENV)/.stamp-runtime

serve: $(VENV)/.stamp-runtime
	$(PY) -m service

system-deps:
	bash scripts/install-system-deps.sh

# The service's image, digit-autoencoder:0.1.0: docker when an engine answers, else buildah.
# IMAGE, TORCH_INDEX_URL (empty: PyPI), PYTHON_IMAGE and BUILDER pass through to the script.
image:
	bash scripts/build-image.sh

test: $(VENV)/.stamp-dev system-deps
	$(PY) -m pytest

test-fast: $(VENV)/.stamp-dev
	$(PY) -m pytest -m "not browser and not slow"

train: $(VENV)/.stamp-dev
	$(PY) -m training --recipe onecycle --out runs/default --export models/mnist-ae.pt

bench: $(VENV)/.stamp-dev system-deps
	$(PY) -m bench

# The service on AE_DEVICE (default cuda) against the CPU's answers, under the bench's
# /reconstruct cells, with its memory: writes bench/RESULTS-<device>.md (README, GPU check).
# Only wrk is installed for it; where no package index answers, the cells are marked skipped.
device-check: $(VENV)/.stamp-runtime
	-bash scripts/install-system-deps.sh wrk
	$(PY) -m scripts.device_check $(DEVICE_CHECK_ARGS)

lint: $(VENV)/.stamp-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

clean:
	rm -rf runs .pytest_cache .hypothesis test-artifacts
