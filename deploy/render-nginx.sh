#!/usr/bin/env bash
# Print deploy/nginx.conf for this machine: one upstream server per web process, as
# scripts/production.sh starts them (WEB_PROCESSES, default 2, on consecutive ports from
# PORT, default 8000, of HOST, default 127.0.0.1), static files from STATIC_ROOT (default
# var/static, made absolute), server_name SERVER_NAME (default voice.example.org) and
# nginx listening on LISTEN (default 80: IPv4 and IPv6; ADDRESS:PORT for one address).
# For example:
#   WEB_PROCESSES=4 SERVER_NAME=voice.example.org deploy/render-nginx.sh \
#     > /etc/nginx/sites-available/voiceapp
set -euo pipefail
cd "$(dirname "$0")/.."

WEB_PROCESSES=${WEB_PROCESSES:-2}
PORT=${PORT:-8000}
HOST=${HOST:-127.0.0.1}
LISTEN=${LISTEN:-80}
SERVER_NAME=${SERVER_NAME:-voice.example.org}
STATIC_ROOT=$(realpath -m "${STATIC_ROOT:-var/static}")
[[ $WEB_PROCESSES =~ ^[1-9][0-9]*$ ]] || { echo "WEB_PROCESSES must be a positive integer" >&2; exit 2; }
[[ $PORT =~ ^[1-9][0-9]*$ ]] || { echo "PORT must be a port number" >&2; exit 2; }

servers=""
for ((i = 0; i < WEB_PROCESSES; i++)); do
  servers+="    server $HOST:$((PORT + i)) max_fails=1 fail_timeout=5s;"$'\n'
done

awk -v servers="$servers" -v static="$STATIC_ROOT/" -v name="$SERVER_NAME" -v listen="$LISTEN" '
  /# BEGIN servers/ { print; printf "%s", servers; skipping = 1; next }
  /# END servers/ { skipping = 0 }
  skipping { next }
  /^    listen 80;$/ { print "    listen " listen ";"; next }
  /^    listen \[::\]:80;$/ { if (listen !~ /:/) print "    listen [::]:" listen ";"; next }
  /^    server_name / { print "    server_name " name ";"; next }
  /^        alias .*static\/;$/ { print "        alias " static ";"; next }
  { print }
' deploy/nginx.conf
