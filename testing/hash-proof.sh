#!/usr/bin/env bash
# hash-proof.sh — make sure the PostgreSQL instance used by sharding/tests/pg_proof.rs runs,
# and print "PORT SOCKET_DIR" on one line.
#
# The instance is `hash-proof`, managed by testing/pg.sh (initdb once, reused afterwards). It
# gets a free port on first use, and a new one if its port has been taken while it was down.
# The whole check-init-start is serialised by a lock of its own, so parallel test runs agree on
# one instance. Exits non-zero, with the reason on stderr, if PostgreSQL cannot be started.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/pg.sh
source "$here/pg.sh"

name=hash-proof
mkdir -p "$PG_RUN_DIR"
exec 8>"$PG_RUN_DIR/hash-proof.lock"
flock -w 300 8 || pg_die "timed out waiting for $PG_RUN_DIR/hash-proof.lock"
[[ -x "$PG_BIN/initdb" ]] || pg_die "PostgreSQL binaries not found (run testing/install-deps.sh)"

free_port() {
    local port tries
    for ((tries = 0; tries < 200; tries++)); do
        port=$((20000 + RANDOM % 20000))
        pg_port_busy "$port" || { echo "$port"; return 0; }
    done
    pg_die "no free port found"
}

# The server must not inherit the lock descriptors (fd 8 here, fd 9 from pg_lock): a postmaster
# holding them would keep every later caller waiting. Hence the `8>&- 9>&-` on the calls that
# may start it; the locks stay held by this shell.
(
    pg_lock
    if ! pg_exists "$name"; then
        pg_init "$name" "$(free_port)"
    elif ! pg_running "$name" && pg_port_busy "$(pg_port "$name")"; then
        pg_init "$name" "$(free_port)"
    fi
    pg_start "$name" 8>&- 9>&-
)
echo "$(pg_port "$name") $(pg_dir "$name")"
