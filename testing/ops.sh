#!/usr/bin/env bash
# ops.sh [ROUTER_BIN] — the deployment files, validated (make test-ops; CI runs it after
# make test). Each step prints "ops: ok|FAIL <step>"; the last line is "N passed, N failed".
#
#   scripts       shellcheck on every shell script of the repository (git ls-files *.sh)
#   kubernetes    infrastructure/kubernetes: base files and both overlays rendered with
#                 `kubectl kustomize`, through kubernetes-validate --strict (PyPI, in the
#                 venv .run/ops-venv)
#   prometheus    promtool: prometheus.yml, alerts.yml, and the alert unit tests
#   configs       orochi-router check on the example, the ConfigMap + Secret of the base,
#                 and the config-gen templates rendered several ways
#   live          a PostgreSQL instance and a router with a pool: every metric the Grafana
#                 dashboard queries is in /metrics; infrastructure/health-check.sh exits 0,
#                 then non-zero naming the admin check (wrong password), then naming every
#                 check once the router is stopped
#
# Missing tools are installed: shellcheck and prometheus (promtool) with apt, python3-venv
# with apt when absent. Ports: $OROCHI_PG_BASE_PORT (15432) + 90..93.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"
root="$PG_ROOT_DIR"
work="$PG_RUN_DIR/ops"
venv="$PG_RUN_DIR/ops-venv"
mkdir -p "$work"
# The checks mean the files as shipped: no template variables or TLS from the caller.
unset CLUSTER_NAME NAMESPACE TLS_ENABLED TLS_CERT_PATH TLS_KEY_PATH TLS_CA_PATH PGDOG_CONFIG PGDOG_USERS_CONFIG
cd "$root"

bin="$(router_bin "${1:-}")"
base="${OROCHI_PG_BASE_PORT:-15432}"
pg_port=$((base + 90)) port=$((base + 91)) admin=$((base + 92)) metrics=$((base + 93))
passed=0 failed=0 failures=()

say() { echo "ops: $*"; }
# step NAME CMD...: runs CMD, output in $work/NAME.log (shown when it fails). CMD runs as
# a job of its own: run as an `if` condition, `set -e` would be off for all of it, and a
# check failing before its last line would pass unseen.
step() {
    local name="$1"
    shift
    local t0=$SECONDS
    "$@" >"$work/$name.log" 2>&1 &
    if wait "$!"; then
        passed=$((passed + 1))
        say "ok   $name ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        say "FAIL $name ($((SECONDS - t0)) s); its output ($work/$name.log):"
        tail -n 40 "$work/$name.log" | sed 's/^/    /'
    fi
}

# apt-get update once a run: steps are jobs of their own, so a file remembers it.
apt_updated="$work/apt-updated"
rm -f "$apt_updated"
need_apt() { # need_apt COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    local sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    if [[ ! -e "$apt_updated" ]]; then
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >"$work/apt.log" 2>&1
        touch "$apt_updated"
    fi
    say "apt-get install $2"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$2" \
        >>"$work/apt.log" 2>&1 || { tail -n 20 "$work/apt.log" >&2; return 1; }
}

check_shellcheck() {
    need_apt shellcheck shellcheck
    local files=()
    mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.sh' .ci/run)
    echo "shellcheck ${#files[@]} scripts: ${files[*]}"
    shellcheck -x "${files[@]}"
}

ensure_venv() {
    if [[ -x "$venv/bin/kubernetes-validate" ]]; then return 0; fi
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then need_apt __none__ python3-venv; fi
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'kubernetes-validate>=1.30' PyYAML
}

