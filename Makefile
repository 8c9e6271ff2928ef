# Parley: `make run` serves it, `make test` proves it. Both set themselves up from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
LOCK_HASH := $(shell sha1sum requirements.lock | cut -c1-12)
STAMP := $(VENV)/.installed-$(LOCK_HASH)
# The PostgreSQL + Redis pass of `make test`; override to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/parley_$(shell date +%s%N | cut -c1-16)
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install run test test-sqlite test-postgres lint lock clean measure-export

$(STAMP): requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Migrations quietly; the setup code while there is no staff account (SPEC §6.7); retention
# enforced every PARLEY_PURGE_SECONDS beside the server (stopped with it). The lifespan
# stays on: config/asgi.py answers it (the push worker starts there).
run: install
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py collectstatic --noinput -v0
	@$(BIN)/python manage.py setup_code --url http://$(HOST):$(PORT)
	@echo "  Parley at http://$(HOST):$(PORT)/  (admin: /admin/, API docs: /api/docs/; Ctrl-C stops it)"
	@$(BIN)/python manage.py purge_messages --every -v0 & PURGE=$$!; \
	trap 'kill $$PURGE 2>/dev/null' EXIT INT TERM; \
	EMAIL_BACKEND=$${EMAIL_BACKEND:-django.core.mail.backends.console.EmailBackend} $(BIN)/uvicorn config.asgi:application --host $(HOST) --port $(PORT) --ws core.uvicorn_ws:ParleyWebSocketProtocol --ws-max-size 65536 --ws-per-message-deflate false --proxy-headers --no-server-header

lint: install
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run

# The two passes run side by side: the SQLite pass spends most of its time waiting on its
# browser and servers, the other mostly in pytest, so on 2 cores the whole takes ~60 % of
# one after the other (docs/testing.md). Each pass's output is printed whole when it ends.
test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

# Embedded configuration: SQLite + in-memory channel layer.
test-sqlite: install
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest -m "not postgres and not services"

# Scaled configuration: PostgreSQL + Redis, a fresh test database each run, without the tests
# marked dbless (they ran in test-sqlite; conftest.py deselects them here). Skips with a
# reason when they are not reachable, unless PARLEY_REQUIRE_SERVICES=1 (CI), where it fails.
test-postgres: install
	PARLEY_TEST_PASS=postgres DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		PARLEY_REDIS_PREFIX=parley-test-$(shell date +%s%N | cut -c1-16) \
		$(BIN)/pytest --create-db

# Export memory on 100k messages (docs/integrations.md); needs PostgreSQL. Not part of `make test`.
measure-export: install
	$(BIN)/python scripts/measure_export.py

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.in
	(echo "# Pinned by 'make lock' from requirements.in; install with pip install -r requirements.lock"; \
		.lock-venv/bin/pip freeze) > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache

# The fan-out benchmark (benchmark/README.md): Parley against two reference servers.
# BENCH_ARGS passes options through, e.g. make bench BENCH_ARGS="--receivers 50 --servers parley".
BENCH_STAMP := $(VENV)/.bench-$(shell sha1sum benchmark/requirements.txt | cut -c1-12)
LOADGEN_STAMP := benchmark/loadgen/node_modules/.installed-$(shell sha1sum benchmark/loadgen/package-lock.json | cut -c1-12)

.PHONY: bench bench-smoke bench-scale soak

# Soak (benchmark/soak.py): SOAK_CLIENTS clients for SOAK_MINUTES minutes against a Parley it
# starts, then every client's view checked against the database (lost/duplicated/reordered).
SOAK_CLIENTS ?= 200
SOAK_MINUTES ?= 10
soak: install
	$(BIN)/python -m benchmark.soak --clients $(SOAK_CLIENTS) --minutes $(SOAK_MINUTES)

$(BENCH_STAMP): benchmark/requirements.txt | $(STAMP)
	$(BIN)/python -m pip install --quiet -r benchmark/requirements.txt
	rm -f $(VENV)/.bench-*
	touch $@

$(LOADGEN_STAMP): benchmark/loadgen/package-lock.json
	cd benchmark/loadgen && npm ci --no-audit --no-fund
	touch $@

bench: install $(BENCH_STAMP) $(LOADGEN_STAMP)
	$(BIN)/python -m benchmark.run $(BENCH_ARGS)

# A few seconds against all three servers; fails unless each delivers everything at a low rate.
bench-smoke: install $(BENCH_STAMP) $(LOADGEN_STAMP)
	$(BIN)/python -m benchmark.run --smoke $(BENCH_ARGS)

# Parley only, side by side in one run: 1 worker on SQLite, then 1 and 2 worker processes on
# PostgreSQL + Redis (a fresh database per run, dropped after), pinned to the server core and
# unpinned; N = 200 and 1000, 1,000 idle sockets; prints the ratios of issue 19 (~15 min).
bench-scale: install $(BENCH_STAMP) $(LOADGEN_STAMP)
	$(BIN)/python -m benchmark.run --servers parley --sqlite --workers 1 2 --workers-unpinned --receivers 200 1000 --idle 1000 $(BENCH_ARGS)

# Search speed (benchmark/search.py): 300k messages of mixed Chinese, English and code on
# SQLite and on PostgreSQL (a fresh database, dropped after), p50/p95 per query class.
.PHONY: bench-search
bench-search: install
	$(BIN)/python -m benchmark.search $(BENCH_ARGS)
