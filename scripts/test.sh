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
command -v chromium >/dev/null || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
[[ -x /usr/sbin/nginx ]] || need+=(nginx)  # the production tests run Debian's nginx
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
venv=${VENV:-.venv}
[[ $venv == /* ]] || venv=$ROOT/$venv
BIN=$venv/bin
PY=$BIN/python
mkdir -p test-artifacts

# --- Gates and unit suite (SQLite, in-memory channel layer, eager Celery) -----------------
bash scripts/lint.sh

echo "== unit suite (SQLite)"
env -u DATABASE_URL -u REDIS_URL "$BIN/pytest" -q -m "not integration" -p no:cacheprovider

# --- Real services ------------------------------------------------------------------------
# shellcheck source=scripts/services.sh
source scripts/services.sh
trap 'set +e; stop_services' EXIT
PY=$PY start_services

echo "== database and integration suite (PostgreSQL + Redis)"
"$BIN/pytest" -q -m "(django_db or integration) and not browser" -p no:cacheprovider
