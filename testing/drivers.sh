#!/usr/bin/env bash
# drivers.sh [ROUTER_BIN] — the driver compatibility matrix (issue 7): real client
# drivers talk to PostgreSQL through the router, in transaction pooling mode.
#
# Drivers: psycopg 3, SQLAlchemy 2 (on psycopg), asyncpg, node-postgres, pgjdbc,
# sqlx, psql, pgbench. Each is one program under testing/drivers/ that prints one
# line per case, `PASS <case>` or `FAIL <case>: <reason>`, after a `PLAN <cases>`
# line; a planned case without a result (crash, timeout) is a failure.
#
# Targets (pool `orochi_drv` in transaction mode, user app/secret over SCRAM,
# pool_size 5; a fresh router on free ports for every driver run, so a server
# connection one driver leaves broken is charged to that driver, not the next):
#   single   one shard: the fleet's `single` instance, database orochi_drv.
#   sharded  two shards: the fleet's s0 and s1, database orochi_drv, table
#            `accounts` distributed by `aid` ([[sharding.tables]]); aid 1..1000
#            are seeded directly on the shard PostgreSQL's own hash partitioning
#            puts them on (helper table drv_hashref, PARTITION BY HASH (aid)).
#   tls      the single target with client TLS required (client_tls_sslmode =
#            require; a test CA and a certificate for 127.0.0.1 / localhost made
#            with openssl): plaintext is refused, so a case that passes ran over
#            TLS. Every driver connects to the router with verify-full or its
#            equivalent, the test CA as root (DRV_TLS_CA): libpq (psql, pgbench,
#            psycopg, SQLAlchemy) sslmode=verify-full + sslrootcert; asyncpg an
#            SSLContext with check_hostname; sqlx PgSslMode::VerifyFull; pgjdbc
#            sslmode=verify-full + sslrootcert; node-postgres ssl.ca (node checks
#            the name). One more case per driver but pgbench (libpq, as psql),
#            verify_full_refuses: trusting another CA (DRV_TLS_OTHER_CA) is
#            refused with a certificate error; psql, psycopg and node also check
#            that a host name the certificate does not carry is refused. Direct
#            connections to the shards (sharded target) stay plaintext: the
#            fleet's PostgreSQL has no TLS.
#
# Prints a matrix per target (case × driver: pass / FAIL / - = not a case of that
# driver), a driver × target summary, every failure with its reason, and last
# `N passed, M failed` over the *required* cases. Exit status non-zero when a
# required case failed. Required: both targets (DRIVERS_SHARDED_REQUIRED=0 turns
# the sharded target into a reported-only count line).
#
# Env:
#   DRIVERS_TARGETS="single sharded tls"   targets to run
#   DRIVERS_ONLY="psycopg asyncpg"     drivers to run (default: all)
#   DRIVERS_SHARDED_REQUIRED=1         0 = sharded failures are only reported
#   DRIVERS_SKIP_INSTALL=1             do not run drivers/install.sh
#   DRIVERS_TIMEOUT=240                seconds one driver run may take
#   OROCHI_ROUTER_BIN                  router binary (default: newest in target/)
# Logs: .run/drivers/ (router logs, each driver's full output).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"
ddir="$here/drivers"

DRIVERS_SHARDED_REQUIRED="${DRIVERS_SHARDED_REQUIRED:-1}"
read -r -a targets <<<"${DRIVERS_TARGETS:-single sharded tls}"
all_drivers=(psycopg sqlalchemy asyncpg node-pg pgjdbc sqlx psql pgbench)
read -r -a drivers <<<"${DRIVERS_ONLY:-${all_drivers[*]}}"
timeout_s="${DRIVERS_TIMEOUT:-240}"
work="$PG_RUN_DIR/drivers"
venv="$PG_RUN_DIR/drivers-venv"
rust_target="${DRIVERS_CARGO_TARGET_DIR:-$PG_ROOT_DIR/target/drv}"
db=orochi_drv
pool="$db"  # clients connect with dbname = pool name = the servers' database
pool_size=5

