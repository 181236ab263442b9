#!/usr/bin/env bash
# drivers.sh [ROUTER_BIN] — the driver compatibility matrix (issue 7): real client
# drivers talk to PostgreSQL through the router, in transaction pooling mode.
#
# Drivers: psycopg 3, SQLAlchemy 2 (on psycopg), asyncpg, node-postgres, pgjdbc,
# sqlx, psql, pgbench. Each is one program under testing/drivers/ that prints one
# line per case, `PASS <case>` or `FAIL <case>: <reason>`, after a `PLAN <cases>`
# line; a planned case without a result (crash, timeout) is a failure.
#
# Targets (a router each, on free ports, pool `drv`, user app/secret over SCRAM,
# pool_size 5):
#   single   one shard: the fleet's `single` instance, database orochi_drv.
#   sharded  two shards: the fleet's s0 and s1, database orochi_drv, table
#            `accounts` distributed by `aid` ([[sharding.tables]]); aid 1..1000
#            are seeded directly on the shard PostgreSQL's own hash partitioning
#            puts them on (helper table drv_hashref, PARTITION BY HASH (aid)).
#
# Prints a matrix (case × driver, per target), then `N passed, M failed`.
# Exit status: non-zero when a case of the single target failed, or when a
# sharded case failed and DRIVERS_SHARDED_REQUIRED=1. Until the router routes
# shards, DRIVERS_SHARDED_REQUIRED defaults to 0: sharded failures are printed
# and counted, but do not fail the run.
#
# Env:
#   DRIVERS_TARGETS="single sharded"   targets to run
#   DRIVERS_ONLY="psycopg asyncpg"     drivers to run (default: all)
#   DRIVERS_SHARDED_REQUIRED=0         1 = sharded failures fail the run
#   DRIVERS_SKIP_INSTALL=1             do not run drivers/install.sh
#   DRIVERS_TIMEOUT=240                seconds one driver run may take
#   OROCHI_ROUTER_BIN                  router binary (default: newest in target/)
# Logs: .run/drivers/ (router logs, each driver's full output).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"
ddir="$here/drivers"

DRIVERS_SHARDED_REQUIRED="${DRIVERS_SHARDED_REQUIRED:-0}"
targets=(${DRIVERS_TARGETS:-single sharded})
all_drivers=(psycopg sqlalchemy asyncpg node-pg pgjdbc sqlx psql pgbench)
drivers=(${DRIVERS_ONLY:-${all_drivers[*]}})
timeout_s="${DRIVERS_TIMEOUT:-240}"
work="$PG_RUN_DIR/drivers"
venv="$PG_RUN_DIR/drivers-venv"
rust_target="${DRIVERS_CARGO_TARGET_DIR:-$PG_ROOT_DIR/target/drv}"
db=orochi_drv
pool="$db"  # clients connect with dbname = pool name = the servers' database
pool_size=5

