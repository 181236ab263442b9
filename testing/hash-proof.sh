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

# Ports are drawn below the kernel's ephemeral range: a port in that range can be taken, between
# our check and the postmaster's bind, by any outgoing connection of a test running beside us
# (CI saw "Address already in use" on 33218). A start that still fails gets a new port, twice.
free_port() {
    local port tries low
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
    (( low > 21000 )) || low=32768
    for ((tries = 0; tries < 200; tries++)); do
        port=$((20000 + RANDOM % (low - 20000)))
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
    for attempt in 1 2 3; do
        if (pg_start "$name" 8>&- 9>&-); then
            exit 0
        fi
        (( attempt < 3 )) && ! pg_running "$name" || exit 1
        pg_log "$name: start failed (attempt $attempt), trying another port"
        pg_init "$name" "$(free_port)"
    done
)
echo "$(pg_port "$name") $(pg_dir "$name")"
