#!/usr/bin/env bash
# `make run`: install, migrate, create demo data and an admin account, then serve HTTP and
# WebSockets with uvicorn (python -m voiceapp.serve) on $HOST:$PORT (default
# 127.0.0.1:8000). Offline, no keys.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null && [[ $(id -u) -eq 0 ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
bash scripts/install.sh
PY=${VENV:-.venv}/bin/python
mkdir -p var

# Production sets SECRET_KEY in the environment; on a single machine one is generated
# once and kept in var/ (ignored by git).
if [[ -z ${SECRET_KEY:-} ]]; then
  [[ -s var/secret_key ]] || (umask 077; "$PY" -c "import secrets; print(secrets.token_urlsafe(50))" > var/secret_key)
  SECRET_KEY=$(cat var/secret_key)
  export SECRET_KEY
fi

"$PY" manage.py migrate --noinput -v0
"$PY" manage.py collectstatic --noinput -v0
"$PY" manage.py bootstrap

echo "Serving on http://${HOST:-127.0.0.1}:${PORT:-8000}/ (admin at /admin/)"
# The production entry point (uvicorn; on SIGTERM or Ctrl+C, sockets are drained first).
exec "$PY" -m voiceapp.serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" \
  --ws websockets-sansio --log-level "$(echo "${LOG_LEVEL:-info}" | tr '[:upper:]' '[:lower:]')"
