#!/usr/bin/env bash
# soak.sh [ROUTER_BIN] — the soak of issue 17 item 6 (make test-soak; not in CI).
#
# SOAK_MINUTES (30) of a mixed load through one router:
#   - pool `soak_sharded`: pgbench's TPC-B transaction over 2 shards (s0, s1) with the
#     accounts, tellers and branches distributed by id, so most transactions are
#     cross-shard two-phase commits (4 clients);
#   - pool `soak_rw`: the fleet's `single` as primary and a streaming replica of it:
#     pgbench -S reads split to the replica and a write script on the primary (4 + 2
#     clients).
# The load runs in one-minute rounds. In the middle of every round the router gets a
# SIGHUP (RELOAD under load, which must fail nothing); every SOAK_RESTART_EVERY (5)
# rounds it is stopped (SIGTERM, drained) and started again between rounds.
#
# At the end of each round: the router's RSS, open fds, its server connections (as the
# shards and the primary count them in pg_stat_activity), transactions and failures.
# The table is printed and kept in .run/soak/curve.md. Pass/fail:
#   - 0 failed transactions in every round;
#   - the last 20 minutes are flat: for the same minute of a router's life, RSS varies
#     by at most 25% + 4 MiB, fds by at most 16, and server connections never exceed
#     the pools' sizes;
#   - at the end nothing is left prepared and the money of TPC-B is conserved.
# Env: SOAK_MINUTES (30), SOAK_RESTART_EVERY (5).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"

bin="$(router_bin "${1:-}")"
minutes="${SOAK_MINUTES:-30}"
restart_every="${SOAK_RESTART_EVERY:-5}"
work="$PG_RUN_DIR/soak"
rm -rf "$work"
mkdir -p "$work"
bash "$here/pg.sh" fleet-up >/dev/null
db=orochi_soak
say() { echo "soak: $*" >&2; }

for s in s0 s1 single; do
    pg_psql "$s" -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $db WITH (FORCE);
CREATE DATABASE $db OWNER app;
SQL
done
# The replicated pool's tables, loaded on the primary before the replica is cloned.
PGPASSWORD=secret "$PG_BIN/pgbench" -i -q -s 1 -h 127.0.0.1 -p "$(pg_port single)" -U app "$db" \
    >"$work/init-rw.log" 2>&1 || { cat "$work/init-rw.log" >&2; pg_die "pgbench -i on single failed"; }
read -r replica_port < <(free_ports 1)
bash "$here/pg.sh" destroy soak_r >/dev/null 2>&1 || true
bash "$here/pg.sh" replica soak_r single "$replica_port" >/dev/null

read -r port admin metrics < <(free_ports 3)
router_config "$work/orochi.toml" "$port" "$admin" "$metrics" soak_sharded "$db" "$(pg_port s0)" 6
cat >>"$work/orochi.toml" <<EOF

[pools.soak_sharded.shards.1]
database = "$db"
servers = [["127.0.0.1", $(pg_port s1), "primary"]]

[pools.soak_rw]
pool_mode = "transaction"

[pools.soak_rw.users.0]
username = "app"
password = "secret"
pool_size = 6

[pools.soak_rw.shards.0]
database = "$db"
servers = [["127.0.0.1", $(pg_port single), "primary"], ["127.0.0.1", $replica_port, "replica"]]

[sharding]
enabled = true

[[sharding.tables]]
name = "pgbench_accounts"
column = "aid"
data_type = "integer"
pool = "soak_sharded"

[[sharding.tables]]
name = "pgbench_branches"
column = "bid"
data_type = "integer"
pool = "soak_sharded"

[[sharding.tables]]
name = "pgbench_tellers"
column = "tid"
data_type = "integer"
pool = "soak_sharded"
EOF
# Server connections the pools may hold: 6 per shard for the sharded pool, 6 to each
# server of the replicated one.
max_sharded=12
max_rw=12

start() {
    router_start "$bin" "$work/orochi.toml" "$work/router.log" "$work/router.pid" "$port" "$admin" "$metrics"
    router_wait "$work/router.pid" "$port" "$work/router.log"
}
start
trap 'router_stop "$work/router.pid"' EXIT
PGPASSWORD=secret "$PG_BIN/pgbench" -i -q -s 1 -h 127.0.0.1 -p "$port" -U app soak_sharded \
    >"$work/init-sharded.log" 2>&1 || { cat "$work/init-sharded.log" >&2; pg_die "pgbench -i through the router failed"; }

cat >"$work/write.sql" <<'SQL'
\set aid random(1, 100000)
UPDATE pgbench_accounts SET filler = 'soak' WHERE aid = :aid;
SQL

count_conns() { # INSTANCE [PORT]: connections of app to the soak database
    local port="${2:-$(pg_port "$1")}"
    PGPASSWORD=postgres "$PG_BIN/psql" -X -Atq -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND usename = 'app'"
}
# pgbench LOG -> "transactions failed" (an unfinished run counts as failed)
pgbench_result() {
    local tx failed
    tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1")"
    failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$1")"
    if [[ -z "$tx" ]] || grep -q 'aborted\|error' "$1"; then
        echo "${tx:-0} 1"
    else
        echo "$tx ${failed:-0}"
    fi
}

