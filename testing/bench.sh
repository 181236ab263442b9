#!/usr/bin/env bash
# bench.sh [ROUTER_BIN] — one benchmark run: Orochi Router vs PgBouncer vs direct PostgreSQL.
#
# 1. Throughput: `pgbench -S` (select-only) in simple and extended mode at 1, 16, 100
#    and 500 clients, ~10 s a point, against direct PostgreSQL (its own instance
#    `bench`, max_connections 600), PgBouncer (Debian's, started here as postgres:
#    transaction mode, default_pool_size 20, max_client_conn 12000, SCRAM with a
#    userlist) and the router (transaction mode, pool_size 20). TPS, and each proxy's
#    CPU time per transaction: its process's utime + stime over the pgbench run
#    (connection set-up included, the same for both) divided by the transactions.
#    PgBouncer and the router take turns for BENCH_ROUNDS rounds (medians; `pair`).
#    Prepared mode (`-M prepared`) runs direct and through the router only (PgBouncer
#    1.18 keeps no prepared statements in transaction mode): the router's gain over its
#    simple mode is set against PostgreSQL's own (issue 16).
# 2. Memory per idle client: a fresh router and a fresh PgBouncer each get N idle,
#    authenticated client connections (testing/bench/idle_clients.py), for each N of
#    BENCH_IDLE_CLIENTS; reported as (RSS after - RSS before) / N in KiB.
# 3. Sharded point selects: the same pgbench -S through a 2-shard pool vs the same
#    router's one-shard pool, alternating for BENCH_SHARDED_ROUNDS rounds (medians).
# 4. TLS: pgbench -S with sslmode=require at 1 and 100 clients through PgBouncer and the
#    router, each requiring client TLS with the same self-signed certificate (openssl),
#    alternating for BENCH_TLS_ROUNDS rounds (medians); and memory per idle TLS client.
# 5. Transfers: single-shard vs cross-shard (two-phase commit), 8 clients, 3 shards.
# 6. The regression check: the router / PgBouncer TPS ratio at 16 clients (simple)
#    must not fall below testing/bench/baseline.env's recorded value by more than the
#    run-to-run noise recorded there; the run exits 1 when it does
#    (BENCH_NO_REGRESSION_CHECK=1 skips it). A ratio below the floor is measured again
#    first, BENCH_CONFIRM_ROUNDS (4) more alternating rounds, and the median of all the
#    rounds is judged: one slow minute of the host no longer fails a run, a slower
#    router still does.
# Everything is printed as markdown (and kept in .run/bench/results.md).
# Without a router binary the router columns read n/a.
#
# Env: BENCH_SECONDS (10), BENCH_ROUNDS (3), BENCH_CLIENTS ("1 16 100 500"), BENCH_MODES ("simple extended prepared"),
#      BENCH_IDLE_CLIENTS ("2000 10000"), BENCH_SCALE (10), BENCH_SHARDED_CLIENTS ("1 50"),
#      BENCH_SHARDED_ROUNDS (3), BENCH_SHARD_POOL_SIZE (half the pool size: see router_up),
#      BENCH_ROUTER_GENERAL (extra [general] lines for the router, e.g. "worker_threads = 1"),
#      BENCH_TLS (1; 0 skips the TLS rows), BENCH_TLS_CLIENTS ("1 100"), BENCH_TLS_IDLE_CLIENTS ("2000"),
#      BENCH_TLS_ROUNDS (3), BENCH_2PC (1; 0 skips the transfers), BENCH_2PC_ROUNDS (3), BENCH_CONFIRM_ROUNDS (4),
#      OROCHI_BENCH_PG_PORT (OROCHI_PG_BASE_PORT + 28, i.e. 15460 by default, so two
#      checkouts with their own base ports bench side by side).
# Numbers from a shared 2-core machine are noisy: pgbench competes with the
# proxy for CPU. Compare ratios from the same run, not absolute numbers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"

secs="${BENCH_SECONDS:-10}"
read -r -a clients_list <<<"${BENCH_CLIENTS:-1 16 100 500}"
read -r -a modes <<<"${BENCH_MODES:-simple extended prepared}"
read -r -a idle_list <<<"${BENCH_IDLE_CLIENTS:-2000 10000}"
scale="${BENCH_SCALE:-10}"
pg_port_bench="${OROCHI_BENCH_PG_PORT:-$((${OROCHI_PG_BASE_PORT:-15432} + 28))}"
pool_size=20
db=bench
work="$PG_RUN_DIR/bench"
mkdir -p "$work"

