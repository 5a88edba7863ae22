# The two commands: `make run` serves the product, `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run test install lint bench-eliza bench-clm bench-voice

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

install:
	bash scripts/install.sh

lint:
	bash scripts/install.sh --dev
	bash scripts/lint.sh

bench-eliza: install
	$(PY) bench/eliza_speed.py

bench-clm: install
	$(PY) bench/clm_load.py

bench-voice: install
	$(PY) bench/voice_latency.py