curve="$work/curve.md"
{
    echo "| minute | life minute | router RSS KiB | fds | server conns sharded | server conns rw | transactions | failed |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$curve"
samples=()
bad=0
life=0
for ((m = 1; m <= minutes; m++)); do
    life=$((life + 1))
    run="$work/round-$m"
    mkdir -p "$run"
    PGPASSWORD=secret "$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$port" -U app -c 4 -j 2 -T 55 soak_sharded \
        >"$run/tpcb.log" 2>&1 &
    p1=$!
    PGPASSWORD=secret "$PG_BIN/pgbench" -n -S -h 127.0.0.1 -p "$port" -U app -c 4 -j 1 -T 55 soak_rw \
        >"$run/reads.log" 2>&1 &
    p2=$!
    PGPASSWORD=secret "$PG_BIN/pgbench" -n -f "$work/write.sql" -h 127.0.0.1 -p "$port" -U app -c 2 -j 1 \
        -T 55 soak_rw >"$run/writes.log" 2>&1 &
    p3=$!
    sleep 27
    kill -HUP "$(cat "$work/router.pid")"
    wait "$p1" "$p2" "$p3" || true
    pid="$(cat "$work/router.pid")"
    rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")"
    fds="$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)"
    # One count per assignment: inside one $(( )), a failed count would be taken for 0
    # (first) or drop the whole loop as a syntax error (second), unseen by set -e.
    c0="$(count_conns s0)"
    c1="$(count_conns s1)"
    cs=$((c0 + c1))
    c0="$(count_conns single)"
    c1="$(count_conns soak_r "$replica_port")"
    crw=$((c0 + c1))
    tx=0 failed=0
    for f in tpcb reads writes; do
        read -r t fl < <(pgbench_result "$run/$f.log")
        tx=$((tx + t))
        failed=$((failed + fl))
    done
    echo "| $m | $life | $rss | $fds | $cs | $crw | $tx | $failed |" >>"$curve"
    samples+=("$m $life $rss $fds $cs $crw")
    say "minute $m/$minutes: RSS ${rss} KiB, $fds fds, server conns $cs + $crw, $tx transactions, $failed failed"
    if ((failed > 0)); then
        say "minute $m: failed transactions (logs in $run)"
        bad=$((bad + 1))
    fi
    if ((cs > max_sharded || crw > max_rw)); then
        say "minute $m: more server connections than the pools allow ($cs > $max_sharded or $crw > $max_rw)"
        bad=$((bad + 1))
    fi
    if ((m % restart_every == 0 && m < minutes)); then
        router_stop "$work/router.pid"
        start
        life=0
    fi
done
cat "$curve"

# Flat over the last 20 minutes: the same minute of each router life compared.
from=$((minutes > 20 ? minutes - 19 : 1))
if ! printf '%s\n' "${samples[@]}" | awk -v from="$from" '
    $1 >= from {
        k = $2
        if (!(k in lo) || $3 < lo[k]) lo[k] = $3
        if (!(k in hi) || $3 > hi[k]) hi[k] = $3
        if (!(k in flo) || $4 < flo[k]) flo[k] = $4
        if (!(k in fhi) || $4 > fhi[k]) fhi[k] = $4
    }
    END {
        bad = 0
        for (k in lo) {
            if (hi[k] > lo[k] * 1.25 + 4096) { printf "soak: RSS at life minute %d grew %d -> %d KiB\n", k, lo[k], hi[k] > "/dev/stderr"; bad = 1 }
            if (fhi[k] - flo[k] > 16) { printf "soak: fds at life minute %d grew %d -> %d\n", k, flo[k], fhi[k] > "/dev/stderr"; bad = 1 }
        }
        exit bad
    }'; then
    bad=$((bad + 1))
fi

# Nothing left prepared once the sweeper ran; TPC-B's money conserved.
sleep 3
prepared=0
for s in s0 s1; do
    n="$(pg_psql "$s" -d "$db" -Atc "SELECT count(*) FROM pg_prepared_xacts WHERE database = '$db'")"
    prepared=$((prepared + n))
done
# One aggregate per statement: each is a fan-out the router merges.
sum_of() {
    PGPASSWORD=secret "$PG_BIN/psql" -X -Atq -h 127.0.0.1 -p "$port" -U app -d soak_sharded -c "SELECT sum($1) FROM $2"
}
a="$(sum_of abalance pgbench_accounts)"
t="$(sum_of tbalance pgbench_tellers)"
b="$(sum_of bbalance pgbench_branches)"
say "prepared transactions left: $prepared; balances: accounts $a, tellers $t, branches $b"
((prepared == 0)) || bad=$((bad + 1))
[[ -n "$a" && "$a" == "$t" && "$t" == "$b" ]] || bad=$((bad + 1))
router_stop "$work/router.pid"
bash "$here/pg.sh" destroy soak_r >/dev/null 2>&1 || true
if ((bad > 0)); then
    say "FAILED ($bad checks; curve in $curve)"
    exit 1
fi
say "passed: $minutes minutes, flat over the last $((minutes - from + 1)) (curve in $curve)"
