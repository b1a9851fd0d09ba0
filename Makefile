# The two commands of the README:
#   make run    set up .venv if needed, then run the main job (`meter run`)
#   make test   set up .venv with the test extra if needed, then lint and run the test suite
# scripts/bootstrap says how torch is chosen (CPU build on a machine without an NVIDIA GPU).

VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint clean

run: $(VENV)/.installed
	$(BIN)/meter run

test: $(VENV)/.installed-test lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Lint, format check and the import-layer contract (pyproject.toml: [tool.ruff], [tool.importlinter]).
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

$(VENV)/.installed: pyproject.toml scripts/bootstrap
	scripts/bootstrap
	touch $@

$(VENV)/.installed-test: pyproject.toml scripts/bootstrap
	scripts/bootstrap test
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) *.egg-info
