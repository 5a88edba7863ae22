#!/usr/bin/env bash
# `make production`: the production process set on one machine, behind a reverse proxy
# (deploy/nginx.conf):
#   - WEB_PROCESSES (default 2) server processes, `python -m voiceapp.serve`, on the
#     consecutive ports PORT, PORT+1, ... (default 8000) of HOST (default 127.0.0.1);
#   - one Celery worker and Celery beat.
# DATABASE_URL (PostgreSQL), REDIS_URL and SECRET_KEY are required. Migrations and
# collectstatic run once, before anything starts. SIGTERM or SIGINT is passed on to every
# process, and the script waits for them: each server drains its sockets (close code 1012)
# within SHUTDOWN_GRACE_SECONDS, the worker finishes its task. If any process exits on its
# own, the others are stopped and the script exits non-zero, so a supervisor (systemd,
# a container runtime) restarts the set.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "production: $*" >&2; exit 2; }

[[ -n ${DATABASE_URL:-} ]] || die "DATABASE_URL is required (postgres://USER:PASSWORD@HOST:PORT/NAME)"
[[ -n ${REDIS_URL:-} ]] || die "REDIS_URL is required (redis://HOST:PORT/DB): the channel layer and the Celery broker"
[[ -n ${SECRET_KEY:-} ]] || die "SECRET_KEY is required"
WEB_PROCESSES=${WEB_PROCESSES:-2}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
[[ $WEB_PROCESSES =~ ^[1-9][0-9]*$ ]] || die "WEB_PROCESSES=$WEB_PROCESSES must be a positive integer"
[[ $PORT =~ ^[1-9][0-9]*$ ]] && ((PORT + WEB_PROCESSES - 1 <= 65535)) ||
  die "PORT=$PORT must leave room for $WEB_PROCESSES consecutive ports"
PY=${VENV:-.venv}/bin/python
[[ -x $PY ]] || die "$PY not found: run scripts/install.sh (make production does)"

# Every process writes its metrics here; the directory must start empty on each start.
if [[ -n ${PROMETHEUS_MULTIPROC_DIR:-} ]]; then
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -type f -delete
else
  PROMETHEUS_MULTIPROC_DIR=$(mktemp -d "${TMPDIR:-/tmp}/voiceapp-metrics.XXXXXX")
  trap 'rm -rf "$PROMETHEUS_MULTIPROC_DIR"' EXIT
fi
export PROMETHEUS_MULTIPROC_DIR

echo "== migrate and collectstatic"
"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput -v0

names=()  # by pid
pids=()
start() {  # start NAME COMMAND...: one child, in its own process group (see below)
  local name=$1
  shift
  # Not in our process group: a Ctrl+C at the terminal reaches this script only, which
  # passes SIGTERM on once, instead of every child getting SIGINT and then SIGTERM too.
  setsid "$@" &
  pids+=($!)
  names[$!]=$name
  echo "== started $name (pid $!)"
}

for ((i = 0; i < WEB_PROCESSES; i++)); do
  start "web $((PORT + i))" "$PY" -m voiceapp.serve --host "$HOST" --port $((PORT + i))
done
start "worker" "$PY" -m celery -A voiceapp.celery worker --loglevel INFO
beat_schedule=${CELERY_BEAT_SCHEDULE_FILE:-var/celerybeat-schedule}
mkdir -p "$(dirname "$beat_schedule")"
start "beat" "$PY" -m celery -A voiceapp.celery beat --loglevel INFO --schedule "$beat_schedule"

stopping=0
stop_all() {
  if ((stopping)); then
    echo "== stopping at once: SIGKILL" >&2  # a second signal: do not wait any longer
    kill -KILL "${pids[@]}" 2>/dev/null || true
    return 0
  fi
  stopping=1
  echo "== stopping: SIGTERM to ${#pids[@]} processes"
  kill -TERM "${pids[@]}" 2>/dev/null || true
}
trap stop_all TERM INT

status=0
running=("${pids[@]}")
while ((${#running[@]})); do
  finished=
  code=0
  wait -n -p finished "${running[@]}" 2>/dev/null || code=$?
  finished=${finished:-}  # unset by a wait that returned without a child
  if [[ -z $finished ]]; then
    # A signal interrupted the wait (stop_all has run), or bash had already collected a
    # child that ended together with another and `wait -n` no longer knows it: find the
    # one that is gone; plain `wait PID` still has its status.
    for pid in "${running[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        finished=$pid
        code=0
        wait "$pid" || code=$?
        break
      fi
    done
    [[ -n $finished ]] || continue
  fi
  left=()
  for pid in "${running[@]}"; do
    [[ $pid == "$finished" ]] || left+=("$pid")
  done
  running=("${left[@]}")
  if ((!stopping)); then
    echo "production: ${names[$finished]} (pid $finished) exited with status $code; stopping the others" >&2
    status=1
    stop_all
  elif ((code != 0)); then
    echo "production: ${names[$finished]} (pid $finished) exited with status $code" >&2
    status=1
  else
    echo "== ${names[$finished]} stopped"
  fi
done
exit "$status"
