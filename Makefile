# flask_maestrano: `make test` and `make demo` set everything up on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 5000
APT_PACKAGES := chromium redis-server
STAMP := $(VENV)/.installed-stamp

.PHONY: test lint typecheck pytest demo bench load docs system-deps venv clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# constraints.txt pins what CI was last green with; setup.cfg keeps lower bounds only
$(STAMP): $(PY) setup.cfg pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e '.[test,docs]'
	touch $(STAMP)

venv: $(STAMP)

# apt packages for browser tests and the Redis store tests, when missing and running as root
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "warning: missing$$missing (not root: install them to run every test)"; \
	  fi; \
	fi

lint: venv
	$(VENV)/bin/ruff check flask_maestrano tests examples bench load
	$(VENV)/bin/ruff format --check flask_maestrano tests examples bench load
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy flask_maestrano load

pytest: venv system-deps
	$(VENV)/bin/pytest

test: lint typecheck pytest

docs: venv
	$(VENV)/bin/sphinx-build -W -q -b html docs docs/_build/html

demo: venv
	PORT=$(PORT) $(PY) -m examples.demo

bench: venv system-deps
	$(PY) -m bench

# the load-and-fault runs (gunicorn, Redis, an RQ worker and the sandbox on loopback ports;
# about 4 minutes); a JSON copy of the table goes to load/results/
load: venv system-deps
	$(PY) -m load

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .mypy_cache .ruff_cache
