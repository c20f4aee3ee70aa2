# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark
SCALE ?= tiny
RUN_DIR ?= runs/demo

.PHONY: run test lint install clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The tests also exercise the Spark engine (pyspark; Java 17+ must be on the machine).
$(SPARK_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,spark]'
	touch $(SPARK_STAMP)

install: $(STAMP)

## Simulate a community, then run the main job on it (embedded default).
run: $(STAMP)
	$(BIN)/bridgewatch run --scale $(SCALE) --dir $(RUN_DIR)

## Lint and run the whole test suite.
test: $(SPARK_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
