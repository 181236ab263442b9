#!/usr/bin/env bash
# regress.sh [ROUTER_BIN] — PostgreSQL 15's own regression suite through the router.
#
# Runs every file of src/test/regress's parallel schedule (217 in 15.x) the way
# pg_regress runs them (`psql -X -a -q` per file, PGTZ/PGDATESTYLE/PGOPTIONS as
# pg_regress sets them), one file at a time (--max-connections=1), three times,
# each on a fresh cluster with a database named `regression`:
#   direct       psql → PostgreSQL (the baseline)
#   session      psql → router (pool `regression`, pool_mode = "session") → PostgreSQL
#   transaction  psql → router (pool_mode = "transaction") → PostgreSQL
# and compares each file's output (results/NAME.out) of a routed run with the
# direct run's. Only the router differs between the runs: same server settings,
# same client, same order, TCP to 127.0.0.1 as postgres/postgres (SCRAM).
#
# Where the suite comes from: Debian's source package of the installed
# postgresql-15 (`apt-get source postgresql-15=<installed version>`; a deb-src
# entry is added to apt's sources when none serves that version). Its
# src/test/regress (sql/, expected/, data/, the schedule) and the C modules the
# tests load (regress.so, and refint.so / autoinc.so from contrib/spi, built
# with PGXS against postgresql-server-dev-15) are kept in .run/regress-cache/
# VERSION/, so later runs download and build nothing. pg_regress itself is
# Debian's ($(pg_config --pkglibdir)/pgxs/src/test/regress/pg_regress), run with
# --use-existing (a router cannot CREATE DATABASE for it): the database is made
# beforehand as pg_regress would make it (TEMPLATE template0, lc_* = C,
# bytea_output = hex, timezone_abbreviations = Default), and the server gets
# the settings pg_regress gives its temporary instance (max_prepared_transactions
# = 2, logging). pg_regress sets PG_ABS_SRCDIR / PG_ABS_BUILDDIR / PG_LIBDIR /
# PG_DLSUFFIX, which the files read with \getenv. The server reads the data files
# and writes into results/ (COPY TO, lo_export), so pg_regress runs as the
# server's user (postgres, when we are root) in a directory that user owns.
#
# Output in .run/regress/: summary.txt (also printed), MODE/NAME.diff for each
# file whose routed output differs (diff -u direct routed), MODE/router.log,
# RUN.log (pg_regress's own output), direct-vs-expected.diffs (the direct run
# against PostgreSQL's expected files, for reference).
#
# Exit status: 0, or 1 on a harness failure (download, build, a cluster or the
# router not starting, pg_regress erroring out or exceeding REGRESS_TIMEOUT) or
# when a mode's identical count is below its threshold.
#
# Env: REGRESS_MIN_SESSION, REGRESS_MIN_TRANSACTION (0): the thresholds;
#   REGRESS_MODES ("session transaction"); REGRESS_POOL_SIZE (4);
#   REGRESS_TIMEOUT (900 s per run); REGRESS_PARALLEL (1: run the direct
#   baseline alongside the first routed run; 0: one run at a time);
#   REGRESS_BASE_PORT (OROCHI_PG_BASE_PORT + 80; uses BASE .. BASE+8: clear of the
#   ports the test suites use, +0..+61).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"

bin="$(router_bin "${1:-}")"
out="$PG_RUN_DIR/regress"
cache="$PG_RUN_DIR/regress-cache"
read -r -a modes <<<"${REGRESS_MODES:-session transaction}"
pool_size="${REGRESS_POOL_SIZE:-4}"
run_timeout="${REGRESS_TIMEOUT:-900}"
parallel="${REGRESS_PARALLEL:-1}"
base="${REGRESS_BASE_PORT:-$((${OROCHI_PG_BASE_PORT:-15432} + 80))}"
pg_check_port "$base"
pg_check_port $((base + 8))

say() { echo "regress: $*"; }
die() {
    echo "regress: $*" >&2
    exit 1
}

sudo=()
[[ "$(id -u)" == 0 ]] || sudo=(sudo)
apt_quiet() {
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 "$@"
}
installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

version="$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null)" ||
    die "postgresql-15 is not installed (run: make deps)"
src="$cache/$version"
mkdir -p "$out" "$cache"

