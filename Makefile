# Two commands on a fresh machine:  make run   (the main job)   and   make test   (the suite).
# Both create .venv on first use and reinstall only when setup.cfg or pyproject.toml changed.
PYTHON ?= python3
VENV   ?= .venv
SPEC   ?= search_spaces/minivgg.yaml
ARGS   ?=
PYTEST_ARGS ?=
TEST_WORKERS ?= 3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint clean-venv

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/fmnist-sweep run $(SPEC) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check fmnist sweeps tests bench

clean-venv:
	rm -rf $(VENV)
