# Two commands for a newcomer: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run test lint bench screenshots clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(STAMP)

$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[bench]'
	touch $@ $(STAMP)

## run: set up and run the main job on feeds.yaml (refresh + a one-off digest)
run: $(STAMP)
	$(BIN)/aggregator validate
	$(BIN)/aggregator refresh
	$(BIN)/aggregator digest --out out/digest
	@echo
	@echo "Outputs: out/feed.atom, out/topics/*.atom, out/digest/digest.{html,txt,eml}"

## test: set up (with test extras) and run the whole test suite
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## bench: benchmarks against bare feedparser and reader (not part of make test; see bench/README.md)
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## screenshots: the HTML digest in headless Chromium at 375/800 px, light and dark, into docs/
screenshots: $(TEST_STAMP)
	@command -v chromium >/dev/null 2>&1 || { echo "chromium not found: apt-get install -y chromium" >&2; exit 1; }
	$(BIN)/python scripts/screenshots.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check aggregator tests bench
	$(BIN)/ruff format --check aggregator tests bench
	$(BIN)/mypy aggregator

clean:
	rm -rf out .aggregator .pytest_cache
