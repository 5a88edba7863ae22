#!/usr/bin/env bash
# Lint and type gates: ruff, mypy (django-stubs), import-linter, migrations up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
export DJANGO_SETTINGS_MODULE=voiceapp.settings_test

echo "== ruff"; "$BIN/ruff" check . && "$BIN/ruff" format --check .
echo "== mypy"; "$BIN/mypy" .
echo "== import-linter"; "$BIN/lint-imports"
echo "== hadolint"; "$BIN/hadolint" Dockerfile
echo "== migrations"; "$BIN/python" manage.py makemigrations --check --dry-run
echo "== django checks"; "$BIN/python" manage.py check --fail-level WARNING
