# `make test` and `make demo` each work on a fresh machine: they build their own .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   := demo_out

.PHONY: test demo venv clean

venv: $(STAMP)

# Re-install only when the packaging or the pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,export]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	bash scripts/demo.sh $(VENV)/bin/aknet $(DEMO)

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
