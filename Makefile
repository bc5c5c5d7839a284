# make setup: create .venv and install exactly requirements.lock with uv; make demo / make test reuse it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
# This kind of machine keeps torch's CPU wheel here; the lock pins it (2.13.0+cpu, by its hash),
# so uv, which reads no pip configuration, can never fetch PyPI's multi-GB CUDA build instead.
WHEELS ?= /opt/wheels
# Where PYTHONDONTWRITEBYTECODE is set (as on these machines) every process would compile torch,
# transformers and the rest anew at each import (torch's import took twice as long): the commands
# here keep the bytecode of what they import, once, in .venv (and src/, tests/: ignored by git),
# set-up that of what every run imports (7 s), so a `pytest` run directly is as quick. Cheaper than
# uv's --compile-bytecode, which compiled all 16,600 modules (30 core-seconds on the Xeon).
unexport PYTHONDONTWRITEBYTECODE
WARM_IMPORTS := tokenloop.cli, tokenloop.web, torch, transformers.models.llama.modeling_llama
# The per-user cache of the test servers' builds (llama.cpp, vLLM's venv), shared by every clone.
BUILD_CACHE := $(or $(TOKENLOOP_BUILD_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tokenloop/builds)

.PHONY: setup demo test bench clean clean-cache browser test-servers format lock check-lock

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml Makefile
	@$(PYTHON) scripts/lock.py --check
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION) 2>&1 | grep -v "^WARNING: Location" || true
	@test -x $(UV)
	$(UV) pip sync -q --python $(PY) --find-links $(WHEELS) --require-hashes requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps --no-build-isolation -e .
	$(PY) -c "import $(WARM_IMPORTS)"
	touch $@

# After changing pyproject.toml's dependencies: pin everything again (requirements.lock and
# requirements-vllm.lock) and commit both. `make test` fails while they are stale.
lock: setup-uv
	$(PY) scripts/lock.py

check-lock:
	@$(PYTHON) scripts/lock.py --check

.PHONY: setup-uv
setup-uv:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install -q uv==$(UV_VERSION)

demo: setup
	$(PY) main.py

# The browser tests drive Debian's chromium (a test tool's own browser download can't work offline).
# apt's output goes to build/browser.log (under `make test` the test servers are building beside it).
browser:
	@test -x /usr/bin/chromium || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); mkdir -p build; \
		echo "browser: installing Debian's chromium (log in build/browser.log)"; \
		{ $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } \
			> build/browser.log 2>&1 || { tail -20 build/browser.log; exit 1; }; echo "browser: chromium installed"; }

# Real OpenAI-compatible servers for the server backend's tests (scripts/test_peers.py): llama.cpp
# compiled portably (x86-64-v3: AVX2, no AVX-512, no AMX; llama-server and the libraries under
# llama-cpp-python), and vLLM's CPU build in its own venv (requirements-vllm.lock), installed while
# the compiler works. Both are made once per machine in the per-user cache $(BUILD_CACHE), which
# every clone finds; `make clean-cache` removes it.
test-servers: setup
	$(PY) scripts/test_peers.py --wheels $(WHEELS)

# The code's format and lint come first (quick); then every test, the real model, servers and browser
# included. The servers are made (or found) in the background while the suite runs, the compiler at
# idle priority; the tests that need them run after the others and wait (build/test-servers.log).
test: check-lock setup
	$(PY) scripts/test_peers.py --background --wheels $(WHEELS)
	@$(MAKE) --no-print-directory browser
	$(VENV)/bin/ruff format --check --quiet src tests bench scripts main.py
	$(VENV)/bin/ruff check --quiet src tests bench scripts main.py
	TOKENLOOP_REQUIRE_BROWSER=1 TOKENLOOP_REQUIRE_SERVERS=1 $(PY) -m pytest -q -m "" --durations=15

format: setup
	$(VENV)/bin/ruff format src tests bench scripts main.py
	$(VENV)/bin/ruff check --fix src tests bench scripts main.py

bench: setup
	$(PY) bench/loop_speed.py

# The clone's own files; the per-user build cache stays (clean-cache removes it).
clean:
	rm -rf $(VENV) .venv-vllm build *.egg-info src/*.egg-info

clean-cache:
	rm -rf "$(BUILD_CACHE)"
