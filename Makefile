PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test soak venv browser clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-edge.txt requirements-controlplane.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m controlplane.run

# DEBUG=true only lets settings generate a local SECRET_KEY under var/; pytest-django
# still runs every test with DEBUG off, as production does.
test: $(STAMP) browser
	$(PY) -m mypy edgeagent cdncontract
	DEBUG=true $(PY) -m pytest $(PYTEST_ARGS)

# The dashboard's browser tests (tests/dashboard/test_browser.py) drive Debian's chromium
# package through Playwright (pinned in requirements.txt), never a downloaded browser. Installed
# with apt-get when missing (root, or sudo); without it those tests skip, and fail with CI=true.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "make: installing Debian's chromium for the dashboard's browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; } >/dev/null \
	    || echo "make: could not install chromium: the browser tests will skip (and fail with CI=true)"; }

# The soak test for 30 minutes (make test runs it for 3), its summary printed at the end.
SOAK_SECONDS ?= 1800
soak: $(STAMP)
	SOAK_SECONDS=$(SOAK_SECONDS) DEBUG=true $(PY) -m pytest tests/e2e/test_soak.py -m soak -q -s

clean:
	rm -rf $(VENV) var