if [[ -n "${1:-}" ]]; then
    bin="$(router_bin "$1")"
else
    bin="$(router_bin 2>/dev/null)" || bin=""
    [[ -n "$bin" ]] || echo "bench: no router binary found; the router columns will read n/a" >&2
fi
command -v pgbouncer >/dev/null || pg_die "pgbouncer is not installed (run testing/install-deps.sh)"

# Thousands of sockets: raise the descriptor limit as far as we may.
hard="$(ulimit -Hn)"
[[ "$hard" == unlimited ]] && hard=65536
ulimit -n "$hard"
idle_max="$(printf '%s\n' "${idle_list[@]}" | sort -n | tail -n 1)"
((hard >= idle_max + 500)) || echo "bench: warning: ulimit -n is $hard; $idle_max idle clients may not fit" >&2

# ---------------------------------------------------------------- PostgreSQL
bash "$here/pg.sh" init bench "$pg_port_bench"
bash "$here/pg.sh" start bench
have="$(pg_psql bench -d "$db" -Atc 'SELECT count(*) FROM pgbench_branches' 2>/dev/null || true)"
if [[ "$have" != "$scale" ]]; then
    echo "bench: pgbench -i -s $scale (once; kept between runs)"
    pg_psql bench -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $db WITH (FORCE);
CREATE DATABASE $db OWNER app;
SQL
    PGPASSWORD=secret "$PG_BIN/pgbench" -i -q -s "$scale" -h 127.0.0.1 -p "$pg_port_bench" -U app "$db" \
        >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; pg_die "pgbench -i failed"; }
fi

# Two shards of the same data for the sharded row: databases bench_s0/bench_s1 on the
# same instance, pgbench_accounts split by aid as PostgreSQL's hash partitioning splits it
# (the other pgbench tables replicated). Each shard's table is rewritten compact, as a
# shard loaded with only its rows is: after the DELETE a plain VACUUM leaves it at the
# full table's size, half empty, and every lookup then touches twice the pages of the
# one-shard pool's (0.79x at 50 clients in one run, 0.87-0.95x compact). The table comment
# marks a shard made so; older ones are made again.
shard_mark="orochi bench shard, compact"
for k in 0 1; do
    have="$(pg_psql bench -d "${db}_s$k" -Atc "SELECT (SELECT count(*) FROM pgbench_branches)::text || ':' || coalesce(obj_description('pgbench_accounts'::regclass, 'pg_class'), '')" 2>/dev/null || true)"
    if [[ "$have" != "$scale:$shard_mark" ]]; then
        echo "bench: shard $k of pgbench_accounts (once; kept between runs)"
        pg_psql bench -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS ${db}_s$k WITH (FORCE);
CREATE DATABASE ${db}_s$k OWNER app TEMPLATE $db;
SQL
        pg_psql bench -d "${db}_s$k" -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE TEMP TABLE keyspace (aid int) PARTITION BY HASH (aid);
DELETE FROM pgbench_accounts WHERE NOT satisfies_hash_partition('keyspace'::regclass, 2, $k, aid);
VACUUM FULL ANALYZE pgbench_accounts;
COMMENT ON TABLE pgbench_accounts IS '$shard_mark';
SQL
    fi
done