check_kubernetes() {
    ensure_venv
    local k8s=infrastructure/kubernetes files=()
    mapfile -t files < <(find "$k8s/base" -name '*.yaml' ! -name kustomization.yaml | sort)
    # kubernetes-validate given no file passes: make sure there is something to check.
    ((${#files[@]})) || { echo "no base manifests found"; return 1; }
    "$venv/bin/kubernetes-validate" --strict --quiet "${files[@]}"
    echo "base files valid: ${files[*]}"
    if ! command -v kubectl >/dev/null 2>&1; then
        echo "no kubectl: overlays not rendered (install kubectl to validate them)"
        return 0
    fi
    # overlays/generated needs config-gen's output: render into a copy of the tree.
    rm -rf "$work/k8s" && cp -a "$k8s" "$work/k8s"
    "$bin" config-gen -template infrastructure/config/orochi.toml.tmpl \
        -output "$work/k8s/overlays/generated/orochi.toml" -shard-count 4
    "$bin" config-gen -template infrastructure/config/users.toml.tmpl \
        -output "$work/k8s/overlays/generated/users.toml"
    local dir out
    for dir in . overlays/tls overlays/generated; do
        out="$work/kustomize-${dir//\//-}.yaml"
        kubectl kustomize "$work/k8s/$dir" >"$out"
        "$venv/bin/kubernetes-validate" --strict --quiet "$out"
        echo "kustomize $dir: $(grep -c '^kind:' "$out") resources valid"
    done
    grep -q 'secretName: orochi-router-tls' "$work/kustomize-overlays-tls.yaml"
    grep -q 'default-shard-3-primary' "$work/kustomize-overlays-generated.yaml"
    grep -q 'kind: PodDisruptionBudget' "$work/kustomize-..yaml"
}

check_prometheus() {
    need_apt promtool prometheus
    local dir=infrastructure/prometheus out
    promtool check rules "$dir/alerts.yml"
    (cd "$dir" && promtool test rules alerts.test.yml)
    if out="$(promtool check config "$dir/prometheus.yml" 2>&1)"; then
        echo "$out"
        return 0
    fi
    echo "$out"
    # Debian's promtool is built without Kubernetes service discovery: check the rest.
    grep -q 'kubernetes_sd_configs not found' <<<"$out" || return 1
    echo "this promtool lacks kubernetes_sd_configs: checking the file without that job"
    cp "$dir/alerts.yml" "$work/alerts.yml"
    "$venv/bin/python" - "$dir/prometheus.yml" "$work/prometheus.yml" <<'PY'
import sys, yaml
conf = yaml.safe_load(open(sys.argv[1]))
conf["scrape_configs"] = [j for j in conf["scrape_configs"] if "kubernetes_sd_configs" not in j]
yaml.safe_dump(conf, open(sys.argv[2], "w"))
PY
    promtool check config "$work/prometheus.yml"
}

check_configs() {
    ensure_venv
    "$bin" check -c infrastructure/orochi.example.toml
    # The base's ConfigMap and users Secret, as the pod sees them.
    "$venv/bin/python" - infrastructure/kubernetes/base "$work" <<'PY'
import sys, yaml
base, out = sys.argv[1], sys.argv[2]
for f, key in (("configmap.yaml", "data"), ("secret.yaml", "stringData")):
    for doc in yaml.safe_load_all(open(f"{base}/{f}")):
        for name, text in (doc.get(key) or {}).items():
            if name.endswith(".toml"):
                open(f"{out}/k8s-{name}", "w").write(text)
PY
    "$bin" check -c "$work/k8s-orochi.toml" -u "$work/k8s-users.toml"
    local flags
    for flags in "" "-shard-count 1" "-shard-count 8 -tls-enabled -pool-mode session -database-name app"; do
        # shellcheck disable=SC2086 # flags are words
        "$bin" config-gen -template infrastructure/config/orochi.toml.tmpl -output "$work/gen.toml" $flags
        # shellcheck disable=SC2086
        "$bin" config-gen -template infrastructure/config/users.toml.tmpl -output "$work/gen-users.toml" $flags
        "$bin" check -c "$work/gen.toml" -u "$work/gen-users.toml"
    done
}

pidfile="$work/router.pid"
cleanup() {
    router_stop "$pidfile" 2>/dev/null || true
    if pg_exists ops_pg; then bash "$here/pg.sh" stop ops_pg >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

health_check() { # health_check ARGS...: health-check.sh against the test router
    PGDOG_HOST=127.0.0.1 PGDOG_PORT="$port" PGDOG_ADMIN_PORT="$admin" PGDOG_METRICS_PORT="$metrics" \
        PGDOG_ADMIN_USER=admin HEALTH_CHECK_TIMEOUT=2 bash infrastructure/health-check.sh "$@"
}

# health_fails WANT [UNWANTED]: health-check.sh (admin password in PGPASSWORD) fails,
# its output matching WANT (an extended regex) and, when given, not UNWANTED.
health_fails() {
    local err rc=0 unwanted="${2:-}"
    err="$(health_check 2>&1)" || rc=$?
    echo "$err"
    if ((rc == 0)) || ! grep -Eq "$1" <<<"$err" || { [[ -n "$unwanted" ]] && grep -Eq "$unwanted" <<<"$err"; }; then
        echo "health-check: expected a failure matching \"$1\" (and none matching \"$unwanted\")"
        return 1
    fi
}

check_live() {
    bash "$here/pg.sh" init ops_pg "$pg_port"
    bash "$here/pg.sh" start ops_pg
    router_config "$work/router.toml" "$port" "$admin" "$metrics" app app "$pg_port" 4
    router_start "$bin" "$work/router.toml" "$work/router.log" "$pidfile" "$port" "$admin" "$metrics"
    router_wait "$pidfile" "$port" "$work/router.log"
    local psql=("$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$port" -U app -d app)
    PGPASSWORD=secret "${psql[@]}" -c 'SELECT 1' >/dev/null
    PGPASSWORD=secret "${psql[@]}" -c 'SELECT 1/0' >/dev/null 2>&1 || true # errors_total
    # A client stays connected while /metrics is read (clients_connected).
    PGPASSWORD=secret "${psql[@]}" -c 'SELECT pg_sleep(3)' >/dev/null &
    local sleeper=$! i
    for ((i = 0; i < 20; i++)); do
        curl -s "http://127.0.0.1:$metrics/metrics" >"$work/metrics.txt"
        grep -q '^orochi_pgdog_clients_connected{' "$work/metrics.txt" && break
        sleep 0.1
    done
    wait "$sleeper"
    local missing=() name names
    # (Read first: a process substitution's failure, no names at all, would go unseen.)
    names="$(grep -o 'orochi_pgdog_[a-z0-9_]*' infrastructure/grafana/orochi-dashboard.json | sort -u)"
    while read -r name; do
        grep -q "^${name}[{ ]" "$work/metrics.txt" || missing+=("$name")
    done <<<"$names"
    if ((${#missing[@]})); then
        echo "the dashboard queries metrics /metrics does not have: ${missing[*]}"
        return 1
    fi
    echo "every metric of the dashboard is in /metrics"

    PGPASSWORD="admin" health_check -v
    PGPASSWORD="wrong" health_fails 'FAIL admin' 'FAIL client'

    # The database gone, the router alive: /health fails, the liveness mode passes (a
    # failover must not restart the routers).
    bash "$here/pg.sh" stop ops_pg >/dev/null
    PGPASSWORD=secret "${psql[@]}" -c 'SELECT 1' >/dev/null 2>&1 || true
    PGPASSWORD="admin" health_fails 'FAIL health' 'FAIL (client|admin|ready)'
    PGPASSWORD="admin" health_check -v --liveness

    router_stop "$pidfile"
    PGPASSWORD="admin" health_fails 'failed: client admin health ready'
}

t0=$SECONDS
step shellcheck check_shellcheck
step kubernetes check_kubernetes
step prometheus check_prometheus
step configs check_configs
step live check_live
say "done in $((SECONDS - t0)) s${failures[*]:+; failed: ${failures[*]}}"
echo "$passed passed, $failed failed"
((failed == 0))
