# shiftwatch — `make demo` runs the end-to-end story, `make test` the checks and tests.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTHON ?= python3
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DO_NOT_TRACK := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test test-fast lint typecheck unit docs demo bench bench-quick browser spark clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: 2.13.0 is the CPU wheel on this machine's disk (no multi-GB CUDA pull)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the real-browser report test (Debian package), when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# pyspark (the [spark] extra) and a Debian Java 17 for the Spark engine tests, when missing.
spark: install
	@command -v java >/dev/null 2>&1 || { \
	  echo "installing openjdk-17-jre-headless (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null; }
	@$(PY) -c "import pyspark" 2>/dev/null || $(PY) -m pip install -q -e ".[all,dev,spark]"

lint: install
	$(VENV)/bin/ruff check monitor collectors reports tests benchmarks examples docs

typecheck: install
	$(VENV)/bin/mypy

unit: install browser spark
	$(VENV)/bin/pytest -q

test: lint typecheck unit docs

# Day-to-day tier: unit and contract tests only (no MiniLM, no browser, no subprocess servers).
test-fast: install
	$(VENV)/bin/pytest -q -m "not slow"

DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

# The documentation site (mkdocs-material), built offline into site/.
docs: $(DOCS_STAMP)
	$(PY) docs/gen_reference.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --quiet

demo: install
	$(VENV)/bin/shiftwatch demo --out demo-out

# Runs every benchmarks/bench_*.py and regenerates docs/benchmarks.md (machine, load, date).
bench: install
	$(PY) benchmarks/run_all.py

bench-quick: install
	$(PY) benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo-out site