bin="$(router_bin "${1:-}")"
mkdir -p "$work"
rm -f "$work"/*.out "$work"/*.log

if [[ "${DRIVERS_SKIP_INSTALL:-0}" != 1 ]]; then
    bash "$ddir/install.sh"
fi

bash "$here/pg.sh" fleet-up >/dev/null
single_port="$(pg_port single)"
shard_names=(s0 s1)
shard_ports=("$(pg_port s0)" "$(pg_port s1)")

# --- databases -----------------------------------------------------------------
fresh_db() { # NAME: an empty orochi_drv owned by app
    pg_psql "$1" -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $db WITH (FORCE);
CREATE DATABASE $db OWNER app;
SQL
}
fresh_db single
for i in 0 1; do
    fresh_db "${shard_names[$i]}"
    pg_psql "${shard_names[$i]}" -q -v ON_ERROR_STOP=1 -U app -d "$db" \
        -v shard="$i" -f "$ddir/sql/shard-seed.sql" >/dev/null
done

# --- TLS (the tls target) ----------------------------------------------------------
tls_dir="$work/tls"
make_certs() { # a CA, a certificate it signs for 127.0.0.1 / localhost, another CA
    [[ -s "$tls_dir/server.pem" ]] && return 0
    mkdir -p "$tls_dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=orochi drivers test CA" \
        -keyout "$tls_dir/ca.key" -out "$tls_dir/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$tls_dir/server.key" -out "$tls_dir/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls_dir/san.ext"
    openssl x509 -req -in "$tls_dir/server.csr" -CA "$tls_dir/ca.pem" -CAkey "$tls_dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$tls_dir/san.ext" -out "$tls_dir/server.pem" >/dev/null 2>&1
    # A CA that signed nothing here: verify-full trusting it must fail.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=orochi drivers other CA" \
        -keyout "$tls_dir/other-ca.key" -out "$tls_dir/other-ca.pem" >/dev/null 2>&1
}
rm -rf "$tls_dir"
[[ " ${targets[*]} " == *" tls "* ]] && make_certs

# --- routers -------------------------------------------------------------------
write_config() { # FILE PORT ADMIN METRICS TARGET
    local file="$1" port="$2" admin="$3" metrics="$4" target="$5" tls=""
    if [[ "$target" == tls ]]; then
        tls="tls_certificate = \"$tls_dir/server.pem\"
tls_private_key = \"$tls_dir/server.key\"
client_tls_sslmode = \"require\""
    fi
    cat >"$file" <<EOF
# Written by testing/drivers.sh ($target target).
[general]
host = "127.0.0.1"
port = $port
admin_port = $admin
metrics_port = $metrics
admin_username = "admin"
admin_password = "admin"
connect_timeout = 10000
$tls

[pools.$pool]
pool_mode = "transaction"

[pools.$pool.users.0]
username = "app"
password = "secret"
pool_size = $pool_size

EOF
    if [[ "$target" != sharded ]]; then
        cat >>"$file" <<EOF
[pools.$pool.shards.0]
database = "$db"
servers = [["127.0.0.1", $single_port, "primary"]]
EOF
    else
        cat >>"$file" <<EOF
[pools.$pool.shards.0]
database = "$db"
servers = [["127.0.0.1", ${shard_ports[0]}, "primary"]]

[pools.$pool.shards.1]
database = "$db"
servers = [["127.0.0.1", ${shard_ports[1]}, "primary"]]

[sharding]
enabled = true
sharding_function = "postgres_hash"

[[sharding.tables]]
name = "accounts"
column = "aid"
data_type = "bigint"
EOF
    fi
}

# One router per (target, driver) run, so a server connection one driver leaves
# broken cannot fail the next driver's cases: every failure is charged to the
# driver whose traffic exposed it. (Within one driver's run, its cases share the
# router: a leak between its own connections still shows.)
router_port=""
router_pidfile=""
cleanup() { [[ -n "$router_pidfile" ]] && router_stop "$router_pidfile"; return 0; }
trap cleanup EXIT

start_router() { # TARGET DRIVER
    local t="$1" d="$2" port admin metrics
    read -r port admin metrics < <(free_ports 3)
    write_config "$work/orochi-$t.toml" "$port" "$admin" "$metrics" "$t"
    router_pidfile="$work/router-$t.pid"
    router_start "$bin" "$work/orochi-$t.toml" "$work/router-$t-$d.log" "$router_pidfile" "$port" "$admin" "$metrics"
    router_wait "$router_pidfile" "$port" "$work/router-$t-$d.log"
    router_port="$port"
}
echo "drivers: router $bin; logs and outputs in $work"

# --- driver runs ---------------------------------------------------------------
driver_cmd() { # DRIVER: sets cmd=(its program and arguments)
    case "$1" in
        psycopg) cmd=("$venv/bin/python" "$ddir/python/check_psycopg.py") ;;
        sqlalchemy) cmd=("$venv/bin/python" "$ddir/python/check_sqlalchemy.py") ;;
        asyncpg) cmd=("$venv/bin/python" "$ddir/python/check_asyncpg.py") ;;
        node-pg) cmd=(node "$ddir/node/check.js") ;;
        pgjdbc) cmd=(java -cp "$PG_RUN_DIR/drivers-java:/usr/share/java/postgresql.jar" DriverCheck) ;;
        sqlx) cmd=("$rust_target/debug/orochi-driver-check-sqlx") ;;
        psql) cmd=(bash "$ddir/psql/check.sh") ;;
        pgbench) cmd=(bash "$ddir/pgbench/check.sh") ;;
        *) pg_die "unknown driver '$1' (known: ${all_drivers[*]})" ;;
    esac
}

declare -A result   # [target|driver|case] = PASS | FAIL
declare -A reason
declare -A seen_case
case_order=()
passed=0 failed=0                  # required cases (the final line)
info_passed=0 info_failed=0        # reported-only cases (sharded, while not required)
declare -A drv_pass drv_total      # [target|driver]

record() { # TARGET DRIVER CASE STATUS REASON
    local key="$1|$2|$3"
    [[ -n "${result[$key]:-}" ]] && return 0
    result[$key]="$4"
    reason[$key]="$5"
    if [[ -z "${seen_case[$1|$3]:-}" ]]; then
        seen_case[$1|$3]=1
        case_order+=("$1|$3")
    fi
    drv_total[$1|$2]=$((${drv_total[$1|$2]:-0} + 1))
    [[ "$4" == PASS ]] && drv_pass[$1|$2]=$((${drv_pass[$1|$2]:-0} + 1))
    if [[ "$1" == single || "$DRIVERS_SHARDED_REQUIRED" == 1 ]]; then
        if [[ "$4" == PASS ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    else
        if [[ "$4" == PASS ]]; then info_passed=$((info_passed + 1)); else info_failed=$((info_failed + 1)); fi
    fi
}

key_base=1000000
for t in "${targets[@]}"; do
    for d in "${drivers[@]}"; do
        driver_cmd "$d"
        out="$work/$t-$d.out"
        key_base=$((key_base + 10000))
        start_router "$t" "$d"
        echo "drivers: $t / $d (router on 127.0.0.1:$router_port)"
        rc=0
        PGHOST=127.0.0.1 PGPORT="$router_port" PGUSER=app PGPASSWORD=secret PGDATABASE="$db" \
            PGCONNECT_TIMEOUT=15 PGAPPNAME="drv-$d" \
            DRV_TARGET="${t/tls/single}" DRV_DRIVER="$d" DRV_TLS="$([[ $t == tls ]] && echo 1 || echo 0)" \
            DRV_TLS_CA="$tls_dir/ca.pem" DRV_TLS_OTHER_CA="$tls_dir/other-ca.pem" DRV_POOL_SIZE="$pool_size" DRV_KEY_BASE="$key_base" \
            DRV_SHARD_PORTS="${shard_ports[0]},${shard_ports[1]}" DRV_PG_BIN="$PG_BIN" \
            timeout -k 10 "$timeout_s" "${cmd[@]}" >"$out" 2>&1 </dev/null || rc=$?
        plan="$(sed -n 's/^PLAN //p' "$out" | head -n 1)"
        while IFS= read -r line; do
            case "$line" in
                "PASS "*) c="${line#PASS }"; record "$t" "$d" "${c%% *}" PASS "" ;;
                "FAIL "*) c="${line#FAIL }"; record "$t" "$d" "${c%%:*}" FAIL "${c#*: }" ;;
            esac
        done < <(grep -E '^(PASS|FAIL) ' "$out" || true)
        if [[ -z "$plan" ]]; then
            record "$t" "$d" run FAIL "no PLAN line; exit $rc (see $out)"
        fi
        why="exit $rc"
        ((rc == 124 || rc == 137)) && why="timed out after ${timeout_s}s"
        for c in $plan; do
            record "$t" "$d" "$c" FAIL "no result ($why; see $out)"
        done
        # Every driver exits 0 once it has reported its cases: anything else (a crash
        # or a hang after the last result) is a failure of its own.
        if ((rc != 0)); then
            record "$t" "$d" exit FAIL "$why after its results (see $out)"
        fi
        grep -E '^(PASS|FAIL) ' "$out" | sed "s/^/  /" || true
        if ! router_alive "$(cat "$router_pidfile")"; then
            echo "drivers: the router died during $t / $d (log $work/router-$t-$d.log)" >&2
            tail -n 20 "$work/router-$t-$d.log" >&2 || true
            record "$t" "$d" router_alive FAIL "the router process died (log $work/router-$t-$d.log)"
        fi
        router_stop "$router_pidfile"
    done
done

# --- matrix --------------------------------------------------------------------
echo
for t in "${targets[@]}"; do
    req="required"
    [[ "$t" != single && "$DRIVERS_SHARDED_REQUIRED" != 1 ]] && req="reported only (DRIVERS_SHARDED_REQUIRED=0)"
    echo "== target: $t — $req"
    printf '%-22s' case
    for d in "${drivers[@]}"; do printf ' %-10s' "$d"; done
    echo
    for tc in "${case_order[@]}"; do
        [[ "${tc%%|*}" == "$t" ]] || continue
        c="${tc#*|}"
        printf '%-22s' "$c"
        for d in "${drivers[@]}"; do
            v="${result[$t|$d|$c]:--}"
            [[ "$v" == PASS ]] && v=pass
            printf ' %-10s' "$v"
        done
        echo
    done
    echo
done
echo "== driver x target (cases passed / run)"
printf '%-12s' driver
for t in "${targets[@]}"; do printf ' %-10s' "$t"; done
echo
for d in "${drivers[@]}"; do
    printf '%-12s' "$d"
    for t in "${targets[@]}"; do printf ' %-10s' "${drv_pass[$t|$d]:-0}/${drv_total[$t|$d]:-0}"; done
    echo
done
echo
if ((failed + info_failed)); then
    echo "failures:"
    for tc in "${case_order[@]}"; do
        t="${tc%%|*}" c="${tc#*|}"
        for d in "${drivers[@]}"; do
            if [[ "${result[$t|$d|$c]:-}" == FAIL ]]; then
                echo "  $t / $d / $c: ${reason[$t|$d|$c]}"
            fi
        done
    done
    echo
fi
if ((info_passed + info_failed)); then
    # Worded so that it is not read as the run's result line.
    echo "sharded target, reported only (DRIVERS_SHARDED_REQUIRED=0): $info_passed of $((info_passed + info_failed)) cases pass"
fi
echo "$passed passed, $failed failed"
((failed == 0))
