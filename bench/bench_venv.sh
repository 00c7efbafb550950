#!/usr/bin/env bash
# Create /work/main/.venv-bench: Celery and RQ (peers for bench/reminders_bench.py).
#
# Kept apart from the project venv: lendsafe does not depend on either. lendsafe itself is
# installed editable with its own dependencies so the benchmark runs the same outbox code.
# Needs a Redis server at 127.0.0.1:6379 (the broker for both peers).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_VENV:-$ROOT/.venv-bench}"
PY="${PYTHON:-python3.11}"

"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q \
  "celery[redis]==5.7.0" \
  "rq==2.12.0" \
  "redis==8.1.0"
"$VENV/bin/pip" install -q -e "$ROOT"
"$VENV/bin/python" -c "import celery, rq, redis, lendsafe; print('bench venv ready:', celery.__version__, rq.VERSION)"
