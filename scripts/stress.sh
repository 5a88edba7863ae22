#!/usr/bin/env bash
# The tests most exposed to timing, repeated on a busy machine: the browser tests and every
# test that starts real processes (servers, Celery workers, nginx), ROUNDS times in a row
# (default 20), while one CPU-bound process runs beside them. Stops at the first failure.
#   bash scripts/stress.sh [ROUNDS]        (make stress)
# Each round runs the first stage's share on SQLite (the browser tests among them), then
# the PostgreSQL + Redis share, as make test does; the fuzz tests run a twentieth of their
# examples per round (FUZZ_SCALE), so twenty rounds generate as many as one full run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-20}
bash scripts/install.sh --dev
venv=${VENV:-.venv}
[[ $venv == /* ]] || venv=$PWD/$venv
BIN=$venv/bin
mkdir -p test-artifacts

"$BIN/python" -c "while True: pass" &
busy=$!
# shellcheck source=scripts/services.sh
source scripts/services.sh
trap 'set +e; kill "$busy" 2>/dev/null; stop_services' EXIT
PY=$BIN/python start_services
export FUZZ_SCALE=${FUZZ_SCALE:-0.05}

started=$(date +%s)
for round in $(seq "$ROUNDS"); do
  echo "== round $round of $ROUNDS (a CPU-bound process runs beside it)"
  env -u DATABASE_URL -u REDIS_URL "$BIN/pytest" -q -p no:cacheprovider \
    -m "(browser or processes) and not integration"
  "$BIN/pytest" -q -p no:cacheprovider -m "processes and not browser"
done
echo "stress: $ROUNDS rounds passed in $(( $(date +%s) - started )) s"
