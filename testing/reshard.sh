#!/usr/bin/env bash
# reshard.sh — the PostgreSQL servers of the online-resharding tests (`make test-reshard`;
# CI runs it). Logical replication needs wal_level = logical, replication slots and
# workers, which the shared fleet (pg.sh) does not have; these instances are the
# fleet's kind (pg.sh init/start, run as the `postgres` user when root) with those
# settings added through ALTER SYSTEM.
#
#   reshard.sh fleet-up     start rs_a and rs_b on $OROCHI_PG_BASE_PORT + 70, + 71
#                           (clear of the fleet, +0..+61, regress, +80.., and ops, +90..)
#                           and rs_plain on + 72, left at wal_level = replica (what `plan`
#                           must refuse), and write .run/reshard.env
#                           (OROCHI_RESHARD_SERVERS=..., OROCHI_RESHARD_PLAIN=...)
#   reshard.sh test [BIN]   fleet-up, then the reshard test suite (reshard/tests) against
#                           the router binary BIN (default: target/debug/orochi-router)
#   reshard.sh stop         stop rs_a, rs_b and rs_plain
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"

names=(rs_a rs_b)
plain=rs_plain
base="${OROCHI_PG_BASE_PORT:-15432}"

rs_settings() {
    cat <<'SQL'
ALTER SYSTEM SET wal_level = logical;
ALTER SYSTEM SET max_replication_slots = 40;
ALTER SYSTEM SET max_wal_senders = 40;
ALTER SYSTEM SET max_logical_replication_workers = 24;
ALTER SYSTEM SET max_worker_processes = 40;
ALTER SYSTEM SET max_sync_workers_per_subscription = 2;
ALTER SYSTEM SET wal_sender_timeout = '10s';
SQL
}

rs_fleet_up() {
    local i name port addrs=()
    for i in "${!names[@]}"; do
        name="${names[$i]}"
        port=$((base + 70 + i))
        pg_init "$name" "$port"
        pg_start "$name"
        if [[ "$(pg_psql "$name" -Atc 'SHOW wal_level')" != logical ]]; then
            rs_settings | pg_psql "$name" -q -v ON_ERROR_STOP=1 >/dev/null
            pg_stop "$name"
            pg_start "$name"
        fi
        addrs+=("127.0.0.1:$port")
    done
    pg_init "$plain" $((base + 72))
    pg_start "$plain"
    local IFS=,
    cat >"$PG_RUN_DIR/reshard.env" <<ENV
OROCHI_RESHARD_SERVERS=${addrs[*]}
OROCHI_RESHARD_PLAIN=127.0.0.1:$((base + 72))
OROCHI_PG_BINDIR=$PG_BIN
ENV
    cat "$PG_RUN_DIR/reshard.env"
}

case "${1:-}" in
    fleet-up)
        pg_lock
        rs_fleet_up
        ;;
    stop)
        pg_lock
        for n in "${names[@]}" "$plain"; do if pg_exists "$n"; then pg_stop "$n"; fi; done
        ;;
    test)
        bin="$(router_bin "${2:-}")"
        (pg_lock; rs_fleet_up) >/dev/null
        set -a
        # shellcheck disable=SC1091
        source "$PG_RUN_DIR/reshard.env"
        set +a
        export OROCHI_ROUTER_BIN="$bin" OROCHI_PG_DUMP="$PG_BIN/pg_dump"
        cd "$PG_ROOT_DIR"
        if command -v cargo-nextest >/dev/null 2>&1; then
            cargo nextest run -p orochi-reshard --no-fail-fast --run-ignored all --test-threads 1
        else
            cargo test -p orochi-reshard --no-fail-fast -- --include-ignored --test-threads 1
        fi
        ;;
    *)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
        exit 2
        ;;
esac