# ---------------------------------------------------------------- PgBouncer
bouncer_dir="$work/pgbouncer"
bouncer_pid() { cat "$bouncer_dir/pgbouncer.pid" 2>/dev/null; }
bouncer_stop() {
    local pid i
    pid="$(bouncer_pid)" || return 0
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -INT "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
}
bouncer_start() {
    bouncer_stop
    mkdir -p "$bouncer_dir"
    read -r bouncer_port < <(free_ports 1)
    cat >"$bouncer_dir/pgbouncer.ini" <<EOF
[databases]
$db = host=127.0.0.1 port=$pg_port_bench dbname=$db

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $bouncer_dir/userlist.txt
pool_mode = transaction
default_pool_size = $pool_size
max_client_conn = 12000
logfile = $bouncer_dir/pgbouncer.log
pidfile = $bouncer_dir/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
${bouncer_tls_lines:-}
EOF
    echo '"app" "secret"' >"$bouncer_dir/userlist.txt"
    if pg_is_root; then
        chown -R postgres:postgres "$bouncer_dir"
        chmod 600 "$bouncer_dir/userlist.txt"
    fi
    rm -f "$bouncer_dir/pgbouncer.pid"
    # runuser's PAM session resets RLIMIT_NOFILE; raise it again inside.
    # shellcheck disable=SC2016 # $0 and $@ expand in the inner shell
    pg_as bash -c 'ulimit -n "$0" && exec "$@"' "$(ulimit -n)" pgbouncer -q -d "$bouncer_dir/pgbouncer.ini" ||
        { tail -n 20 "$bouncer_dir/pgbouncer.log" >&2; pg_die "pgbouncer failed to start"; }
    local i
    for ((i = 0; i < 40; i++)); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$bouncer_port" -t 1 && return 0
        sleep 0.25
    done
    pg_die "pgbouncer did not accept connections on $bouncer_port"
}

# ---------------------------------------------------------------- router
# Both shards of the sharded pool are databases of one PostgreSQL on this machine's
# cores, where in production each is a server of its own: each gets half the one-shard
# pool's connections, so both pools run the same 20 backends. With 20 a shard, 40
# backends on 2 cores measured 0.71-0.86x of the one-shard pool at 50 clients; 10 a
# shard 0.91-1.07x, the same router (BENCH_SHARD_POOL_SIZE to compare).
shard_pool_size="${BENCH_SHARD_POOL_SIZE:-$((pool_size / 2))}"
router_up() {
    router_stop "$work/router.pid"
    read -r router_port router_admin router_metrics < <(free_ports 3)
    router_config "$work/orochi.toml" "$router_port" "$router_admin" "$router_metrics" "$db" "$db" \
        "$pg_port_bench" "$pool_size"
    local extra="${BENCH_ROUTER_GENERAL:-}${router_tls_lines:+$'\n'$router_tls_lines}"
    if [[ -n "$extra" ]]; then
        # The [general] table is the file's first; extra keys go right after its header.
        awk -v extra="$extra" '{print} /^\[general\]$/ {print extra}' "$work/orochi.toml" \
            >"$work/orochi.toml.tmp" && mv "$work/orochi.toml.tmp" "$work/orochi.toml"
    fi
    cat >>"$work/orochi.toml" <<EOF

[pools.sharded]
pool_mode = "transaction"

[pools.sharded.users.0]
username = "app"
password = "secret"
pool_size = $shard_pool_size

[pools.sharded.shards.0]
database = "${db}_s0"
servers = [["127.0.0.1", $pg_port_bench, "primary"]]

[pools.sharded.shards.1]
database = "${db}_s1"
servers = [["127.0.0.1", $pg_port_bench, "primary"]]

[[sharding.tables]]
name = "pgbench_accounts"
column = "aid"
data_type = "integer"
pool = "sharded"
EOF
    PGDOG_LOG_LEVEL="${PGDOG_LOG_LEVEL:-warn}" router_start "$bin" "$work/orochi.toml" "$work/router.log" \
        "$work/router.pid" "$router_port" "$router_admin" "$router_metrics"
    router_wait "$work/router.pid" "$router_port" "$work/router.log"
}

cleanup() {
    [[ -n "${probe_pid:-}" ]] && kill "$probe_pid" 2>/dev/null
    router_stop "$work/router.pid"
    bouncer_stop
    bash "$here/pg.sh" stop bench >/dev/null 2>&1 || true
}
trap cleanup EXIT

