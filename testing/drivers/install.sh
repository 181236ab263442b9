#!/usr/bin/env bash
# install.sh — install the client drivers of the compatibility matrix, only the
# ones that are missing, so a fresh Debian 12 machine can run testing/drivers.sh
# and a prepared one pays nothing:
#
#   apt   libpostgresql-jdbc-java (pgjdbc), default-jdk-headless when javac is
#         missing, nodejs/npm when node is missing, python3-venv when venv is
#         missing; `apt-get update` runs once, only when something is installed.
#   pip   psycopg[binary] 3, SQLAlchemy 2, asyncpg into $ROOT/.run/drivers-venv
#         (versions pinned in python/requirements.txt).
#   npm   pg + pg-copy-streams into testing/drivers/node/node_modules from the
#         committed package-lock.json (`npm ci`).
#   cargo the sqlx test binary in testing/drivers/rust (its own workspace, lock
#         committed), built into target/drv.
#   javac the pgjdbc program, compiled into $ROOT/.run/drivers-java.
#
# psql and pgbench come with PostgreSQL (testing/install-deps.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
run="$root/.run"
venv="$run/drivers-venv"
jar=/usr/share/java/postgresql.jar
mkdir -p "$run"

log() { echo "drivers/install: $*" >&2; }

apt_missing=()
installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }
if command -v dpkg-query >/dev/null 2>&1; then
    installed libpostgresql-jdbc-java || apt_missing+=(libpostgresql-jdbc-java)
    command -v javac >/dev/null 2>&1 || apt_missing+=(openjdk-17-jdk-headless)
    command -v node >/dev/null 2>&1 || apt_missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || apt_missing+=(npm)
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_missing+=(python3-venv)
fi
if ((${#apt_missing[@]})); then
    sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    log "apt-get install ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >"$run/drivers-apt.log" 2>&1 || { cat "$run/drivers-apt.log" >&2; exit 1; }
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >>"$run/drivers-apt.log" 2>&1 \
        || { tail -n 40 "$run/drivers-apt.log" >&2; exit 1; }
fi
[[ -r "$jar" ]] || { log "$jar is missing after installing libpostgresql-jdbc-java"; exit 1; }

# Python: a venv, re-synced only when requirements.txt changed.
req="$here/python/requirements.txt"
if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv"
    python3 -m venv "$venv"
fi
if ! cmp -s "$req" "$venv/.requirements.installed"; then
    log "pip install -r python/requirements.txt"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
    cp "$req" "$venv/.requirements.installed"
fi

# Node: npm ci from the committed lock, when the lock changed.
nodedir="$here/node"
if ! cmp -s "$nodedir/package-lock.json" "$nodedir/node_modules/.package-lock.installed" 2>/dev/null; then
    log "npm ci in testing/drivers/node"
    (cd "$nodedir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    cp "$nodedir/package-lock.json" "$nodedir/node_modules/.package-lock.installed"
fi

# Java: recompile when the source is newer than the classes.
jdir="$run/drivers-java"
if [[ ! -f "$jdir/DriverCheck.class" || "$here/java/DriverCheck.java" -nt "$jdir/DriverCheck.class" ]]; then
    log "javac java/DriverCheck.java"
    mkdir -p "$jdir"
    javac -nowarn -d "$jdir" -cp "$jar" "$here/java/DriverCheck.java"
fi

# Rust: cargo decides itself whether anything changed.
log "cargo build (sqlx check) in testing/drivers/rust"
CARGO_TARGET_DIR="${DRIVERS_CARGO_TARGET_DIR:-$root/target/drv}" \
    cargo build -q --manifest-path "$here/rust/Cargo.toml" >&2
