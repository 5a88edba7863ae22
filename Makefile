# The two commands: `make run` serves the product, `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run test install lint bench-eliza

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

install:
	bash scripts/install.sh

lint: install
	bash scripts/lint.sh

bench-eliza: install
	$(PY) bench/eliza_speed.py
