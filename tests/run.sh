#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs them:
# Debian's chromium (report and `mrc serve` browser tests), prometheus (the metrics backend),
# prometheus-alertmanager (tests/integration/alertmanager: alerts posted to and read back from a real one),
# tmux (the walk-through) and git; a .venv with the CPU build of torch and the test extras.
# Tests run on two xdist workers (`-n 2 --dist=loadgroup`: folders that share an expensive fixture
# stay on one worker); arguments go to pytest after them (`bash tests/run.sh tests/unit -x`, or
# `-n 0` for one process). `.ci/run` calls this script.
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
# package into ${MRC_K8S_CACHE:-~/.cache/mrc-k8s} (skipped when built: ~12-36 min cold on 2 cores,
# ~2 min with its Go cache kept); tests/e2e/k8s fails without them.
# It builds in the background while pip installs (pip mostly waits on the network and disk).
K8S_LOG=$(mktemp -t mrc-k8s-build.XXXXXX)
bash tests/support/k8s/build.sh >"$K8S_LOG" 2>&1 &
K8S_BUILD=$!
# -- end k8s control plane ---------------------------------------------------------------------

echo "== python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch first and pinned: the CPU build from this machine's disk, not a multi-GB CUDA build
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[test]'

# a line a minute while the build runs, so a long first build is visibly alive
waited=0
while kill -0 "$K8S_BUILD" 2>/dev/null; do
    sleep 5; waited=$((waited + 5))
    [ $((waited % 60)) -eq 0 ] && echo "== k8s control plane: still building (${waited} s after pip): $(tail -n 1 "$K8S_LOG" | cut -c1-100)"
done
if wait "$K8S_BUILD"; then cat "$K8S_LOG"; else cat "$K8S_LOG"; echo "== k8s control plane build failed"; exit 1; fi

echo "== tests"
exec .venv/bin/python -m pytest -n 2 --dist=loadgroup "$@"
