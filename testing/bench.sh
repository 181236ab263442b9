#!/usr/bin/env bash
# bench.sh [ROUTER_BIN] — one benchmark run: Orochi Router vs PgBouncer vs direct PostgreSQL.
#
# 1. Throughput: `pgbench -S` (select-only) at 1, 50 and 500 clients, ~10 s a point,
#    against direct PostgreSQL (its own instance `bench`, max_connections 600),
#    PgBouncer (Debian's, started here as postgres: transaction mode,
#    default_pool_size 20, max_client_conn 6000, SCRAM with a userlist) and the
#    router (transaction mode, pool_size 20). TPS, mean latency, ratios.
# 2. Memory per idle client: a fresh router and a fresh PgBouncer each get N
#    (5000) idle, authenticated client connections from a small asyncio script;
#    reported as (RSS after - RSS before) / N in KiB.
# Everything is printed as markdown (and kept in .run/bench/results.md).
# Without a router binary the router columns read n/a.
#
# Env: BENCH_SECONDS (10), BENCH_CLIENTS ("1 50 500"), BENCH_IDLE_CLIENTS (5000),
#      BENCH_SCALE (10), BENCH_MODE (simple|extended|prepared), OROCHI_BENCH_PG_PORT (15460).
# Numbers from a shared 2-core machine are noisy: pgbench competes with the
# proxy for CPU. Compare ratios from the same run, not absolute numbers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"

secs="${BENCH_SECONDS:-10}"
read -r -a clients_list <<<"${BENCH_CLIENTS:-1 50 500}"
idle_n="${BENCH_IDLE_CLIENTS:-5000}"
scale="${BENCH_SCALE:-10}"
mode="${BENCH_MODE:-simple}"
pg_port_bench="${OROCHI_BENCH_PG_PORT:-15460}"
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
((hard >= idle_n + 500)) || echo "bench: warning: ulimit -n is $hard; $idle_n idle clients may not fit" >&2

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
# (the other pgbench tables replicated).
for k in 0 1; do
    have="$(pg_psql bench -d "${db}_s$k" -Atc 'SELECT count(*) FROM pgbench_branches' 2>/dev/null || true)"
    if [[ "$have" != "$scale" ]]; then
        echo "bench: shard $k of pgbench_accounts (once; kept between runs)"
        pg_psql bench -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS ${db}_s$k WITH (FORCE);
CREATE DATABASE ${db}_s$k OWNER app TEMPLATE $db;
SQL
        pg_psql bench -d "${db}_s$k" -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE TEMP TABLE keyspace (aid int) PARTITION BY HASH (aid);
