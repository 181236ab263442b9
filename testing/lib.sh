#!/usr/bin/env bash
# lib.sh — helpers shared by demo.sh, pgbench-test.sh and bench.sh: find the
# router binary, pick free ports, start/stop a router in the background and
# wait until it accepts connections. Sourced; runs nothing by itself.

# shellcheck source=testing/pg.sh
source "$(dirname "${BASH_SOURCE[0]}")/pg.sh"

# The router binary: $1 if given, else $OROCHI_ROUTER_BIN, else the newest of
# target/{release,debug}/orochi-router (honouring CARGO_TARGET_DIR).
router_bin() {
    local given="${1:-${OROCHI_ROUTER_BIN:-}}" target="${CARGO_TARGET_DIR:-$PG_ROOT_DIR/target}" best=""
    if [[ -n "$given" ]]; then
        [[ -x "$given" ]] || pg_die "router binary '$given' not found or not executable"
        echo "$given"
        return
    fi
    for b in "$target/release/orochi-router" "$target/debug/orochi-router"; do
        [[ -x "$b" ]] || continue
        [[ -z "$best" || "$b" -nt "$best" ]] && best="$b"
    done
    [[ -n "$best" ]] || pg_die "no router binary in $target/{release,debug} (run: cargo build -p orochi-router)"
    echo "$best"
}

# Print N TCP ports that are free on 127.0.0.1 right now (distinct).
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# True if PID is alive and runs a router as router_start starts it, `BIN run -c CONFIG`
# (guards against pid reuse; by its arguments, so a binary of any name counts).
router_alive() {
    local pid="$1"
    # 2>/dev/null before the `<`: a process that ends between the test and the read
    # makes the redirection itself fail, and that message is the shell's.
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- ' run -c '
}

# router_start BIN CONFIG LOG PIDFILE PORT ADMIN_PORT METRICS_PORT
# Starts `BIN run -c CONFIG` in the background (its own session, so it outlives
# the calling script when wanted), ports also passed as PGDOG_* env.
router_start() {
    local bin="$1" config="$2" log="$3" pidfile="$4" port="$5" admin="$6" metrics="$7"
    for p in "$port" "$admin" "$metrics"; do
        pg_port_busy "$p" && pg_die "port $p is already in use; cannot start the router there"
    done
    : >"$log"
    rm -f "$pidfile"
    # shellcheck disable=SC2016 # $$, $0 and $@ expand in the inner shell
    PGDOG_HOST=127.0.0.1 PGDOG_PORT="$port" PGDOG_ADMIN_PORT="$admin" PGDOG_METRICS_PORT="$metrics" \
        PGDOG_LOG_LEVEL="${PGDOG_LOG_LEVEL:-info}" \
        setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$bin" run -c "$config" </dev/null >>"$log" 2>&1 &
    # The child writes its own pid (setsid may fork); wait until it has.
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -s "$pidfile" ]] && return 0
        sleep 0.05
    done
    pg_die "the router process did not start"
}

# router_wait PIDFILE PORT LOG [SECONDS]: until the router answers on PORT.
router_wait() {
    local pid port="$2" log="$3" secs="${4:-60}" i
    pid="$(cat "$1")"
    for ((i = 0; i < secs * 4; i++)); do
        if ! router_alive "$pid"; then
            tail -n 30 "$log" >&2 || true
            pg_die "the router exited during startup (log: $log)"
        fi
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1 >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.25
    done
    tail -n 30 "$log" >&2 || true
    pg_die "the router did not accept connections on 127.0.0.1:$port within ${secs}s (log: $log)"
}

# router_stop PIDFILE: SIGTERM, up to 15 s to finish, then SIGKILL.
router_stop() {
    local pidfile="$1" pid i
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    if router_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 60; i++)); do
            router_alive "$pid" || break
            sleep 0.25
        done
        if router_alive "$pid"; then
            echo "router $pid ignored SIGTERM for 15s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

# A minimal single-pool router config (PgCat-compatible TOML, SPEC §2).
# router_config FILE PORT ADMIN METRICS POOL DATABASE SERVER_PORT POOL_SIZE [MODE]
router_config() {
    local file="$1" port="$2" admin="$3" metrics="$4" pool="$5" db="$6" sport="$7" size="$8" mode="${9:-transaction}"
    cat >"$file" <<EOF
# Written by testing/lib.sh (router_config).
[general]
host = "127.0.0.1"
port = $port
admin_port = $admin
metrics_port = $metrics
admin_username = "admin"
admin_password = "admin"

[pools.$pool]
pool_mode = "$mode"

[pools.$pool.users.0]
username = "app"
password = "secret"
pool_size = $size

[pools.$pool.shards.0]
database = "$db"
servers = [["127.0.0.1", $sport, "primary"]]
EOF
}

# ensure_psycopg VENV WORK WHO: psycopg 3 (pinned in drivers/python/requirements.txt)
# in VENV, created if missing (python3-venv installed with apt when absent).
ensure_psycopg() {
    local venv="$1" work="$2" who="$3" req
    req="$(dirname "${BASH_SOURCE[0]}")/drivers/python/requirements.txt"
    if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import psycopg' 2>/dev/null; then
        return 0
    fi
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        local sudo=()
        [[ "$(id -u)" == 0 ]] || sudo=(sudo)
        echo "$who: apt-get install python3-venv" >&2
        if ! { DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
                python3-venv; } >"$work/apt.log" 2>&1; then
            tail -n 30 "$work/apt.log" >&2
            exit 1
        fi
    fi
    [[ -x "$venv/bin/python" ]] || { echo "$who: creating $venv" >&2; python3 -m venv "$venv"; }
    grep -E '^psycopg' "$req" >"$work/requirements-psycopg.txt"
    echo "$who: pip install $(tr '\n' ' ' <"$work/requirements-psycopg.txt")" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$work/requirements-psycopg.txt" >&2
}
