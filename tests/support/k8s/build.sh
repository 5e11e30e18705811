#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
# and kubectl to observe) from Debian bookworm's *source* package, into a cache outside the repo.
# Debian ships no kube-apiserver binary; its source package carries upstream v1.20.2 with vendor/,
# so the build needs no Go module download. Skips everything when the binaries are already there.
#   MRC_K8S_CACHE   cache dir (default ~/.cache/mrc-k8s); binaries land in $MRC_K8S_CACHE/bin
# Measured on 2 cores shared with other jobs (load 10-19): cold 2159 s (36 min: apt, source, generated
# files, build), warm 132 s (binaries removed, Go cache kept), 0.01 s when built. ~2.8 GB on disk.
set -euo pipefail
CACHE=${MRC_K8S_CACHE:-$HOME/.cache/mrc-k8s}
BIN=$CACHE/bin
WANT=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
have_all() { for b in "${WANT[@]}"; do [ -x "$BIN/$b" ] || return 1; done; command -v etcd >/dev/null; }
if have_all; then echo "== k8s control plane: already built in $BIN"; exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$CACHE" "$BIN"
started=$(date +%s)

# apt-get source needs deb-src lines; a stock Debian image configures deb only. They are derived
# from the machine's own bookworm `deb` entries (deb_src.sh: same archive, suites, components,
# keyring), so the build fetches from whatever mirror the machine already uses.
#   MRC_APT_DIR     apt's configuration dir (default /etc/apt)
APT_DIR=${MRC_APT_DIR:-/etc/apt}
SRC=$APT_DIR/sources.list.d/mrc-k8s-deb-src.sources
# (the files apt reads: a renamed `*.disabled` file holds no entry)
if ! grep -qs '^Types:.*deb-src\|^deb-src ' "$APT_DIR/sources.list" "$APT_DIR"/sources.list.d/*.list \
        "$APT_DIR"/sources.list.d/*.sources; then
    deb_src=$(bash "$(dirname "${BASH_SOURCE[0]}")/deb_src.sh" "$APT_DIR" bookworm)
    if [ -z "$deb_src" ]; then
        echo "k8s: no Debian bookworm 'deb' entry in $APT_DIR/sources.list{,.d/} to derive deb-src from;" \
             "add a deb-src entry for bookworm's main component and rerun" >&2
        exit 1
    fi
    echo "== k8s: adding deb-src for bookworm, from the configured deb entries ($SRC)"
    printf '%s\n' "$deb_src" | $SUDO tee "$SRC" >/dev/null
    $SUDO apt-get update -qq
fi
DEPS=(golang-1.19-go rsync etcd-server golang-github-modern-go-reflect2-dev dpkg-dev make gcc libc6-dev openssl)
missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${DEPS[@]}" 2>&1 | grep -v '^ii ' || true)
if [ -n "$missing" ]; then
    echo "== k8s: build deps ${DEPS[*]}"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${DEPS[@]}" >/dev/null
fi

cd "$CACHE"
src=$(ls -d kubernetes-*/ 2>/dev/null | head -1 || true)
if [ -z "$src" ]; then
    echo "== k8s: apt-get source kubernetes (into $CACHE)"
    apt-get source -qq kubernetes
    src=$(ls -d kubernetes-*/ | head -1)
fi
cd "$CACHE/$src"
# vendored reflect2 v1.0.1 segfaults under Go 1.19; Debian's 1.0.2 does not
if ! grep -qs 'mrc: reflect2 1.0.2' vendor/github.com/modern-go/reflect2/.mrc; then
    rm -rf vendor/github.com/modern-go/reflect2
    cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
    rm -rf vendor/github.com/modern-go/reflect2/.git* vendor/github.com/modern-go/reflect2/*_test.go
    echo 'mrc: reflect2 1.0.2 from Debian' > vendor/github.com/modern-go/reflect2/.mrc
fi
export PATH=/usr/lib/go-1.19/bin:$PATH
# GOPATH mode; kube's hack/lib/golang.sh keeps the Go build cache in _output/local/go/cache, inside $CACHE
export GOFLAGS= GO111MODULE=off GOTOOLCHAIN=local
export KUBE_GIT_VERSION_FILE=$CACHE/version.env
cat > "$KUBE_GIT_VERSION_FILE" <<'V'
KUBE_GIT_COMMIT='faecb196815e248d3ecfb03c680a4507229c2a56'
KUBE_GIT_TREE_STATE='clean'
KUBE_GIT_VERSION='v1.20.2'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='20'
V
echo "== k8s: make generated_files ($(go version))"
make generated_files KUBE_VERBOSE=0 >"$CACHE/generated.log" 2>&1 || { tail -40 "$CACHE/generated.log"; exit 1; }
echo "== k8s: building ${WANT[*]}"
make all WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubectl" \
    KUBE_VERBOSE=0 >"$CACHE/build.log" 2>&1 || { tail -40 "$CACHE/build.log"; exit 1; }
for b in "${WANT[@]}"; do cp "_output/local/go/bin/$b" "$BIN/$b.tmp" && mv "$BIN/$b.tmp" "$BIN/$b"; done
have_all
echo "== k8s control plane built in $(( $(date +%s) - started )) s: $BIN"
