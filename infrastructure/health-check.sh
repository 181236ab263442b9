#!/usr/bin/env bash
# health-check.sh [-v] [--liveness] — is this Orochi Router instance serving? (seed 002's
# script; the Kubernetes liveness exec probe of kubernetes/base/deployment.yaml runs it in
# the pod with --liveness.)
#
# Checks, all of them every run:
#   client   pg_isready on the client port
#   admin    SHOW VERSION on the admin console (psql)
#   health   GET /health on the metrics port answers 200 (not with --liveness)
#   ready    GET /ready on the metrics port answers 200
# Exit 0 when all answer; otherwise 1, with one "health-check: FAIL <check> ..." line on
# stderr for each failed check. -v also prints a line for every check that passed.
#
# --liveness leaves out /health, which answers 503 while a shard has no primary: the
# router is alive then, and restarting it would only drop every client (those reading
# from replicas too) in the middle of a database failover.
#
# Env: PGDOG_HOST (127.0.0.1; a listen address 0.0.0.0 or :: is checked on loopback),
# PGDOG_PORT (5432), PGDOG_ADMIN_PORT (6432), PGDOG_METRICS_PORT (9090),
# PGDOG_ADMIN_USER (admin), PGPASSWORD (the admin password), HEALTH_CHECK_TIMEOUT (3 s).
# Needs pg_isready and psql (postgresql-client); curl if present, else bash's /dev/tcp.
set -uo pipefail

verbose=0
liveness=0
for arg in "$@"; do
    case "$arg" in
        -v | --verbose) verbose=1 ;;
        --liveness) liveness=1 ;;
        *) echo "usage: $0 [-v] [--liveness]" >&2; exit 2 ;;
    esac
done

host="${PGDOG_HOST:-127.0.0.1}"
case "$host" in 0.0.0.0 | "::" | "[::]" | "") host=127.0.0.1 ;; esac
port="${PGDOG_PORT:-5432}"
admin_port="${PGDOG_ADMIN_PORT:-6432}"
metrics_port="${PGDOG_METRICS_PORT:-9090}"
admin_user="${PGDOG_ADMIN_USER:-admin}"
timeout="${HEALTH_CHECK_TIMEOUT:-3}"
failed=()

ok() { if ((verbose)); then echo "health-check: ok   $1"; fi; }
fail() {
    echo "health-check: FAIL $1" >&2
    failed+=("${1%% *}")
}

# HTTP status code of GET http://host:port/path ("000" when nothing answers).
http_status() {
    local path="$1"
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null -m "$timeout" -w '%{http_code}' "http://$host:$metrics_port$path" || true
        return
    fi
    local line
    if ! exec 3<>"/dev/tcp/$host/$metrics_port" 2>/dev/null; then
        echo 000
        return
    fi
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
    if IFS=' ' read -r -t "$timeout" _ line _ <&3; then echo "${line:-000}"; else echo 000; fi
    exec 3<&-
}

if out="$(pg_isready -h "$host" -p "$port" -t "$timeout" 2>&1)"; then
    ok "client pg_isready $host:$port"
else
    fail "client pg_isready $host:$port: ${out:-no answer}"
fi

if out="$(PGCONNECT_TIMEOUT="$timeout" psql -X -w -At -h "$host" -p "$admin_port" -U "$admin_user" \
    -d orochi -c 'SHOW VERSION' 2>&1)"; then
    ok "admin SHOW VERSION on $host:$admin_port: $out"
else
    fail "admin SHOW VERSION on $host:$admin_port as $admin_user: $(echo "$out" | head -n 1)"
fi

paths=(/health /ready)
if ((liveness)); then paths=(/ready); fi
for path in "${paths[@]}"; do
    code="$(http_status "$path")"
    if [[ "$code" == 200 ]]; then
        ok "${path#/} GET http://$host:$metrics_port$path: 200"
    else
        fail "${path#/} GET http://$host:$metrics_port$path: HTTP $code"
    fi
done

if ((${#failed[@]})); then
    echo "health-check: unhealthy (failed: ${failed[*]})" >&2
    exit 1
fi
if ((verbose)); then echo "health-check: healthy"; fi
exit 0
