#!/usr/bin/env bash
# Create the virtual environment and install the pinned requirements (skipped when the
# requirement files have not changed since the last install).
#   scripts/install.sh          runtime requirements (for `make run`)
#   scripts/install.sh --dev    runtime + test/lint requirements (for `make test`)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
files=(requirements.txt)
[[ ${1:-} == --dev ]] && files=(requirements.txt requirements-dev.txt)

if [[ ! -x $VENV/bin/python ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

# Front-end libraries served as static files (STATICFILES_DIRS), exactly as package-lock.json says.
node_stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
if [[ ! -f $node_stamp ]]; then
  command -v npm >/dev/null || { echo "npm is needed (apt-get install nodejs npm)" >&2; exit 1; }
  npm ci --no-audit --no-fund --loglevel=error
  touch "$node_stamp"
fi

stamp="$VENV/.installed-$(cat "${files[@]}" | sha256sum | cut -c1-16)"
if [[ ! -f $stamp ]]; then
  echo "Installing Python requirements into $VENV ..."
  # The machine's pip configuration prints one harmless warning per missing local mirror folder.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "${files[-1]}" 2>&1 | grep -v "^WARNING: Location '" || true
  "$VENV/bin/python" -m pip check >/dev/null
  touch "$stamp"
fi