# ---------------------------------------------------------------- idle-client probe
idle_py="$here/bench/idle_clients.py"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# idle_probe NAME PORT PID N [--tls] -> prints "before after per_client" (KiB)
idle_probe() {
    local name="$1" port="$2" pid="$3" idle_n="$4" before after i ready="$work/idle-$1.ready"
    local extra=("${@:5}")
    rm -f "$ready"
    # Warm up: a few connections first so lazy start-up costs are not counted.
    python3 "$idle_py" --host 127.0.0.1 --port "$port" --user app --password secret \
        --db "$db" --count 10 --ready "$ready" "${extra[@]}" >/dev/null 2>&1 &
    probe_pid=$!
    for ((i = 0; i < 120; i++)); do
        [[ -s "$ready" ]] && break
        sleep 0.25
    done
    kill "$probe_pid" 2>/dev/null; wait "$probe_pid" 2>/dev/null || true
    rm -f "$ready"
    sleep 2
    before="$(rss_kib "$pid")"
    python3 "$idle_py" --host 127.0.0.1 --port "$port" --user app --password secret \
        --db "$db" --count "$idle_n" --ready "$ready" "${extra[@]}" 2>"$work/idle-$name.err" &
    probe_pid=$!
    for ((i = 0; i < 1200; i++)); do
        [[ -s "$ready" ]] && break
        kill -0 "$probe_pid" 2>/dev/null || break
        sleep 0.25
    done
    if [[ ! -s "$ready" ]]; then
        cat "$work/idle-$name.err" >&2
        kill "$probe_pid" 2>/dev/null; wait "$probe_pid" 2>/dev/null || true
        probe_pid=""
        echo "bench: $name: could not hold $idle_n idle clients" >&2
        echo "$before n/a n/a"
        return
    fi
    sleep 3
    after="$(rss_kib "$pid")"
    kill "$probe_pid" 2>/dev/null; wait "$probe_pid" 2>/dev/null || true
    probe_pid=""
    echo "$before $after $(awk -v a="$after" -v b="$before" -v n="$idle_n" 'BEGIN {printf "%.2f", (a - b) / n}')"
}

# ---------------------------------------------------------------- memory (fresh processes)
mem_rows=()
for n in "${idle_list[@]}"; do
    echo "bench: memory per idle client ($n clients)" >&2
    bouncer_start
    read -r b_before b_after b_per < <(idle_probe pgbouncer "$bouncer_port" "$(bouncer_pid)" "$n")
    r_before=n/a r_after=n/a r_per=n/a
    if [[ -n "$bin" ]]; then
        router_up
        read -r r_before r_after r_per < <(idle_probe router "$router_port" "$(cat "$work/router.pid")" "$n")
    fi
    mem_rows+=("| $n | $b_before | $b_after | $b_per | $r_before | $r_after | $r_per |")
done

# ---------------------------------------------------------------- throughput (fresh processes)
bouncer_start
[[ -n "$bin" ]] && router_up

clk_tck="$(getconf CLK_TCK)"
# cpu_ticks PID: the process's user + system time so far, in clock ticks (all threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo n/a; }
# host_ticks: "steal total" of /proc/stat's cpu line, in clock ticks: the time the
# hypervisor gave this VM's cores to other tenants, and all time. A run with much stolen
# time is slower for both proxies, and their CPU per transaction reads higher (a stolen
# tick can be charged to the process that was running); the report says how much was.
host_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t; exit}' /proc/stat; }
# steal_since "STEAL TOTAL": the share of the time since then that was stolen, in %.
steal_since() {
    local s0 t0 s1 t1
    read -r s0 t0 <<<"$1"
    read -r s1 t1 < <(host_ticks)
    awk -v a="$((s1 - s0))" -v b="$((t1 - t0))" 'BEGIN {printf "%.1f", (b > 0 ? 100 * a / b : 0)}'
}
run_host_ticks="$(host_ticks)"

# point NAME PORT CLIENTS MODE [DB] [PID] -> "tps latency_ms cpu_us_per_tx"
point() {
    local name="$1" port="$2" c="$3" mode="$4" target_db="${5:-$db}" pid="${6:-}"
    local out="$work/pgbench-$1-$4-$3.log" jobs=2 tps="" lat="" tx="" t0=n/a t1=n/a cpu=n/a
    ((c < 2)) && jobs=1
    [[ -n "$pid" ]] && t0="$(cpu_ticks "$pid")"
    if PGPASSWORD=secret PGSSLMODE="${sslmode:-prefer}" timeout $((secs + 120)) "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U app -n -S \
        -M "$mode" -c "$c" -j "$jobs" -T "$secs" "$target_db" >"$out" 2>&1; then
        tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$out")"
        lat="$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out")"
        tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")"
    fi
    [[ -n "$pid" ]] && t1="$(cpu_ticks "$pid")"
    if [[ -n "${tps:-}" && -n "${lat:-}" ]] && grep -q '^number of failed transactions: 0 ' "$out" &&
        [[ -n "$tx" && "$tx" != 0 ]]; then
        [[ "$t0" != n/a && "$t1" != n/a ]] &&
            cpu="$(awk -v a="$t0" -v b="$t1" -v hz="$clk_tck" -v n="$tx" 'BEGIN {printf "%.1f", (b - a) * 1e6 / hz / n}')"
        echo "$tps $lat $cpu"
    else
        echo "bench: pgbench against $name with $c clients ($mode) failed (log $out)" >&2
        tail -n 5 "$out" | sed 's/^/    /' >&2
        echo "n/a n/a n/a"
    fi
}

