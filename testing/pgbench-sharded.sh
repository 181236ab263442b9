#!/usr/bin/env bash
# pgbench-sharded.sh [ROUTER_BIN] — pgbench's own initialisation and its TPC-B-like
# transaction through a 2-shard pool (issue 20 item 3: sharded writes from clients that
# wrap them in transactions; `pgbench -i` loads with COPY inside a transaction).
#
# pgbench_accounts, pgbench_branches and pgbench_tellers are distributed by their ids;
# pgbench_history is not listed (replicated: every shard gets every row). Checks:
#   1. `pgbench -i -s 1` through the router succeeds; the shards hold 100,000 accounts
#      between them, each row once, on the shard the sharding crate's hash names
#      (checked with PostgreSQL's own satisfies_hash_partition on each shard);
#   2. `pgbench -c 4 -T 5` (every transaction updates an account, a teller and a branch
#      that may live on different shards: two-phase commit) ends with 0 failed
#      transactions;
#   3. money is conserved: the sums of account, teller and branch balances and of the
#      history's deltas are equal, and no transaction is left prepared on any shard.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"

bin="$(router_bin "${1:-}")"
work="$PG_RUN_DIR/pgbench-sharded"
mkdir -p "$work"
bash "$here/pg.sh" fleet-up >/dev/null
db=orochi_pgbench_sharded
ports=("$(pg_port s0)" "$(pg_port s1)")
for s in s0 s1; do
    pg_psql "$s" -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $db WITH (FORCE);
CREATE DATABASE $db OWNER app;
SQL
done

read -r port admin metrics < <(free_ports 3)
router_config "$work/orochi.toml" "$port" "$admin" "$metrics" "$db" "$db" "${ports[0]}" 6
cat >>"$work/orochi.toml" <<EOF

[pools.$db.shards.1]
database = "$db"
servers = [["127.0.0.1", ${ports[1]}, "primary"]]

[sharding]
enabled = true

[[sharding.tables]]
name = "pgbench_accounts"
column = "aid"
data_type = "integer"

[[sharding.tables]]
name = "pgbench_branches"
column = "bid"
data_type = "integer"

[[sharding.tables]]
name = "pgbench_tellers"
column = "tid"
data_type = "integer"
EOF
cleanup() { router_stop "$work/router.pid"; }
trap cleanup EXIT
router_start "$bin" "$work/orochi.toml" "$work/router.log" "$work/router.pid" "$port" "$admin" "$metrics"
router_wait "$work/router.pid" "$port" "$work/router.log"

fail() { echo "pgbench-sharded: FAIL: $*" >&2; tail -n 20 "$work/router.log" >&2; exit 1; }
through() { PGPASSWORD=secret "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$port" -U app -d "$db" -c "$1"; }
on_shard() { pg_psql "$1" -d "$db" -X -At -c "$2"; }

PGPASSWORD=secret timeout 300 "$PG_BIN/pgbench" -i -q -s 1 -h 127.0.0.1 -p "$port" -U app "$db" \
    >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; fail "pgbench -i through the router"; }
total=0
for i in 0 1; do
    n="$(on_shard "s$i" "SELECT count(*) FROM pgbench_accounts")"
    # Rows on the shard PostgreSQL's hash partitioning does not name.
    wrong="$(on_shard "s$i" "CREATE TEMP TABLE k (aid int) PARTITION BY HASH (aid);
        SELECT count(*) FROM pgbench_accounts WHERE NOT satisfies_hash_partition('k'::regclass, 2, $i, aid)" | tail -n 1)"
    [[ "$wrong" == 0 ]] || fail "shard $i holds $wrong accounts another shard's hash names"
    total=$((total + n))
    echo "pgbench-sharded: shard $i holds $n accounts"
done
((total == 100000)) || fail "the shards hold $total accounts, want 100000"
echo "pgbench-sharded: pgbench -i ok (100000 accounts, each on its hash's shard)"

out="$work/run.log"
PGPASSWORD=secret timeout 120 "$PG_BIN/pgbench" -n -c 4 -j 2 -T 5 -h 127.0.0.1 -p "$port" -U app "$db" \
    >"$out" 2>&1 || { cat "$out" >&2; fail "pgbench -c 4 -T 5"; }
nfail="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")"
ndone="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")"
[[ "$nfail" == 0 && "${ndone:-0}" -gt 0 ]] || fail "pgbench: $ndone transactions, $nfail failed (log $out)"
echo "pgbench-sharded: pgbench -c 4 -T 5 ok ($ndone transactions, 0 failed)"

a="$(through "SELECT sum(abalance) FROM pgbench_accounts")"
b="$(through "SELECT sum(bbalance) FROM pgbench_branches")"
t="$(through "SELECT sum(tbalance) FROM pgbench_tellers")"
h="$(through "SELECT sum(delta) FROM pgbench_history")"
[[ "$a" == "$b" && "$b" == "$t" && "$t" == "$h" ]] ||
    fail "balances differ: accounts $a, branches $b, tellers $t, history $h"
for i in 0 1; do
    p="$(on_shard "s$i" "SELECT count(*) FROM pg_prepared_xacts")"
    [[ "$p" == 0 ]] || fail "$p transactions left prepared on shard $i"
done
echo "pgbench-sharded: balances conserved ($a), nothing left prepared"
