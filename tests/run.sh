#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs them:
# Debian's chromium (report and `mrc serve` browser tests), prometheus (the metrics backend),
# prometheus-alertmanager (tests/alerts: alerts posted to and read back from a real one),
# tmux (the walk-through) and git; a .venv with the CPU build of torch and the test extras.
# Arguments go to pytest (`bash tests/run.sh tests/gates -x`). `.ci/run` calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

PACKAGES=(chromium prometheus prometheus-alertmanager tmux git)
missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${PACKAGES[@]}" 2>&1 | grep -v '^ii ' || true)
if [ -z "$missing" ]; then
    echo "== system packages: already installed (${PACKAGES[*]})"
else
    echo "== system packages: ${PACKAGES[*]}"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

# -- k8s control plane (issue #14) ------------------------------------------------------------
# kube-apiserver, controller-manager, scheduler and kubectl built from Debian's kubernetes source
# package into ${MRC_K8S_CACHE:-~/.cache/mrc-k8s} (skipped when built: ~12-40 min cold on 2 cores,
# ~2 min with its Go cache kept); tests/k8s/real fails without them.
bash tests/k8s/cluster/build.sh
# -- end k8s control plane ---------------------------------------------------------------------

echo "== python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch first and pinned: the CPU build from this machine's disk, not a multi-GB CUDA build
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[test]'

echo "== tests"
exec .venv/bin/python -m pytest "$@"