# ---------------------------------------------------------------- build deps
ensure_build_deps() {
    local missing=() pkg
    for pkg in postgresql-server-dev-15 gcc make dpkg-dev; do
        installed "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    say "installing ${missing[*]}"
    apt_quiet update -qq >"$out/apt.log" 2>&1 || { cat "$out/apt.log" >&2; die "apt-get update failed"; }
    # The server headers of the installed version when apt still has it.
    local pinned=("${missing[@]/#postgresql-server-dev-15/postgresql-server-dev-15=$version}")
    if ! apt_quiet install -y -qq --no-install-recommends "${pinned[@]}" >>"$out/apt.log" 2>&1 &&
        ! apt_quiet install -y -qq --no-install-recommends "${missing[@]}" >>"$out/apt.log" 2>&1; then
        tail -n 30 "$out/apt.log" >&2
        die "apt-get install ${missing[*]} failed"
    fi
}

# A deb-src twin of each Debian `deb` source, so apt-get source finds the package.
add_deb_src() {
    local list=/etc/apt/sources.list.d/orochi-deb-src
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
            "${sudo[@]}" tee "$list.sources" >/dev/null
    elif [[ -f /etc/apt/sources.list ]]; then
        sed -n 's/^deb \(.*\)$/deb-src \1/p' /etc/apt/sources.list | "${sudo[@]}" tee "$list.list" >/dev/null
    else
        die "no apt sources found to derive a deb-src entry from"
    fi
    say "added a deb-src entry ($list.*); apt-get update"
    apt_quiet update -qq >"$out/apt.log" 2>&1 || { cat "$out/apt.log" >&2; die "apt-get update failed"; }
}

# --------------------------------------------------- the suite, downloaded once
has_source() {
    local versions
    versions="$(apt-cache showsrc postgresql-15 2>/dev/null | sed -n 's/^Version: //p')"
    grep -qxF "$version" <<<"$versions"
}

ensure_source() {
    [[ -f "$src/.complete" ]] && return 0
    ensure_build_deps
    if ! has_source; then
        add_deb_src
        has_source || die "apt has no source of postgresql-15 $version"
    fi
    local dl="$cache/download" tree
    rm -rf "$dl" "$src.tmp"
    mkdir -p "$dl" "$src.tmp/regress" "$src.tmp/build" "$src.tmp/lib"
    say "apt-get source postgresql-15=$version"
    if ! (cd "$dl" && apt-get source -qq "postgresql-15=$version") >"$out/source.log" 2>&1; then
        tail -n 30 "$out/source.log" >&2
        die "apt-get source postgresql-15=$version failed"
    fi
    tree="$(find "$dl" -mindepth 1 -maxdepth 1 -type d -name 'postgresql-15-*' | head -n 1)"
    [[ -n "$tree" && -f "$tree/src/test/regress/parallel_schedule" ]] || die "no src/test/regress in the source package"
    cp -a "$tree/src/test/regress/"{sql,expected,data,parallel_schedule,resultmap} "$src.tmp/regress/"
    cp "$tree/src/test/regress/regress.c" "$tree/contrib/spi/"{refint.c,autoinc.c} "$here/regress/Makefile" \
        "$src.tmp/build/"
    local pgc="$PG_BIN/pg_config"
    [[ -x "$pgc" ]] || pgc=pg_config
    if ! make -s -C "$src.tmp/build" with_llvm=no PG_CONFIG="$pgc" >"$out/build.log" 2>&1; then
        cat "$out/build.log" >&2
        die "building regress.so / refint.so / autoinc.so failed"
    fi
    cp "$src.tmp/build/"{regress,refint,autoinc}.so "$src.tmp/lib/"
    rm -rf "$dl" "$src"
    mv "$src.tmp" "$src"
    touch "$src/.complete"
    say "suite and modules cached in $src"
}