bin="$(router_bin "${1:-}")"
mkdir -p "$work"
rm -f "$work"/*.out

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

# --- routers -------------------------------------------------------------------
write_config() { # FILE PORT ADMIN METRICS TARGET
    local file="$1" port="$2" admin="$3" metrics="$4" target="$5"
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

[pools.$pool]
pool_mode = "transaction"

[pools.$pool.users.0]
username = "app"
password = "secret"
pool_size = $pool_size

EOF
    if [[ "$target" == single ]]; then
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

declare -A router_port
cleanup() {
    local t
    for t in "${targets[@]}"; do router_stop "$work/router-$t.pid"; done
}
trap cleanup EXIT

for t in "${targets[@]}"; do
    read -r port admin metrics < <(free_ports 3)
    write_config "$work/orochi-$t.toml" "$port" "$admin" "$metrics" "$t"
    router_start "$bin" "$work/orochi-$t.toml" "$work/router-$t.log" "$work/router-$t.pid" "$port" "$admin" "$metrics"
    router_wait "$work/router-$t.pid" "$port" "$work/router-$t.log"
    router_port[$t]="$port"
    echo "drivers: $t target: router $bin on 127.0.0.1:$port (log $work/router-$t.log)"
done

# --- driver runs ---------------------------------------------------------------
driver_cmd() { # DRIVER -> the command line of its program
    case "$1" in
        psycopg) echo "$venv/bin/python $ddir/python/check_psycopg.py" ;;
        sqlalchemy) echo "$venv/bin/python $ddir/python/check_sqlalchemy.py" ;;
        asyncpg) echo "$venv/bin/python $ddir/python/check_asyncpg.py" ;;
        node-pg) echo "node $ddir/node/check.js" ;;
        pgjdbc) echo "java -cp $PG_RUN_DIR/drivers-java:/usr/share/java/postgresql.jar DriverCheck" ;;
        sqlx) echo "$rust_target/debug/orochi-driver-check-sqlx" ;;
        psql) echo "bash $ddir/psql/check.sh" ;;
        pgbench) echo "bash $ddir/pgbench/check.sh" ;;
        *) pg_die "unknown driver '$1' (known: ${all_drivers[*]})" ;;
    esac
}

declare -A result   # [target|driver|case] = PASS | FAIL
declare -A reason
declare -A seen_case
case_order=()
passed=0 failed=0 failed_required=0

record() { # TARGET DRIVER CASE STATUS REASON
    local key="$1|$2|$3"
    [[ -n "${result[$key]:-}" ]] && return 0
    result[$key]="$4"
    reason[$key]="$5"
    if [[ -z "${seen_case[$1|$3]:-}" ]]; then
        seen_case[$1|$3]=1
        case_order+=("$1|$3")
    fi
    if [[ "$4" == PASS ]]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        if [[ "$1" == single || "$DRIVERS_SHARDED_REQUIRED" == 1 ]]; then
            failed_required=$((failed_required + 1))
        fi
    fi
}

key_base=1000000
for t in "${targets[@]}"; do
    for d in "${drivers[@]}"; do
        cmd="$(driver_cmd "$d")"
        out="$work/$t-$d.out"
        key_base=$((key_base + 10000))
        echo "drivers: $t / $d"
        rc=0
        PGHOST=127.0.0.1 PGPORT="${router_port[$t]}" PGUSER=app PGPASSWORD=secret PGDATABASE="$db" \
            PGCONNECT_TIMEOUT=15 PGAPPNAME="drv-$d" \
            DRV_TARGET="$t" DRV_DRIVER="$d" DRV_POOL_SIZE="$pool_size" DRV_KEY_BASE="$key_base" \
            DRV_SHARD_PORTS="${shard_ports[0]},${shard_ports[1]}" DRV_PG_BIN="$PG_BIN" \
            timeout -k 10 "$timeout_s" $cmd >"$out" 2>&1 </dev/null || rc=$?
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
        grep -E '^(PASS|FAIL) ' "$out" | sed "s/^/  /" || true
        if ! router_alive "$(cat "$work/router-$t.pid")"; then
            echo "drivers: the $t router died during $d; restarting it (log $work/router-$t.log)" >&2
            tail -n 20 "$work/router-$t.log" >&2 || true
            record "$t" "$d" router_alive FAIL "the router process died"
            read -r port admin metrics < <(free_ports 3)
            write_config "$work/orochi-$t.toml" "$port" "$admin" "$metrics" "$t"
            mv "$work/router-$t.log" "$work/router-$t.crashed-during-$d.log"
            router_start "$bin" "$work/orochi-$t.toml" "$work/router-$t.log" "$work/router-$t.pid" "$port" "$admin" "$metrics"
            router_wait "$work/router-$t.pid" "$port" "$work/router-$t.log"
            router_port[$t]="$port"
        fi
    done
done

# --- matrix --------------------------------------------------------------------
echo
for t in "${targets[@]}"; do
    req="required"
    [[ "$t" == sharded && "$DRIVERS_SHARDED_REQUIRED" != 1 ]] && req="reported only (DRIVERS_SHARDED_REQUIRED=0)"
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
if ((failed)); then
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
echo "$passed passed, $failed failed"
((failed_required == 0))
