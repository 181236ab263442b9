#!/usr/bin/env bash
# Install the system packages Orochi Router needs to build and test, only the
# ones that are missing.
#
#   libclang-dev        pg_query's bindgen step (libclang + clang's builtin headers;
#                       the `clang` binary itself is not needed: cc builds with gcc)
#   postgresql-15       server, initdb, pg_ctl, pg_basebackup, pgbench (Debian ships
#                       pgbench in the server package) and contrib
#   postgresql-client-15  psql, pg_isready
#   pgbouncer           the baseline in testing/bench.sh
#   python3             the idle-connection probe in testing/bench.sh
#
# Idempotent: when everything is present it prints one line and touches nothing.
# `apt-get update` runs once, and only when something has to be installed.
# Set OROCHI_INSTALL_CLANG=1 to also install the clang compiler.
set -euo pipefail

want=(libclang-dev postgresql-15 postgresql-client-15 postgresql-contrib pgbouncer python3)
[[ "${OROCHI_INSTALL_CLANG:-0}" == 1 ]] && want+=(clang)

installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    # Not Debian: we cannot install, but we can say what is missing.
    missing=()
    for cmd in initdb pg_ctl psql pgbench pgbouncer python3; do
        command -v "$cmd" >/dev/null 2>&1 || [[ -x "$(pg_config --bindir 2>/dev/null)/$cmd" ]] || missing+=("$cmd")
    done
    if ((${#missing[@]})); then
        echo "install-deps: not a Debian system; install these yourself: ${missing[*]}" >&2
        exit 1
    fi
    echo "install-deps: not a Debian system; the needed commands are present"
    exit 0
fi

missing=()
for pkg in "${want[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all present (${want[*]})"
    exit 0
fi

sudo=()
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
log="$(mktemp -t orochi-apt.XXXXXX)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get update -qq >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-deps: apt-get update failed" >&2
    exit 1
fi
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "install-deps: apt-get install failed for: ${missing[*]}" >&2
    exit 1
fi
echo "install-deps: installed ${missing[*]}"