ensure_source
pg_regress_bin="$("$PG_BIN/pg_config" --pkglibdir 2>/dev/null || pg_config --pkglibdir)/pgxs/src/test/regress/pg_regress"
[[ -x "$pg_regress_bin" ]] || die "no pg_regress at $pg_regress_bin"
mapfile -t tests < <(sed -n 's/^test: *//p' "$src/regress/parallel_schedule" | tr -s ' ' '\n' | sed '/^$/d')
((${#tests[@]} > 0)) || die "empty schedule"

# ------------------------------------------------------------- the work area
# Somewhere the server's user can read and write (pg.sh decides where instances
# live; the work area sits beside them).
work="$(dirname "$(pg_root)")/regress-work"
rm -rf "$work"
mkdir -p "$work"
cp -a "$src/regress" "$work/src"
cp -a "$src/lib" "$work/lib"
pg_is_root && chown -R postgres:postgres "$work"

# ---------------------------------------------------------------- the runs
# Each run is a subshell: whatever it started, the cleanup finds by name.
cleanup() {
    local run
    for run in session transaction; do router_stop "$out/$run/router.pid" || true; done
    for run in direct session transaction; do
        if pg_exists "regress-$run"; then pg_stop "regress-$run" >/dev/null 2>&1 || true; fi
    done
}
trap cleanup EXIT

cluster_port() {
    case "$1" in
        direct) echo "$base" ;;
        session) echo $((base + 1)) ;;
        transaction) echo $((base + 5)) ;;
    esac
}
router_port() {
    case "$1" in
        session) echo $((base + 2)) ;;
        transaction) echo $((base + 6)) ;;
    esac
}

# A fresh cluster for RUN with the database `regression` made as pg_regress makes it.
fresh_cluster() {
    local run="$1" name="regress-$1" port dir
    port="$(cluster_port "$run")"
    pg_destroy "$name"
    pg_init "$name" "$port"
    dir="$(pg_dir "$name")"
    pg_write "$dir/data/regress.conf" <<'EOF'
# What pg_regress adds to the postgresql.conf of its temporary instance.
log_autovacuum_min_duration = 0
log_checkpoints = on
log_line_prefix = '%m %b[%p] %q%a '
log_lock_waits = on
log_temp_files = 128kB
max_prepared_transactions = 2
EOF
    echo "include 'regress.conf'" | pg_as tee -a "$dir/data/postgresql.conf" >/dev/null
    pg_start "$name"
    pg_psql "$name" -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE DATABASE "regression" TEMPLATE=template0;
ALTER DATABASE "regression" SET lc_messages TO 'C';
ALTER DATABASE "regression" SET lc_monetary TO 'C';
ALTER DATABASE "regression" SET lc_numeric TO 'C';
ALTER DATABASE "regression" SET lc_time TO 'C';
ALTER DATABASE "regression" SET bytea_output TO 'hex';
ALTER DATABASE "regression" SET timezone_abbreviations TO 'Default';
SQL
}

start_router() {
    local mode="$1" port admin metrics dir="$out/$1"
    port="$(router_port "$mode")"
    admin=$((port + 1))
    metrics=$((port + 2))
    cat >"$dir/orochi.toml" <<EOF
# Written by testing/regress.sh: one pool, one shard, a superuser.
[general]
host = "127.0.0.1"
port = $port
admin_port = $admin
metrics_port = $metrics
admin_username = "admin"
admin_password = "admin"

[pools.regression]
pool_mode = "$mode"

[pools.regression.users.0]
username = "postgres"
password = "postgres"
pool_size = $pool_size

[pools.regression.shards.0]
database = "regression"
servers = [["127.0.0.1", $(cluster_port "$mode"), "primary"]]
EOF
    router_start "$bin" "$dir/orochi.toml" "$dir/router.log" "$dir/router.pid" "$port" "$admin" "$metrics"
    router_wait "$dir/router.pid" "$port" "$dir/router.log"
}

# run_suite RUN PORT: pg_regress over the whole schedule, one file at a time.
# Its exit status 1 (some file differs from PostgreSQL's expected output) is
# fine here; 2 (it could not run) or a time-out is a harness failure.
run_suite() {
    local run="$1" port="$2" rc=0 t0
    t0=$SECONDS
    pg_as mkdir -p "$work/$run"
    pg_as env LANG=C PGPASSWORD=postgres PGCONNECT_TIMEOUT=30 \
        timeout -k 10 "$run_timeout" "$pg_regress_bin" \
        --use-existing --dbname=regression --host=127.0.0.1 --port="$port" --user=postgres \
        --bindir="$PG_BIN" --inputdir="$work/src" --outputdir="$work/$run" --dlpath="$work/lib" \
        --schedule="$work/src/parallel_schedule" --max-connections=1 \
        >"$out/$run.log" 2>&1 || rc=$?
    case "$rc" in
        0 | 1) ;;
        124 | 137) die "$run: pg_regress did not finish within ${run_timeout}s (log: $out/$run.log)" ;;
        *)
            tail -n 20 "$out/$run.log" >&2
            die "$run: pg_regress failed (exit $rc; log: $out/$run.log)"
            ;;
    esac
    say "$run: $(grep -E 'tests (passed|failed)' "$out/$run.log" | tr -s ' =' ' ' | sed 's/^ //') ($((SECONDS - t0)) s)"
}

