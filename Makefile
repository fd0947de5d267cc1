# Every target bootstraps its own virtualenv from pyproject.toml + requirements.lock.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint lock services browser screenshots clean bytecode docs docs-build

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip uv
	@$(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -r requirements.lock
	@$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)
	@$(MAKE) --no-print-directory bytecode

# Bytecode written ahead of time: every `headwater` process (and the tests start many)
# would otherwise compile its imports afresh where PYTHONDONTWRITEBYTECODE is set.
bytecode:
	@$(BIN)/python -m compileall -q -j 0 src $(VENV)/lib >/dev/null || true

venv: $(STAMP)

demo: $(STAMP) bytecode
	$(BIN)/python -m headwater.demo

test: $(STAMP) services bytecode browser
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

services: $(STAMP)
	@$(BIN)/python -m headwater.testing.services

# Chromium for the console tests comes from Debian; Playwright is given its binary.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; browser tests will say so"; }

# A PNG of each console page (docs/screenshots/), taken in Debian's headless Chromium.
screenshots: $(STAMP) browser
	$(BIN)/python tests/console/screenshots.py docs/screenshots

BENCHES ?= sandbox_track delivery diff sync_e2e gateway scheduler console audiences identity outbox_claim segment_export currents

# Each benchmark prints its figures and the command that made them (docs/benchmarks.md).
bench: $(STAMP)
	@for b in $(BENCHES); do echo "== bench.$$b"; $(BIN)/python -m bench.$$b || exit 1; done

# The documentation site (mkdocs.yml, docs/). `make test` builds it too (tests/docs/).
docs docs-build: export NO_MKDOCS_2_WARNING = 1
docs: $(STAMP)
	$(BIN)/mkdocs serve

docs-build: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache site