DELETE FROM pgbench_accounts WHERE NOT satisfies_hash_partition('keyspace'::regclass, 2, $k, aid);
VACUUM ANALYZE pgbench_accounts;
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
max_client_conn = 6000
logfile = $bouncer_dir/pgbouncer.log
pidfile = $bouncer_dir/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
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
router_up() {
    router_stop "$work/router.pid"
    read -r router_port router_admin router_metrics < <(free_ports 3)
    router_config "$work/orochi.toml" "$router_port" "$router_admin" "$router_metrics" "$db" "$db" \
        "$pg_port_bench" "$pool_size"
    cat >>"$work/orochi.toml" <<EOF

[pools.sharded]
pool_mode = "transaction"

[pools.sharded.users.0]
username = "app"
password = "secret"
pool_size = $pool_size

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
cat >"$work/idle_clients.py" <<'PY'
"""Open N idle PostgreSQL client connections (startup + cleartext/md5/SCRAM auth
until ReadyForQuery), write a ready file, and hold them until killed."""
import argparse, asyncio, base64, hashlib, hmac, os, resource, struct, sys

def frame(tag, body):
    return tag + struct.pack("!I", len(body) + 4) + body

async def read_msg(r):
    head = await r.readexactly(5)
    return head[:1], await r.readexactly(struct.unpack("!I", head[1:])[0] - 4)

salted_cache = {}

def scram_final(password, state, server_first):
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    if not attrs["r"].startswith(state["nonce"]):
        raise RuntimeError("SCRAM: server nonce does not extend ours")
    key = (attrs["s"], attrs["i"])
    if key not in salted_cache:
        salted_cache[key] = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted_cache[key], b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = "c=biws,r=" + attrs["r"]
    auth_msg = ",".join([state["first_bare"], server_first, without_proof]).encode()
    sig = hmac.new(stored, auth_msg, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

async def connect(a):
    r, w = await asyncio.open_connection(a.host, a.port)
    params = b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                      for k, v in (("user", a.user), ("database", a.db))) + b"\0"
    body = struct.pack("!I", 196608) + params
    w.write(struct.pack("!I", len(body) + 4) + body)
    state = {}
    while True:
        await w.drain()
        tag, body = await read_msg(r)
        if tag == b"E":
            fields = dict((f[:1], f[1:]) for f in body.split(b"\0") if f)
            raise RuntimeError(fields.get(b"M", b"?").decode())
        if tag == b"Z":
            return w
        if tag != b"R":
            continue
        code = struct.unpack("!I", body[:4])[0]
        if code == 3:
            w.write(frame(b"p", a.password.encode() + b"\0"))
        elif code == 5:
            inner = hashlib.md5((a.password + a.user).encode()).hexdigest()
            outer = "md5" + hashlib.md5(inner.encode() + body[4:8]).hexdigest()
            w.write(frame(b"p", outer.encode() + b"\0"))
        elif code == 10:
            state["nonce"] = base64.b64encode(os.urandom(18)).decode()
            state["first_bare"] = "n=,r=" + state["nonce"]
            first = ("n,," + state["first_bare"]).encode()
            w.write(frame(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
        elif code == 11:
            w.write(frame(b"p", scram_final(a.password, state, body[4:].decode())))
        elif code not in (0, 12):
            raise RuntimeError(f"unsupported auth request {code}")

async def main():
    p = argparse.ArgumentParser()
    for name in ("host", "user", "password", "db", "ready"):
        p.add_argument("--" + name, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=64)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gate = asyncio.Semaphore(a.concurrency)

    async def one():
        async with gate:
            return await asyncio.wait_for(connect(a), 60)

    results = await asyncio.gather(*(one() for _ in range(a.count)), return_exceptions=True)
    errors = [e for e in results if isinstance(e, BaseException)]
    if errors:
        print(f"idle_clients: {len(errors)} of {a.count} connections failed; first: {errors[0]!r}",
              file=sys.stderr)
        sys.exit(1)
    with open(a.ready, "w") as f:
        f.write(str(a.count))
    await asyncio.Event().wait()

asyncio.run(main())
PY

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# idle_probe NAME PORT PID -> prints "before after per_client" (KiB)
idle_probe() {
    local name="$1" port="$2" pid="$3" before after i ready="$work/idle-$1.ready"
    rm -f "$ready"
    # Warm up: a few connections first so lazy start-up costs are not counted.
    python3 "$work/idle_clients.py" --host 127.0.0.1 --port "$port" --user app --password secret \
        --db "$db" --count 10 --ready "$ready" >/dev/null 2>&1 &
    probe_pid=$!
    for ((i = 0; i < 120; i++)); do
        [[ -s "$ready" ]] && break
        sleep 0.25
    done
    kill "$probe_pid" 2>/dev/null; wait "$probe_pid" 2>/dev/null || true
    rm -f "$ready"
    sleep 2
    before="$(rss_kib "$pid")"
    python3 "$work/idle_clients.py" --host 127.0.0.1 --port "$port" --user app --password secret \
        --db "$db" --count "$idle_n" --ready "$ready" 2>"$work/idle-$name.err" &
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
echo "bench: memory per idle client ($idle_n clients)"
bouncer_start
read -r b_before b_after b_per < <(idle_probe pgbouncer "$bouncer_port" "$(bouncer_pid)")
r_before=n/a r_after=n/a r_per=n/a
if [[ -n "$bin" ]]; then
    router_up
    read -r r_before r_after r_per < <(idle_probe router "$router_port" "$(cat "$work/router.pid")")
fi

# ---------------------------------------------------------------- throughput (fresh processes)
bouncer_start
[[ -n "$bin" ]] && router_up

# point NAME PORT CLIENTS [DB] -> "tps latency_ms"
point() {
    local name="$1" port="$2" c="$3" target_db="${4:-$db}" out="$work/pgbench-$1-$3.log" jobs=2 tps="" lat=""
    ((c < 2)) && jobs=1
    if PGPASSWORD=secret timeout $((secs + 120)) "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U app -n -S \
        -M "$mode" -c "$c" -j "$jobs" -T "$secs" "$target_db" >"$out" 2>&1; then
        tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$out")"
        lat="$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out")"
    fi
    if [[ -n "${tps:-}" && -n "${lat:-}" ]] && grep -q '^number of failed transactions: 0 ' "$out" &&
        ! grep -q '^number of transactions actually processed: 0\(/.*\)\{0,1\}$' "$out"; then
        echo "$tps $lat"
    else
        echo "bench: pgbench against $name with $c clients failed (log $out)" >&2
        tail -n 5 "$out" | sed 's/^/    /' >&2
        echo "n/a n/a"
    fi
}

# shellcheck disable=SC2015 # echo cannot fail
ratio() { [[ "$1" == n/a || "$2" == n/a ]] && echo n/a || awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
# shellcheck disable=SC2015 # echo cannot fail
fmt() { [[ "$1" == n/a ]] && echo n/a || awk -v v="$1" -v d="$2" 'BEGIN {printf "%.*f", d, v}'; }

rows=()
for c in "${clients_list[@]}"; do
    echo "bench: $c client(s), ${secs}s per target" >&2
    read -r d_tps d_lat < <(point direct "$pg_port_bench" "$c")
    read -r b_tps b_lat < <(point pgbouncer "$bouncer_port" "$c")
    r_tps=n/a r_lat=n/a
    [[ -n "$bin" ]] && read -r r_tps r_lat < <(point router "$router_port" "$c")
    rows+=("| $c | $(fmt "$d_tps" 0) | $(fmt "$d_lat" 3) | $(fmt "$b_tps" 0) | $(fmt "$b_lat" 3) | $(fmt "$r_tps" 0) | $(fmt "$r_lat" 3) | $(ratio "$r_tps" "$b_tps") | $(ratio "$r_tps" "$d_tps") |")
done

# Sharded: the same pgbench -S through a 2-shard pool (keys routed by aid).
sharded_rows=()
if [[ -n "$bin" ]]; then
    for c in ${BENCH_SHARDED_CLIENTS:-1 50}; do
        echo "bench: sharded, $c client(s)" >&2
        read -r d_tps d_lat < <(point direct "$pg_port_bench" "$c")
        read -r o_tps o_lat < <(point router-one-shard "$router_port" "$c")
        read -r s_tps s_lat < <(point router-sharded "$router_port" "$c" sharded)
        sharded_rows+=("| $c | $(fmt "$d_tps" 0) | $(fmt "$o_tps" 0) | $(fmt "$o_lat" 3) | $(fmt "$s_tps" 0) | $(fmt "$s_lat" 3) | $(ratio "$s_tps" "$o_tps") |")
    done
fi

{
    echo "### pgbench -S (select-only), -M $mode, ${secs}s per point, scale $scale, pool size $pool_size, transaction mode"
    echo
    echo "$(nproc) cores; $("$PG_BIN/postgres" --version); $(pgbouncer --version | head -n 1); router: ${bin:-not built}"
    echo
    echo "| clients | direct TPS | direct latency ms | PgBouncer TPS | PgBouncer latency ms | router TPS | router latency ms | router / PgBouncer | router / direct |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "### Memory per idle client ($idle_n authenticated idle connections)"
    echo
    echo "| proxy | RSS before KiB | RSS after KiB | KiB per idle client |"
    echo "|---|---:|---:|---:|"
    echo "| PgBouncer | $b_before | $b_after | $b_per |"
    echo "| Orochi Router | $r_before | $r_after | $r_per |"
    echo
    echo "### Sharded: pgbench -S with pgbench_accounts sharded by aid over 2 shards (zero failed transactions required)"
    echo
    echo "| clients | direct TPS | router, 1 shard TPS | latency ms | router, 2 shards TPS | latency ms | 2 shards / 1 shard |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${sharded_rows[@]}"
} | tee "$work/results.md"

# ---------------------------------------------------------------- two-phase commit
# Transfers between two accounts in one transaction (testing/bank/bank.py --bench):
# both accounts on one shard (a plain commit) vs on two shards (two-phase commit), 4
# shards of the test fleet, same router build, same run.
if [[ -n "$bin" ]]; then
    ensure_psycopg "$PG_RUN_DIR/drivers-venv" "$work" bench
    shard_addrs="$(bash "$here/pg.sh" fleet-up | sed -n 's/^OROCHI_PG_SHARDS=//p')"
    read -r bport badmin bmetrics < <(free_ports 3)
    mkdir -p "$work/bank"
    {
        echo
        echo "### Transfers: single-shard vs cross-shard (two-phase commit), ${secs}s each, 16 clients, 4 shards"
        echo
        OROCHI_PG_BINDIR="$PG_BIN" "$PG_RUN_DIR/drivers-venv/bin/python" "$here/bank/bank.py" --bench \
            --router "$bin" --shards "$shard_addrs" --shard-names s0,s1,s2,s3 --pgsh "$here/pg.sh" \
            --work "$work/bank" --ports "$bport,$badmin,$bmetrics" --duration "$secs" --clients 16
    } | tee -a "$work/results.md"
fi
