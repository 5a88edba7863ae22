# The two commands: `make run` serves the product, `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run test stress install lint bench-eliza bench-clm bench-voice bench-soak production

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

# The browser and real-process tests ROUNDS times (default 20) beside a CPU-bound process.
stress:
	bash scripts/stress.sh $(ROUNDS)

# WEB_PROCESSES server processes from PORT, a Celery worker and beat (needs DATABASE_URL,
# REDIS_URL and SECRET_KEY); deploy/nginx.conf goes in front. See the README.
production: install
	bash scripts/production.sh

install:
	bash scripts/install.sh

lint:
	bash scripts/install.sh --dev
	bash scripts/lint.sh

bench-eliza: install
	$(PY) bench/eliza_speed.py

bench-clm: install
	$(PY) bench/clm_load.py

bench-voice: install
	$(PY) bench/voice_latency.py

# The soak runs like production: PostgreSQL and Redis on loopback (scripts/services.sh,
# installed when missing and run as root, as `make test` does), two server processes,
# 600 s. Shorter: make bench-soak SOAK_ARGS="--duration 60 --sockets 100 --voice 2"
bench-soak: install
	@bash -c 'set -euo pipefail; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v redis-server >/dev/null; then \
	  [[ $$(id -u) -eq 0 ]] || { echo "bench-soak needs postgresql and redis-server" >&2; exit 1; }; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; \
	  apt-get install -y -qq --no-install-recommends postgresql redis-server >/dev/null; \
	fi; \
	source scripts/services.sh; trap "set +e; stop_services" EXIT; PY=$(PY) start_services; \
	$(PY) bench/soak.py $(SOAK_ARGS)'
