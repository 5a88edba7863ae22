#!/usr/bin/env bash
# `make test`: install everything (apt packages included when run as root), run the lint
# and type gates, the unit suite on SQLite, then start PostgreSQL and Redis on loopback
# and run the database and integration suites against them. Stops what it started and
# exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# --- System packages --------------------------------------------------------------------
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing system packages: ${need[*]} (run as root, or install them)" >&2; exit 1
  fi
  echo "Installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bash scripts/install.sh --dev
BIN=$ROOT/${VENV:-.venv}/bin
PY=$BIN/python
mkdir -p test-artifacts

# --- Gates and unit suite (SQLite, in-memory channel layer, eager Celery) -----------------
bash scripts/lint.sh

echo "== unit suite (SQLite)"
env -u DATABASE_URL -u REDIS_URL "$BIN/pytest" -q -m "not integration" -p no:cacheprovider

# --- Real services ------------------------------------------------------------------------
SERVICES_DIR=$(mktemp -d /tmp/voiceapp-services.XXXXXX)
free_port() { "$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
PG_PORT=$(free_port)
REDIS_PORT=$(free_port)
PG_BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)")
PG_DATA=$SERVICES_DIR/pg
# PostgreSQL refuses to run as root: run it as the postgres user the package creates.
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
  as_pg=(runuser -u postgres --)
  chown postgres "$SERVICES_DIR"
  chmod 755 "$SERVICES_DIR"
fi

stop_services() {
  set +e
  [[ -f $PG_DATA/postmaster.pid ]] && "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
  [[ -f $SERVICES_DIR/redis.pid ]] && kill "$(cat "$SERVICES_DIR/redis.pid")" 2>/dev/null
  rm -rf "$SERVICES_DIR"
}
trap stop_services EXIT

echo "== starting PostgreSQL on 127.0.0.1:$PG_PORT and Redis on 127.0.0.1:$REDIS_PORT"
"${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust --no-sync >/dev/null
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -l "$SERVICES_DIR/pg.log" \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $SERVICES_DIR -c fsync=off" start >/dev/null
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes \
  --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log" --dir "$SERVICES_DIR"
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/voiceapp"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export PG_BIN PG_DATA SERVICES_DIR

echo "== database and integration suite (PostgreSQL + Redis)"
"$BIN/pytest" -q -m "django_db or integration" -p no:cacheprovider
