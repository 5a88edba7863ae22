#!/usr/bin/env bash
# PostgreSQL and Redis on loopback, on free ports, in a temporary directory.
# Source this file, then: start_services (exports DATABASE_URL, REDIS_URL, SERVICES_DIR,
# PG_BIN, PG_DATA, PG_PORT, REDIS_PORT) and stop_services. Used by scripts/test.sh; handy by hand.
# Once started, the fault tests (testing/services.py) stop and start each service again on
# the same port and data directory with pg_stop / pg_start and redis_stop / redis_start;
# these need only the exported variables, so a fresh shell that sources this file can run them.

start_services() {
  local py=${PY:-python3}
  SERVICES_DIR=$(mktemp -d /tmp/voiceapp-services.XXXXXX)
  PG_PORT=$("$py" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  REDIS_PORT=$("$py" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  PG_BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)")
  PG_DATA=$SERVICES_DIR/pg
  # PostgreSQL refuses to run as root: run it as the postgres user the package creates.
  AS_PG=()
  if [[ $(id -u) -eq 0 ]]; then
    AS_PG=(runuser -u postgres --)
    chown postgres "$SERVICES_DIR"
    chmod 755 "$SERVICES_DIR"
  fi
  echo "== starting PostgreSQL on 127.0.0.1:$PG_PORT and Redis on 127.0.0.1:$REDIS_PORT"
  "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust --no-sync >/dev/null
  export SERVICES_DIR PG_BIN PG_DATA PG_PORT REDIS_PORT
  pg_start
  redis_start || true  # as before: the tests report a Redis that did not come up
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/voiceapp"
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
}

# pg_ctl as the user that owns the cluster (postgres when we are root).
_pg_ctl() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" "$@"
  else
    "$PG_BIN/pg_ctl" "$@"
  fi
}

# Start the cluster in $PG_DATA on $PG_PORT; returns once it accepts connections.
pg_start() {
  _pg_ctl -D "$PG_DATA" -w -l "$SERVICES_DIR/pg.log" \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $SERVICES_DIR -c fsync=off -c max_connections=300" \
    start >/dev/null
}

# Stop it the way an operator would for maintenance: open connections are cut, in-flight
# transactions roll back (fast shutdown). Returns once it has stopped.
pg_stop() {
  _pg_ctl -D "$PG_DATA" -m fast -w stop >/dev/null
}

# Start Redis on $REDIS_PORT (empty: nothing is saved); returns once it answers PING.
redis_start() {
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes \
    --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log" --dir "$SERVICES_DIR"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "Redis did not answer on port $REDIS_PORT" >&2
  return 1
}

# Stop Redis at once, keeping nothing (its data is gone, as after a crash without
# persistence); returns once the port is closed.
redis_stop() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || return 0; sleep 0.1; done
  echo "Redis on port $REDIS_PORT did not stop" >&2
  return 1
}

stop_services() {
  [[ -n ${SERVICES_DIR:-} && -d $SERVICES_DIR ]] || return 0
  [[ -f $PG_DATA/postmaster.pid ]] && pg_stop
  [[ -f $SERVICES_DIR/redis.pid ]] && kill "$(cat "$SERVICES_DIR/redis.pid")" 2>/dev/null
  rm -rf "$SERVICES_DIR"
  return 0
}
