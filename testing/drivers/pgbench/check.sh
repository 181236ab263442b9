#!/usr/bin/env bash
# pgbench through the router (testing/drivers.sh): `pgbench -i` (DDL, COPY of
# 100,000 rows, VACUUM) and the TPC-B-like workload with 20 clients over the
# pool of 5, in each query mode (-M simple, extended, prepared: the last one
# prepares each statement once per client connection and reuses it thousands of
# times), plus a custom script in pipeline mode (\startpipeline ... \endpipeline)
# and one that fails inside a transaction on purpose. Connection from PG* env;
# the tls target (DRV_TLS=1) adds PGSSLMODE=verify-full with the test CA as root.
set -uo pipefail
if [[ "${DRV_TLS:-0}" == 1 ]]; then
    export PGSSLMODE=verify-full PGSSLROOTCERT="$DRV_TLS_CA"
fi
BIN="${DRV_PG_BIN:-/usr/lib/postgresql/15/bin}"
SECS="${DRV_PGBENCH_SECONDS:-4}"
POOL_SIZE="${DRV_POOL_SIZE:-5}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL $case: $*"; return 1; }
q() { "$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# run_bench ARGS...: 20 clients, checks exit 0, transactions > 0, 0 failed.
run_bench() {
    local out="$tmp/$case.out" rc=0 ndone nfail
    "$BIN/pgbench" -n -c 20 -j 2 -T "$SECS" "$@" >"$out" 2>&1 || rc=$?
    ndone="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")"
    nfail="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")"
    if [[ "$rc" != 0 || "${ndone:-0}" -le 0 || "${nfail:-x}" != 0 ]]; then
        fail "exit $rc, transactions ${ndone:-?}, failed ${nfail:-?}: $(grep -m 3 -iE 'error|abort|fatal' "$out" | tr '\n' ' ')"
        return 1
    fi
    echo "  $case: $ndone transactions" >&2
}

c_init() {
    local out
    out="$("$BIN/pgbench" -i -q -s 1 2>&1)" || { fail "pgbench -i: $(tail -n 3 <<<"$out" | tr '\n' ' ')"; return; }
    local n
    n="$(q -c "SELECT count(*) FROM pgbench_accounts" 2>&1)"
    [[ "$n" == 100000 ]] || fail "pgbench_accounts has '$n' rows after -i, want 100000"
}

c_mode_simple() { run_bench -M simple; }
c_mode_extended() { run_bench -M extended; }
c_mode_prepared() { run_bench -M prepared; }

c_pipeline() {
    cat >"$tmp/pipe.sql" <<'SQL'
\set aid random(1, 100000)
\set delta random(-500, 500)
\startpipeline
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
END;
\endpipeline
SQL
    run_bench -M extended -f "$tmp/pipe.sql"
}

c_pool_bound() {
    # While 20 clients run, the server never sees more than pool_size connections.
    local max
    cat >"$tmp/count.sql" <<'SQL'
BEGIN;
INSERT INTO drv_pgbench_backends SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND usename = current_user AND backend_type = 'client backend';
SELECT pg_sleep(0.01);
END;
SQL
    max="$(q -c "DROP TABLE IF EXISTS drv_pgbench_backends" -c "CREATE TABLE drv_pgbench_backends (n int)" 2>&1)" \
        || { fail "create: $max"; return; }
    run_bench -M prepared -f "$tmp/count.sql" || return
    max="$(q -c "SELECT max(n) FROM drv_pgbench_backends" 2>&1)" || { fail "select: $max"; return; }
    [[ $max =~ ^[0-9]+$ ]] || { fail "max(n) is '$max', not a count"; return; }
    ((max <= POOL_SIZE)) || fail "$max server connections at once, pool_size is $POOL_SIZE"
}

c_shard_point_read() {
    cat >"$tmp/read.sql" <<'SQL'
\set aid random(1, 1000)
SELECT balance AS b FROM accounts WHERE aid = :aid \gset
\if :b != 10 * :aid
\set wrong_balance 1 / 0
\endif
SELECT count(*) AS n FROM accounts WHERE aid = :aid \gset
\if :n != 1
\set missing_row 1 / 0
\endif
SQL
    # A wrong or missing row divides by zero in pgbench itself: the client aborts.
    # (Not `CASE ... ELSE 1 / 0` in SQL: PostgreSQL folds the constant 1 / 0 when it
    # plans the statement, whichever branch runs.)
    run_bench -M prepared -f "$tmp/read.sql" --max-tries=1
}

c_shard_point_write() {
    local base="${DRV_KEY_BASE:-1000000}"
    cat >"$tmp/write.sql" <<SQL
\\set aid random($base, $((base + 9999)))
INSERT INTO accounts (aid, balance, name) VALUES (:aid, 1, 'pgbench') ON CONFLICT (aid) DO UPDATE SET balance = accounts.balance + 1;
SQL
    run_bench -M prepared -f "$tmp/write.sql" || return
    IFS=, read -r -a ports <<<"${DRV_SHARD_PORTS:-}"
    local wrong=0 p s n
    for s in 0 1; do
        p="${ports[$s]}"
        # Rows on shard s whose hash says they belong elsewhere.
        n="$(PGPORT="$p" PGSSLMODE=disable q -c "SELECT count(*) FROM accounts WHERE aid BETWEEN $base AND $((base + 9999))
            AND NOT satisfies_hash_partition('drv_hashref'::regclass, 2, $s, aid)" 2>&1)" \
            || { fail "shard $s: $n"; return; }
        [[ $n =~ ^[0-9]+$ ]] || { fail "shard $s: '$n' is not a count"; return; }
        wrong=$((wrong + n))
    done
    ((wrong == 0)) || fail "$wrong rows written to the wrong shard"
}

c_shard_fanout_aggregate() {
    cat >"$tmp/agg.sql" <<'SQL'
SELECT count(*) AS n, sum(balance) AS s FROM accounts WHERE aid BETWEEN 1 AND 1000 \gset
\if :n != 1000 or :s != 5005000
\set wrong_aggregate 1 / 0
\endif
SQL
    run_bench -M extended -f "$tmp/agg.sql" --max-tries=1
}

c_shard_order_limit() {
    cat >"$tmp/order.sql" <<'SQL'
SELECT aid AS a FROM accounts WHERE aid <= 1000 ORDER BY aid DESC LIMIT 1 OFFSET 2 \gset
\if :a != 998
\set wrong_order 1 / 0
\endif
SQL
    run_bench -M extended -f "$tmp/order.sql" --max-tries=1
}

if [[ "${DRV_TARGET:-single}" == single ]]; then
    cases=(init mode_simple mode_extended mode_prepared pipeline pool_bound)
else
    cases=(shard_point_read shard_point_write shard_fanout_aggregate shard_order_limit)
fi
echo "PLAN ${cases[*]}"
for case in "${cases[@]}"; do
    started=$(date +%s%N)
    if "c_$case"; then
        printf 'PASS %s (%d ms)\n' "$case" $((($(date +%s%N) - started) / 1000000))
    fi
done
