# Two commands on a fresh machine: `make demo` and `make test`.
# Everything the project needs is installed from here (PyPI only).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP  := $(VENV)/.installed
# Meltano's plugin venvs (.meltano/): rebuilt when a plugin definition changes.
PLUGINS_STAMP := .meltano/.installed
# Run Meltano and the console scripts from the project venv without activating it.
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Plugins get the project's Python; never a user-site or a global pip config's extras.
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo demo-stop test lint bench sync full-sync serve readme clean

$(STAMP): pyproject.toml constraints.txt tap-kaiten/pyproject.toml plugins/kaiten-pgenv/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e '.[test]' -e './tap-kaiten[test]' -e ./plugins/kaiten-pgenv
	touch $@

# Installing touches no database, but meltano.yml refers to $$DATABASE_URL and Meltano
# (strict_env_var_mode) refuses unset variables: give it a placeholder when .env has none.
$(PLUGINS_STAMP): $(STAMP) meltano.yml $(wildcard plugins/*/*.lock) $(wildcard plugins/kaiten-pgenv/*.py)
	DATABASE_URL="$${DATABASE_URL:-postgresql://not-used-by-install/}" $(BIN)/meltano install
	# Meltano installs plugins without .pyc; where PYTHONDONTWRITEBYTECODE is set every run
	# would recompile the SDK, SQLAlchemy, dbt... (target start-up 7.6 s -> 1.9 s, bench/README.md).
	$(BIN)/python -m compileall -q -j 0 .meltano/extractors .meltano/loaders .meltano/utilities >/dev/null || true
	touch $@

install: $(STAMP) $(PLUGINS_STAMP)

# Sandbox + (DATABASE_URL or embedded PostgreSQL) + `meltano run kaiten-sync`, then what landed.
demo: install
	$(BIN)/python -m kaiten_local.demo $(DEMO_ARGS)

# Stop the embedded PostgreSQL that `make demo` left running for psql.
demo-stop:
	$(BIN)/python -m kaiten_local.postgres stop

# pytest exits 5 when it collects nothing; that is not a failure of the project.
test: install
	$(BIN)/pytest $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest: no tests collected" || exit $$rc; }

lint: install
	$(BIN)/ruff check .

# Benchmarks are not tests: they time things. Each bench/*.py runs on its own.
bench: install
	@set -e; found=0; for script in bench/*.py; do \
	  [ -e "$$script" ] || continue; found=1; \
	  echo "== $$script"; $(BIN)/python "$$script"; \
	done; [ $$found -eq 1 ] || echo "no benchmarks in bench/"

# A real Kaiten account: KAITEN_API_URL, KAITEN_API_TOKEN and DATABASE_URL from .env.
sync: install
	@test -f .env || test -n "$$KAITEN_API_TOKEN" || { echo "error: no .env: cp .env.example .env and fill in KAITEN_API_URL, KAITEN_API_TOKEN, DATABASE_URL"; exit 2; }
	$(BIN)/meltano run kaiten-sync

# The "Полная синхронизация" button: everything re-read, bookmarks replaced.
full-sync: install
	@test -f .env || test -n "$$KAITEN_API_TOKEN" || { echo "error: no .env: cp .env.example .env and fill in KAITEN_API_URL, KAITEN_API_TOKEN, DATABASE_URL"; exit 2; }
	$(BIN)/meltano run --full-refresh kaiten-full-sync

# The sync service: webhooks, /api/sync, /admin/sync (kaiten_service/README.md). HOST/PORT overridable.
serve: install
	$(BIN)/kaiten-service --host $(or $(HOST),127.0.0.1) --port $(or $(PORT),8000)

# README's settings and streams tables, from `tap-kaiten --about` and tap-kaiten/README.md.
readme: install
	$(BIN)/python -m kaiten_local.readme

clean:
	-$(BIN)/python -m kaiten_local.postgres destroy 2>/dev/null
	rm -rf $(VENV) .meltano
