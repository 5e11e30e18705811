#!/usr/bin/env bash
# Prints, in deb822 form, the deb-src entries that mirror this machine's own Debian `deb` entries,
# so `apt-get source` fetches from the archive the machine already uses (no host name in the repo).
#   usage: deb_src.sh [APT_DIR [SUITE]]    APT_DIR default /etc/apt, SUITE default bookworm
# Read: APT_DIR/sources.list and sources.list.d/*.list (one-line `deb [opts] URI SUITE COMP...`)
# and sources.list.d/*.sources (deb822 stanzas with `Types: deb`), the files apt itself reads.
# Kept: entries for SUITE or SUITE-* (SUITE-updates, SUITE-security …); a third-party repository
# (its own suite names, e.g. `nodistro`, `cloud-sdk-SUITE`) is skipped. URIs, Components and
# Signed-By are copied; prints nothing when no entry fits.
set -euo pipefail
APT_DIR=${1:-/etc/apt}
SUITE=${2:-bookworm}
shopt -s nullglob

# deb822: one stanza per blank-line-separated block; continuation lines (leading space) belong to
# the field above (a Signed-By may embed a whole key block); `Enabled: no` stanzas are skipped.
deb822() {
    awk -v suite="$SUITE" '
    function keep_suites(list,   n, i, parts, out) {
        n = split(list, parts, /[ \t]+/); out = ""
        for (i = 1; i <= n; i++)
            if (parts[i] == suite || index(parts[i], suite "-") == 1) out = out (out == "" ? "" : " ") parts[i]
        return out
    }
    function flush(   i, name, types, n, t, is_deb, suites) {
        types = field["types"]; n = split(types, t, /[ \t]+/); is_deb = 0
        for (i = 1; i <= n; i++) if (t[i] == "deb") is_deb = 1
        suites = keep_suites(field["suites"])
        if (is_deb && suites != "" && field["uris"] != "" && tolower(field["enabled"]) != "no") {
            printf "Types: deb-src\nURIs: %s\nSuites: %s\n", field["uris"], suites
            if (field["components"] != "") printf "Components: %s\n", field["components"]
            if (signed != "") printf "Signed-By:%s\n", signed
            printf "\n"
        }
        delete field; signed = ""; last = ""
    }
    FNR == 1 { flush() }
    /^#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]/ { if (last == "signed-by") signed = signed "\n" $0; next }
    {
        colon = index($0, ":"); if (colon == 0) next
        last = tolower(substr($0, 1, colon - 1)); value = substr($0, colon + 1)
        if (last == "signed-by") { signed = value; next }
        sub(/^[ \t]+/, "", value); sub(/[ \t]+$/, "", value); field[last] = value
    }
    END { flush() }' "$@"
}

# one-line form: deb [opt=value ...] URI SUITE COMPONENT...; of the options only signed-by and
# trusted matter to a source entry.
one_line() {
    awk -v suite="$SUITE" '
    { sub(/#.*/, "") }
    $1 != "deb" { next }
    {
        line = $0; sub(/^[ \t]*deb[ \t]+/, "", line); signed = ""; trusted = ""
        if (substr(line, 1, 1) == "[") {
            close_at = index(line, "]"); opts = substr(line, 2, close_at - 2); line = substr(line, close_at + 1)
            n = split(opts, o, /[ \t]+/)
            for (i = 1; i <= n; i++) {
                if (o[i] ~ /^signed-by=/) signed = substr(o[i], 11)
                if (o[i] ~ /^trusted=/) trusted = substr(o[i], 9)
            }
        }
        n = split(line, w, /[ \t]+/); k = 0
        for (i = 1; i <= n; i++) if (w[i] != "") word[++k] = w[i]
        if (k < 2 || !(word[2] == suite || index(word[2], suite "-") == 1)) next
        comps = ""; for (i = 3; i <= k; i++) comps = comps (comps == "" ? "" : " ") word[i]
        printf "Types: deb-src\nURIs: %s\nSuites: %s\n", word[1], word[2]
        if (comps != "") printf "Components: %s\n", comps
        if (signed != "") printf "Signed-By: %s\n", signed
        if (trusted != "") printf "Trusted: %s\n", trusted
        printf "\n"
    }' "$@"
}

lists=()
[ -f "$APT_DIR/sources.list" ] && lists+=("$APT_DIR/sources.list")
lists+=("$APT_DIR"/sources.list.d/*.list)
sources=("$APT_DIR"/sources.list.d/*.sources)
if [ ${#lists[@]} -gt 0 ]; then one_line "${lists[@]}"; fi
if [ ${#sources[@]} -gt 0 ]; then deb822 "${sources[@]}"; fi
