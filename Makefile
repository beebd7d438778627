# Developers and CI run the same targets. Each creates .venv (through a pinned uv) on first use.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= auto
AZURITE_VERSION := 3.37.0
AZURITE := .tools/azurite/node_modules/.bin/azurite-blob

.PHONY: setup run demo test bench lint format clean

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The Azure storage tests' emulator (npm). Without npm they are skipped locally and fail in CI.
$(AZURITE):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --prefix .tools/azurite --no-audit --no-fund --no-update-notifier --silent \
			azurite@$(AZURITE_VERSION); \
	else \
		echo "npm not found: the azure storage tests will be skipped (and fail in CI)"; \
	fi

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --quiet
	@touch $@

setup: $(VENV)/.synced

run: setup
	$(BIN)/tiercel flow validate examples/flows
	$(BIN)/tiercel server local -f examples/flows

demo: setup
	@for f in examples/flows/*.yaml; do \
		echo "== $$f"; \
		$(BIN)/tiercel flow test "$$f" --flows examples/flows || exit 1; \
	done

test: setup $(AZURITE)
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q

bench: setup
	$(BIN)/python bench/run.py

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/tiercel/engine/decide.py src/tiercel/model

format: setup
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) .tools .pytest_cache .ruff_cache .mypy_cache
