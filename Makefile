# `make test` and `make demo` each work on a fresh machine: they build their own .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   := runs/demo

.PHONY: test hostile demo venv clean

venv: $(STAMP)

# Re-install only when the packaging or the pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,export]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# The hostile-input sweep (docs/testing.md): 561 aknet runs, about 35 minutes on 2 cores, so
# neither `make test` nor CI runs it (pyproject.toml deselects the `hostile` marker).
hostile: $(STAMP)
	$(PY) -m pytest -m hostile tests/hostile

# Timed from before the installation, as the README promises (under 15 minutes on 2 cores).
demo:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory venv && \
	$(PY) scripts/demo.py --aknet $(VENV)/bin/aknet --out $(DEMO) && \
	echo "make demo: $$(( $$(date +%s) - start )) s including installation"

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
