#!/usr/bin/env bash
# compare.sh [--self-check] [--corpus-only] [ROUTER_BIN] — the comparison suite of
# issue #3: the sharded router answers like one PostgreSQL database, or refuses
# with 0A000. Then the application corpus of issue 20 (corpus/corpus.py): ≥ 150
# queries written the way applications write them, over a multi-tenant shop.
#
# 1. The PostgreSQL test fleet (pg.sh fleet-up; honours OROCHI_PG_BASE_PORT).
# 2. psycopg 3 in $ROOT/.run/drivers-venv, the venv of the driver matrix: reused
#    when it can import psycopg, else created and given only the psycopg pins of
#    testing/drivers/python/requirements.txt (drivers/install.sh still installs
#    the rest later: it syncs on its own marker file, which this does not write).
# 3. compare/compare.py setup: ~30,000 generated rows (seeded) loaded directly
#    into `cmp` on the single server, `cmp2` on shard servers s0,s1 and `cmp4`
#    on s0..s3 (each shard only the rows PostgreSQL's PARTITION BY HASH puts
#    there; replicated tables whole). Databases are dropped and recreated.
# 4. A router (ROUTER_BIN, default: newest target/{release,debug}/orochi-router)
#    on free ports, pools cmp2 and cmp4, config written by compare.py config.
# 5. compare/compare.py check: ≥ 200 read queries and rolled-back single-key
#    writes, each in the simple, extended, prepared and binary modes, through
#    the router on cmp2 and cmp4 and directly on cmp; prints every WRONG answer
#    and a summary. Exit status 0 only with zero wrong answers.
# 6. corpus/corpus.py check: the queries of corpus/app_queries.sql over the shop
#    (`corpus` directly; pools corpus2 and corpus4 of the same router); fails on
#    any wrong answer or non-0A000 error, and when more than 5% are refused.
#
# --self-check: no router; the "router" side is the plain database itself and
# a copy loaded in shuffled order. Every answer must match: proves the judge.
# --corpus-only: skip step 5 (the generated queries); load and ask the corpus only.
#
# Env: OROCHI_PG_BASE_PORT (15432), COMPARE_ONLY (regex: only matching queries, both parts),
#      COMPARE_VERBOSE=1 (more refusal messages), COMPARE_TIMEOUT (1800 s), CORPUS_TIMEOUT (300 s),
#      COMPARE_VENV (a venv other than .run/drivers-venv).
# Logs and config: .run/compare/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"

self_check=0
corpus_only=0
bin_arg=""
for arg in "$@"; do
    case "$arg" in
        --self-check) self_check=1 ;;
        --corpus-only) corpus_only=1 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) pg_die "compare.sh: unknown option $arg" ;;
        *) bin_arg="$arg" ;;
    esac
done

work="$PG_RUN_DIR/compare"
venv="${COMPARE_VENV:-$PG_RUN_DIR/drivers-venv}"
py="$here/compare/compare.py"
corpus_py="$here/corpus/corpus.py"
mkdir -p "$work"
# One run at a time per checkout: a second run would drop the databases under the first.
exec 8>"$work/run.lock"
flock -w 900 8 || pg_die "compare: timed out waiting for $work/run.lock (another compare.sh run)"

# --- psycopg -------------------------------------------------------------------
ensure_psycopg "$venv" "$work" compare

# --- PostgreSQL and data -------------------------------------------------------------
fleet="$(bash "$here/pg.sh" fleet-up)"
single="$(sed -n 's/^OROCHI_PG_SINGLE=//p' <<<"$fleet")"
shard_list="$(sed -n 's/^OROCHI_PG_SHARDS=//p' <<<"$fleet")"
[[ -n "$single" && -n "$shard_list" ]] || pg_die "compare: pg.sh fleet-up printed no OROCHI_PG_SINGLE/OROCHI_PG_SHARDS"
echo "compare: PostgreSQL single $single, shards $shard_list"

setup_args=(setup --single "$single" --shards "$shard_list")
check_args=(check --single "$single")
((self_check)) && setup_args+=(--self-check) && check_args+=(--self-check)
[[ -n "${COMPARE_ONLY:-}" ]] && check_args+=(--only "$COMPARE_ONLY")
[[ "${COMPARE_VERBOSE:-0}" == 1 ]] && check_args+=(--verbose)
((corpus_only)) || "$venv/bin/python" "$py" "${setup_args[@]}"
"$venv/bin/python" "$corpus_py" "${setup_args[@]}"
corpus_args=("${check_args[@]}")

# --- router --------------------------------------------------------------------------
pidfile="$work/router.pid"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { router_stop "$pidfile"; }
trap cleanup EXIT
if ((!self_check)); then
    bin="$(router_bin "$bin_arg")"
    read -r port admin metrics < <(free_ports 3)
    config="$work/orochi.toml"
    "$venv/bin/python" "$py" config --out "$config" --port "$port" --admin "$admin" --metrics "$metrics" \
        --shards "$shard_list"
    "$venv/bin/python" "$corpus_py" config --out "$config" --shards "$shard_list"
    "$bin" check -c "$config" >"$work/config-check.log" 2>&1 \
        || { cat "$work/config-check.log" >&2; pg_die "compare: the router rejected $config"; }
    echo "compare: router $bin on 127.0.0.1:$port (config $config, log $work/router.log)"
    router_start "$bin" "$config" "$work/router.log" "$pidfile" "$port" "$admin" "$metrics" 8>&- # not our lock
    router_wait "$pidfile" "$port" "$work/router.log"
    check_args+=(--router "127.0.0.1:$port")
    corpus_args+=(--router "127.0.0.1:$port")
fi

# --- the comparison -----------------------------------------------------------------
rc=0
if ((!corpus_only)); then
    timeout -k 10 "${COMPARE_TIMEOUT:-1800}" "$venv/bin/python" "$py" "${check_args[@]}" || rc=$?
    ((rc == 124 || rc == 137)) && echo "compare: timed out after ${COMPARE_TIMEOUT:-1800}s" >&2
fi
crc=0
timeout -k 10 "${CORPUS_TIMEOUT:-300}" "$venv/bin/python" "$corpus_py" "${corpus_args[@]}" || crc=$?
((crc == 124 || crc == 137)) && echo "compare: the corpus timed out after ${CORPUS_TIMEOUT:-300}s" >&2
((rc)) || rc=$crc
if ((!self_check)) && ! router_alive "$(cat "$pidfile" 2>/dev/null)"; then
    echo "compare: the router died during the run (log $work/router.log)" >&2
    tail -n 20 "$work/router.log" >&2 || true
    rc=1
fi
exit "$rc"