run_direct() {
    fresh_cluster direct
    run_suite direct "$(cluster_port direct)"
    pg_stop regress-direct >/dev/null 2>&1
    [[ -f "$work/direct/regression.diffs" ]] && cp "$work/direct/regression.diffs" "$out/direct-vs-expected.diffs"
    return 0
}

run_routed() {
    local mode="$1"
    rm -rf "${out:?}/$mode"
    mkdir -p "$out/$mode"
    fresh_cluster "$mode"
    start_router "$mode"
    run_suite "$mode" "$(router_port "$mode")"
    router_alive "$(cat "$out/$mode/router.pid")" || die "$mode: the router died during the run (log: $out/$mode/router.log)"
    router_stop "$out/$mode/router.pid"
    pg_stop "regress-$mode" >/dev/null 2>&1
}

t_start=$SECONDS
rm -f "$out/direct-vs-expected.diffs" "$out/summary.txt"
say "PostgreSQL $version, ${#tests[@]} files, router $bin, pool_size $pool_size, ports $base..$((base + 8))"
if [[ "$parallel" == 1 && ${#modes[@]} -gt 0 ]]; then
    # The direct baseline beside the first routed run: two single-client runs
    # on two cores. Each is a job of its own (run as `(…) || …`, a subshell would have
    # `set -e` off inside, and a failed setup step would go unseen); its exit status is
    # checked.
    run_direct &
    direct_pid=$!
    first_rc=0
    run_routed "${modes[0]}" &
    wait "$!" || first_rc=$?
    direct_rc=0
    wait "$direct_pid" || direct_rc=$?
    ((direct_rc == 0 && first_rc == 0)) || die "a run failed (see above)"
    for mode in "${modes[@]:1}"; do run_routed "$mode" & wait "$!" || die "$mode: run failed"; done
else
    run_direct & wait "$!" || die "direct: run failed"
    for mode in "${modes[@]}"; do run_routed "$mode" & wait "$!" || die "$mode: run failed"; done
fi

# ------------------------------------------------------------- comparison
summary="$out/summary.txt"
{
    echo "PostgreSQL $version regression suite (${#tests[@]} files, parallel_schedule run serially)"
    echo "through a one-shard router pool (pool_size $pool_size) vs directly; $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "direct run vs PostgreSQL's expected files: $(grep -E 'tests (passed|failed)' "$out/direct.log" | tr -s ' =' ' ' | sed 's/^ //')"
} >"$summary"
below=0
for mode in "${modes[@]}"; do
    same=0
    differ=()
    for t in "${tests[@]}"; do
        a="$work/direct/results/$t.out"
        b="$work/$mode/results/$t.out"
        [[ -f "$a" ]] || die "direct: no output for $t"
        if [[ -f "$b" ]] && cmp -s "$a" "$b"; then
            same=$((same + 1))
            continue
        fi
        [[ -f "$b" ]] || b=/dev/null
        diff -u --label "direct/$t.out" --label "$mode/$t.out" "$a" "$b" >"$out/$mode/$t.diff" || true
        differ+=("$t (+$(grep -c '^+[^+]' "$out/$mode/$t.diff" || true) -$(grep -c '^-[^-]' "$out/$mode/$t.diff" || true))")
    done
    var="REGRESS_MIN_${mode^^}"
    min="${!var:-0}"
    {
        echo
        echo "$mode: $same of ${#tests[@]} identical (threshold $min); ${#differ[@]} differ (diffs in .run/regress/$mode/):"
        for d in "${differ[@]}"; do echo "  $d"; done
    } >>"$summary"
    if ((same < min)); then
        below=$((below + 1))
        echo "regress: $mode: $same identical, below the threshold $min" >&2
    fi
done
cat "$summary"
say "total $((SECONDS - t_start)) s"
# One check per mode: its identical count is at or above its threshold.
echo "regress: $((${#modes[@]} - below)) passed, $below failed"
((below == 0))