# shellcheck disable=SC2015 # echo cannot fail
ratio() { [[ "$1" == n/a || "$2" == n/a ]] && echo n/a || awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
# shellcheck disable=SC2015 # echo cannot fail
fmt() { [[ "$1" == n/a ]] && echo n/a || awk -v v="$1" -v d="$2" 'BEGIN {printf "%.*f", d, v}'; }

# The median of the arguments; n/a when any is (a failed round fails the row).
median() {
    local v
    for v in "$@"; do [[ "$v" == n/a ]] && { echo n/a; return 0; }; done
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}

# pair ROUNDS CLIENTS MODE "NAME PORT DB PID" "NAME PORT DB PID": pgbench against A and
# B in turn for ROUNDS rounds, the order swapped every round. This machine's noise moves
# one 10 s point by up to ±0.1 (the host's other tenants), the size of the differences
# measured; alternating puts a slow minute on both, and the rows show medians. PID "-":
# no CPU figure. Leaves each round's figures in pa_tps pa_lat pa_cpu, pb_tps pb_lat
# pb_cpu, and B / A in p_ratio.
pair() {
    local rounds="$1" c="$2" mode="$3" round at al ac bt bl bc
    local -a a b
    read -r -a a <<<"$4"
    read -r -a b <<<"$5"
    pa_tps=() pa_lat=() pa_cpu=() pb_tps=() pb_lat=() pb_cpu=() p_ratio=()
    for ((round = 0; round < rounds; round++)); do
        local round_ticks
        round_ticks="$(host_ticks)"
        if ((round % 2 == 0)); then
            read -r at al ac < <(point "${a[0]}" "${a[1]}" "$c" "$mode" "${a[2]}" "${a[3]#-}")
            read -r bt bl bc < <(point "${b[0]}" "${b[1]}" "$c" "$mode" "${b[2]}" "${b[3]#-}")
        else
            read -r bt bl bc < <(point "${b[0]}" "${b[1]}" "$c" "$mode" "${b[2]}" "${b[3]#-}")
            read -r at al ac < <(point "${a[0]}" "${a[1]}" "$c" "$mode" "${a[2]}" "${a[3]#-}")
        fi
        pa_tps+=("$at") pa_lat+=("$al") pa_cpu+=("$ac") pb_tps+=("$bt") pb_lat+=("$bl") pb_cpu+=("$bc")
        p_ratio+=("$(ratio "$bt" "$at")")
        echo "bench: $c client(s), -M $mode, round $((round + 1)): ${b[0]} $bt / ${a[0]} $at (host steal $(steal_since "$round_ticks")%)" >&2
    done
}

rounds="${BENCH_ROUNDS:-3}"
# The regression check's floor (section 6), known before the 16-client point runs so
# that a ratio below it can be measured again at once.
check_floor=""
if [[ "${BENCH_NO_REGRESSION_CHECK:-0}" != 1 ]]; then
    # shellcheck source=testing/bench/baseline.env
    source "$here/bench/baseline.env"
    check_floor="$(awk -v r="$BASELINE_RATIO_16" -v n="$BASELINE_NOISE" 'BEGIN {printf "%.2f", r - n}')"
fi
below_floor() {
    [[ -n "$check_floor" && "$1" != n/a ]] && awk -v m="$1" -v f="$check_floor" 'BEGIN {exit !(m < f)}'
}
rows=() share_rows=()
declare -A simple_direct=() simple_router=()
check_ratio=n/a check_ran=0
router_pid=""
for mode in "${modes[@]}"; do
    for c in "${clients_list[@]}"; do
        echo "bench: $c client(s), -M $mode, ${secs}s per target" >&2
        read -r d_tps _ _ < <(point direct "$pg_port_bench" "$c" "$mode")
        b_tps=n/a b_cpu=n/a r_tps=n/a r_cpu=n/a q=n/a
        [[ -n "$bin" ]] && router_pid="$(cat "$work/router.pid")"
        if [[ "$mode" == prepared ]]; then
            # PgBouncer 1.18 keeps no prepared statements across transactions.
            [[ -n "$bin" ]] && read -r r_tps _ r_cpu < <(point router "$router_port" "$c" "$mode" "$db" "$router_pid")
        elif [[ -n "$bin" ]]; then
            pair "$rounds" "$c" "$mode" "pgbouncer $bouncer_port $db $(bouncer_pid)" "router $router_port $db $router_pid"
            if [[ "$mode" == simple && "$c" == 16 ]] && below_floor "$(median "${p_ratio[@]}")"; then
                # Before judging a regression, more rounds: a real one stays below.
                more="${BENCH_CONFIRM_ROUNDS:-4}"
                echo "bench: 16 clients: $(median "${p_ratio[@]}") is below the floor $check_floor; $more more rounds before judging" >&2
                keep_a_tps=("${pa_tps[@]}") keep_a_cpu=("${pa_cpu[@]}") keep_b_tps=("${pb_tps[@]}")
                keep_b_cpu=("${pb_cpu[@]}") keep_ratio=("${p_ratio[@]}")
                pair "$more" "$c" "$mode" "pgbouncer $bouncer_port $db $(bouncer_pid)" "router $router_port $db $router_pid"
                pa_tps+=("${keep_a_tps[@]}") pa_cpu+=("${keep_a_cpu[@]}") pb_tps+=("${keep_b_tps[@]}")
                pb_cpu+=("${keep_b_cpu[@]}") p_ratio+=("${keep_ratio[@]}")
                echo "bench: 16 clients: the rounds' ratios ${p_ratio[*]}" >&2
            fi
            b_tps="$(median "${pa_tps[@]}")" b_cpu="$(median "${pa_cpu[@]}")"
            r_tps="$(median "${pb_tps[@]}")" r_cpu="$(median "${pb_cpu[@]}")" q="$(median "${p_ratio[@]}")"
        else
            read -r b_tps _ b_cpu < <(point pgbouncer "$bouncer_port" "$c" "$mode" "$db" "$(bouncer_pid)")
        fi
        if [[ "$mode" == simple && "$c" == 16 && -n "$bin" ]]; then
            check_ratio="$q" check_ran=1
        fi
        if [[ "$mode" == simple ]]; then
            simple_direct[$c]="$d_tps" simple_router[$c]="$r_tps"
        elif [[ "$mode" == prepared && -n "${simple_direct[$c]:-}" ]]; then
            # Issue 16: the router's -M prepared gain over its simple mode, against
            # PostgreSQL's own (1.00 = the router keeps all of it).
            ds="$(ratio "$d_tps" "${simple_direct[$c]}")" rs="$(ratio "$r_tps" "${simple_router[$c]}")"
            share_rows+=("| $c | $ds | $rs | $(ratio "$rs" "$ds") |")
        fi
        rows+=("| $mode | $c | $(fmt "$d_tps" 0) | $(fmt "$b_tps" 0) | $b_cpu | $(fmt "$r_tps" 0) | $r_cpu | $q | $(ratio "$r_tps" "$d_tps") |")
    done
done
throughput_steal="$(steal_since "$run_host_ticks")"

# Sharded: the same pgbench -S through a 2-shard pool (keys routed by aid), against the
# same router's one-shard pool, in alternating rounds (`pair`): TPS and latency of each
# pool, and of the rounds' ratios.
sharded_rows=()
if [[ -n "$bin" ]]; then
    for c in ${BENCH_SHARDED_CLIENTS:-1 50}; do
        echo "bench: sharded, $c client(s)" >&2
        read -r d_tps _ _ < <(point direct "$pg_port_bench" "$c" simple)
        pair "${BENCH_SHARDED_ROUNDS:-3}" "$c" simple "router-one-shard $router_port $db -" "router-sharded $router_port sharded -"
        sharded_rows+=("| $c | $(fmt "$d_tps" 0) | $(fmt "$(median "${pa_tps[@]}")" 0) | $(fmt "$(median "${pa_lat[@]}")" 3) | $(fmt "$(median "${pb_tps[@]}")" 0) | $(fmt "$(median "${pb_lat[@]}")" 3) | $(median "${p_ratio[@]}") |")
    done
fi
# TLS: the same pgbench -S with sslmode=require, through PgBouncer and the router each
# with client TLS required (one self-signed certificate for both), fresh processes.
tls_rows=()
tls_mem_rows=()
if [[ -n "$bin" && "${BENCH_TLS:-1}" == 1 ]] && command -v openssl >/dev/null; then
    router_rss_plain="$(rss_kib "$router_pid") KiB"
    tlsdir="$work/tls"
    mkdir -p "$tlsdir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$tlsdir/server.key" -out "$tlsdir/server.crt" \
        >"$tlsdir/openssl.log" 2>&1 || { cat "$tlsdir/openssl.log" >&2; pg_die "openssl could not make a certificate"; }
    chmod 600 "$tlsdir/server.key"
    pg_is_root && chown -R postgres:postgres "$tlsdir"
    bouncer_tls_lines="client_tls_sslmode = require
client_tls_key_file = $tlsdir/server.key
client_tls_cert_file = $tlsdir/server.crt"
    router_tls_lines="tls_certificate = \"$tlsdir/server.crt\"
tls_private_key = \"$tlsdir/server.key\"
client_tls_sslmode = \"require\""
    bouncer_start
    router_up
    # Idle TLS clients first, on the fresh processes.
    for n in ${BENCH_TLS_IDLE_CLIENTS:-2000}; do
        echo "bench: memory per idle TLS client ($n clients)" >&2
        read -r b_before b_after b_per < <(idle_probe pgbouncer-tls "$bouncer_port" "$(bouncer_pid)" "$n" --tls)
        read -r r_before r_after r_per < <(idle_probe router-tls "$router_port" "$(cat "$work/router.pid")" "$n" --tls)
        tls_mem_rows+=("| $n | $b_before | $b_after | $b_per | $r_before | $r_after | $r_per |")
    done
    sslmode=require
    for c in ${BENCH_TLS_CLIENTS:-1 100}; do
        echo "bench: TLS, $c client(s)" >&2
        pair "${BENCH_TLS_ROUNDS:-3}" "$c" simple "pgbouncer-tls $bouncer_port $db $(bouncer_pid)" \
            "router-tls $router_port $db $(cat "$work/router.pid")"
        tls_rows+=("| $c | $(fmt "$(median "${pa_tps[@]}")" 0) | $(median "${pa_cpu[@]}") | $(fmt "$(median "${pb_tps[@]}")" 0) | $(median "${pb_cpu[@]}") | $(median "${p_ratio[@]}") |")
    done
    sslmode=""
    bouncer_tls_lines=""
    router_tls_lines=""
fi
router_rss="${router_rss_plain:-n/a}"
[[ -n "$router_pid" && -z "${router_rss_plain:-}" ]] && router_rss="$(rss_kib "$router_pid") KiB"

{
    echo "### pgbench -S (select-only), ${secs}s per point, scale $scale, pool size $pool_size, transaction mode (the proxies: medians of $rounds alternating rounds)"
    echo
    echo "$(nproc) cores; $("$PG_BIN/postgres" --version); $(pgbouncer --version | head -n 1); router: ${bin:-not built}${BENCH_ROUTER_GENERAL:+ ($BENCH_ROUTER_GENERAL)}"
    echo
    echo "| mode | clients | direct TPS | PgBouncer TPS | PgBouncer µs CPU/tx | router TPS | router µs CPU/tx | router / PgBouncer | router / direct |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    if ((${#share_rows[@]})); then
        echo "Prepared mode (PgBouncer 1.18 keeps no prepared statements in transaction mode, so against PostgreSQL's own gain; the router's prepared point is one run):"
        echo
        echo "| clients | direct prepared / simple | router prepared / simple | router share of direct's |"
        echo "|---:|---:|---:|---:|"
        printf '%s\n' "${share_rows[@]}"
    fi
    echo
    echo "Router RSS after the throughput runs: $router_rss. Host CPU time stolen by other"
    echo "tenants during them (/proc/stat steal): $throughput_steal%."
    echo
    echo "### Memory per idle client (authenticated idle connections, fresh processes)"
    echo
    echo "| idle clients | PgBouncer RSS before KiB | after KiB | PgBouncer KiB per client | router RSS before KiB | after KiB | router KiB per client |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${mem_rows[@]}"
    echo
    echo "### Sharded: pgbench -S with pgbench_accounts sharded by aid over 2 shards of one PostgreSQL, $shard_pool_size connections a shard against the one-shard pool's $pool_size (zero failed transactions required; medians of ${BENCH_SHARDED_ROUNDS:-3} alternating rounds)"
    echo
    echo "| clients | direct TPS | router, 1 shard TPS | latency ms | router, 2 shards TPS | latency ms | 2 shards / 1 shard |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${sharded_rows[@]}"
    if ((${#tls_rows[@]})); then
        echo
        echo "### TLS: pgbench -S -M simple with sslmode=require, client TLS required by both proxies (medians of ${BENCH_TLS_ROUNDS:-3} alternating rounds)"
        echo
        echo "| clients | PgBouncer TPS | PgBouncer µs CPU/tx | router TPS | router µs CPU/tx | router / PgBouncer |"
        echo "|---:|---:|---:|---:|---:|---:|"
        printf '%s\n' "${tls_rows[@]}"
        echo
        echo "Memory per idle TLS client (sslmode=require, authenticated, fresh processes):"
        echo
        echo "| idle clients | PgBouncer RSS before KiB | after KiB | PgBouncer KiB per client | router RSS before KiB | after KiB | router KiB per client |"
        echo "|---:|---:|---:|---:|---:|---:|---:|"
        printf '%s\n' "${tls_mem_rows[@]}"
    fi
} | tee "$work/results.md"

# ---------------------------------------------------------------- two-phase commit
# Transfers between two accounts in one transaction (testing/bank/bank.py --bench):
# both accounts on one shard (a plain commit) vs on two shards (two-phase commit), 3
# shards of the test fleet, 8 clients, same router build, same run.
if [[ -n "$bin" && "${BENCH_2PC:-1}" == 1 ]]; then
    ensure_psycopg "$PG_RUN_DIR/drivers-venv" "$work" bench
    shard_addrs="$(bash "$here/pg.sh" fleet-up | sed -n 's/^OROCHI_PG_SHARDS=//p' | cut -d, -f1-3)"
    read -r bport badmin bmetrics < <(free_ports 3)
    mkdir -p "$work/bank"
    {
        echo
        echo "### Transfers: single-shard vs cross-shard (two-phase commit), ${secs}s each, ${BENCH_2PC_ROUNDS:-3} alternating rounds, 8 clients, 3 shards"
        echo
        OROCHI_PG_BINDIR="$PG_BIN" "$PG_RUN_DIR/drivers-venv/bin/python" "$here/bank/bank.py" --bench \
            --router "$bin" --shards "$shard_addrs" --shard-names s0,s1,s2 --pgsh "$here/pg.sh" \
            --work "$work/bank" --ports "$bport,$badmin,$bmetrics" --duration "$secs" --clients 8 \
            --rounds "${BENCH_2PC_ROUNDS:-3}"
    } | tee -a "$work/results.md"
fi

# ---------------------------------------------------------------- regression check
# Nothing may get slower: the 16-client simple ratio against the recorded one. A point
# that ran but has no ratio (pgbench failed, or transactions failed) fails the check.
if [[ "${BENCH_NO_REGRESSION_CHECK:-0}" != 1 && "$check_ran" == 1 && "$check_ratio" == n/a ]]; then
    echo "bench: REGRESSION: no router / PgBouncer ratio at 16 clients (a run failed: see the table)" |
        tee -a "$work/results.md" >&2
    exit 1
fi
if [[ "${BENCH_NO_REGRESSION_CHECK:-0}" != 1 && "$check_ratio" != n/a ]]; then
    if below_floor "$check_ratio"; then
        echo "bench: REGRESSION: router / PgBouncer at 16 clients is $check_ratio, below $check_floor" \
            "(recorded $BASELINE_RATIO_16 - noise $BASELINE_NOISE, testing/bench/baseline.env)" | tee -a "$work/results.md" >&2
        exit 1
    fi
    echo "bench: regression check: router / PgBouncer at 16 clients $check_ratio >= $check_floor (recorded $BASELINE_RATIO_16 - noise $BASELINE_NOISE)" |
        tee -a "$work/results.md"
fi
