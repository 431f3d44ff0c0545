#!/bin/sh
# Benchmark entry point: edge agent vs nginx vs Varnish. Arguments go to `python -m bench.run`
# (--quick for the CI smoke run). Installs nginx, varnish and wrk when they are missing.
set -eu
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec "$PY" -m bench.run "$@"
