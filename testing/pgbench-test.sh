#!/usr/bin/env bash
# pgbench-test.sh [ROUTER_BIN] — an end-to-end smoke test of the pooler under load.
#
# Starts a router on free ports with its own config (pool `pgbench`, user
# app/secret, pool_size 10, transaction mode) in front of the fleet's `single`
# PostgreSQL (pg.sh fleet-up), initialises a scratch database with pgbench -i
# directly on PostgreSQL, then runs `pgbench -c 50 -j 2 -T 10` through the router
# with -M simple, -M extended and -M prepared. A mode passes when pgbench exits 0,
# processed transactions and reported "number of failed transactions: 0".
# Prints one line per mode and a final "N passed, M failed"; exits 1 on any failure.
#
# Env: PGBENCH_TEST_SECONDS (10), PGBENCH_TEST_CLIENTS (50), PGBENCH_TEST_POOL_SIZE (10).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"

bin="$(router_bin "${1:-}")"
secs="${PGBENCH_TEST_SECONDS:-10}"
clients="${PGBENCH_TEST_CLIENTS:-50}"
pool_size="${PGBENCH_TEST_POOL_SIZE:-10}"
work="$PG_RUN_DIR/pgbench-test"
mkdir -p "$work"

bash "$here/pg.sh" fleet-up >/dev/null
single_port="$(pg_port single)"
db=orochi_pgbench

read -r port admin metrics < <(free_ports 3)
router_config "$work/orochi.toml" "$port" "$admin" "$metrics" pgbench "$db" "$single_port" "$pool_size"

modes=(simple extended prepared)
passed=0 failed=0 reported=0
cleanup() {
    router_stop "$work/router.pid"
    # A setup failure still ends with the count line: every mode not run failed.
    ((reported)) || echo "$passed passed, $((${#modes[@]} - passed)) failed"
}
trap cleanup EXIT

echo "pgbench-test: scratch database $db on 127.0.0.1:$single_port"
pg_psql single -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $db WITH (FORCE);
CREATE DATABASE $db OWNER app;
SQL
if ! PGPASSWORD=secret "$PG_BIN/pgbench" -i -q -s 1 -h 127.0.0.1 -p "$single_port" -U app "$db" \
    >"$work/init.log" 2>&1; then
    cat "$work/init.log" >&2
    pg_die "pgbench -i failed"
fi

echo "pgbench-test: router $bin on 127.0.0.1:$port (log $work/router.log)"
router_start "$bin" "$work/orochi.toml" "$work/router.log" "$work/router.pid" "$port" "$admin" "$metrics"
router_wait "$work/router.pid" "$port" "$work/router.log"

for ((i = 0; i < ${#modes[@]}; i++)); do
    mode="${modes[$i]}"
    out="$work/pgbench-$mode.log"
    rc=0
    PGPASSWORD=secret PGCONNECT_TIMEOUT=10 timeout $((secs + 120)) \
        "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U app -n -c "$clients" -j 2 -T "$secs" -M "$mode" pgbench \
        >"$out" 2>&1 || rc=$?
    nfail="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")"
    ndone="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")"
    tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$out")"
    if [[ "$rc" == 0 && "$nfail" == 0 && "${ndone:-0}" -gt 0 ]]; then
        passed=$((passed + 1))
        printf 'pgbench-test: %-8s ok    tps=%s transactions=%s failed=0\n' "$mode" "$tps" "$ndone"
    else
        failed=$((failed + 1))
        printf 'pgbench-test: %-8s FAIL  exit=%s transactions=%s failed=%s (log %s)\n' \
            "$mode" "$rc" "${ndone:-?}" "${nfail:-?}" "$out"
        grep -v '^pgbench: error: client [0-9]* script [0-9]* aborted' "$out" | tail -n 15 | sed 's/^/    /' >&2 || true
    fi
    if ! router_alive "$(cat "$work/router.pid")"; then
        tail -n 30 "$work/router.log" >&2
        echo "pgbench-test: the router died during -M $mode" >&2
        failed=$((failed + ${#modes[@]} - i - 1))
        break
    fi
done

reported=1
echo "$passed passed, $failed failed"
((failed == 0))
