# leadsms: two commands on a fresh machine.
#   make demo   the whole system with demo data (embedded PostgreSQL/Redis when none configured)
#   make test   creates .venv, installs, runs the suite
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: test demo bench faults venv clean chromium promtool

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(VENV)/bin/python pyproject.toml
	$(PIP) install --quiet -e '.[test,demo]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

# The browser test drives Debian's chromium (never a downloaded browser). Installed when
# missing and possible (root + apt-get); otherwise that test skips, saying why.
CHROMIUM := /usr/bin/chromium

chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make: installing Debian's chromium for the browser test (apt-get)..."; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	    || echo "make: could not install chromium; the browser test will be skipped"; \
	else \
	  echo "make: $(CHROMIUM) is absent and cannot be installed here (needs root and apt-get); the browser test will be skipped"; \
	fi

# Four pytest-xdist workers (most tests wait on processes, not the CPU), a test file each
# at a time (a file's fixtures stay together), the files marked `slow` handed out first;
# each worker has its own database, Redis db and port slice. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 4

# The alert-rules test checks docs/leadsms-alerts.yml with promtool (Debian's prometheus),
# installed the same way when missing and possible; otherwise that test skips, saying why.
promtool:
	@if command -v promtool >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make: installing Debian's prometheus for promtool (apt-get)..."; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; } \
	    || echo "make: could not install prometheus; the alert-rules test will be skipped"; \
	else \
	  echo "make: promtool is absent and cannot be installed here (needs root and apt-get); the alert-rules test will be skipped"; \
	fi

test: $(STAMP) chromium promtool
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/leadsms demo

bench: $(STAMP)
	$(VENV)/bin/leadsms bench all

faults: $(STAMP)
	$(PIP) install --quiet -e '.[test,demo,faults]'
	$(PY) -m pytest -q -p no:cacheprovider -m faults tests/faults tests/devtools $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .leadsms .pytest_cache
