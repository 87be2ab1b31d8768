# nerlab: every target installs the project into .venv on first use (and again only when
# pyproject.toml changes). Any `key=value` given to make is passed to the Hydra app as an
# override, literally: `make train trainer.max_epochs=3 data.batch_size=64 model=char_cnn`.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0

# Every command-line variable (`make train a.b=1 c=d`) becomes a Hydra override, in order.
OVERRIDES := $(foreach v,$(filter-out MAKEFLAGS PYTHON,$(.VARIABLES)),$(if $(filter command line,$(origin $(v))),$(v)=$($(v))))

.PHONY: install train test test-all evaluate predict interactive ui bench data lint format sweep clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first: the pinned CPU build; the project's ranges are all satisfied by it.
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

train: $(STAMP)
	$(BIN)/nerlab-train $(OVERRIDES)

sweep: $(STAMP)
	$(BIN)/nerlab-train --multirun $(OVERRIDES)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

evaluate: $(STAMP)
	$(BIN)/nerlab-evaluate $(OVERRIDES)

predict: $(STAMP)
	$(BIN)/nerlab-predict $(OVERRIDES)

interactive: $(STAMP)
	$(BIN)/nerlab-interactive $(OVERRIDES)

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns.db --host 127.0.0.1 --port 5000

bench: $(STAMP)
	$(BIN)/python -m nerlab.bench $(OVERRIDES)

data: $(STAMP)
	$(BIN)/nerlab-data $(OVERRIDES)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
