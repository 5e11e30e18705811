#!/usr/bin/env bash
# A separate environment for the drift benchmark's Evidently baseline: Evidently 0.7 needs
# pandas<3 and fails to import under the project's pandas 3, so it must not share the venv.
# Usage: tests/bench/setup_evidently.sh [VENV_DIR]
#   VENV_DIR defaults to $MRC_BENCH_VENV, else .bench-venv/ at the repo root (where
#   tests/bench/bench_drift.py looks for it).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-${MRC_BENCH_VENV:-$REPO_ROOT/.bench-venv}}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "evidently==0.7.23" "pandas<3" "scipy>=1.11" "numpy<2.4"
"$VENV/bin/python" -c "import evidently, pandas; print('evidently', evidently.__version__, 'pandas', pandas.__version__)"
