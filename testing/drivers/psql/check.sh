#!/usr/bin/env bash
# psql through the router (testing/drivers.sh). psql speaks the simple Query
# protocol (text results only), \copy is COPY FROM STDIN / TO STDOUT, FETCH_COUNT
# reads through a cursor, Ctrl-C (SIGINT) sends a CancelRequest, PGOPTIONS goes in
# the startup packet. Server-side prepared statements are SQL PREPARE/EXECUTE.
# Connection settings come from PG* env; prints PLAN, then PASS/FAIL per case.
# The tls target (DRV_TLS=1): PGSSLMODE=verify-full with the test CA as root, and
# a verify_full_refuses case; direct connections to the shards use sslmode=disable.
set -uo pipefail
PSQL="${DRV_PG_BIN:-/usr/lib/postgresql/15/bin}/psql"
if [[ "${DRV_TLS:-0}" == 1 ]]; then
    export PGSSLMODE=verify-full PGSSLROOTCERT="$DRV_TLS_CA"
fi
T=drv_psql
POOL_SIZE="${DRV_POOL_SIZE:-5}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

q() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

fail() { echo "FAIL $case: $*"; return 1; }
# same GOT WANT WHAT
same() { [[ "$1" == "$2" ]] || fail "$3: got '$1', want '$2'"; }

c_connect_scram() {
    local got
    got="$(q -c 'SELECT current_user, current_database()' 2>&1)" || { fail "connect: $got"; return; }
    same "$got" "$PGUSER|$PGDATABASE" "session identity" || return
    got="$(PGPASSWORD=wrong-password q -c 'SELECT 1' 2>&1)" && { fail "a wrong password was accepted"; return; }
    [[ "$got" == *"password authentication failed"* ]] || { fail "wrong password: unexpected error: $got"; return; }
    if [[ "${DRV_TLS:-0}" == 1 ]]; then
        got="$(q -c '\conninfo' 2>&1)"
        [[ "$got" == *"SSL connection"* ]] || fail "not over TLS: $got"
    fi
}

c_verify_full_refuses() {
    # A root CA that did not sign the router's certificate; a host name the certificate
    # does not carry (PGHOSTADDR keeps the address), which verify-ca (chain only) takes.
    local got addr="$PGHOST"
    got="$(PGSSLROOTCERT="$DRV_TLS_OTHER_CA" q -c 'SELECT 1' 2>&1)" && { fail "verify-full accepted another CA"; return; }
    [[ "$got" == *"certificate verify failed"* ]] || { fail "another CA: refused, but not for the certificate: $got"; return; }
    got="$(PGHOST=wrong.invalid PGHOSTADDR="$addr" q -c 'SELECT 1' 2>&1)" && { fail "verify-full accepted another host name"; return; }
    [[ "$got" == *"does not match host name"* ]] || { fail "another host name: refused, but not for the name: $got"; return; }
    got="$(PGSSLMODE=verify-ca PGHOST=wrong.invalid PGHOSTADDR="$addr" q -c 'SELECT 1' 2>&1)"
    [[ "$got" == 1 ]] || fail "verify-ca with another host name: $got"
}

c_simple_reuse() {
    local i script="$tmp/simple.sql" want="" got n pids=()
    : >"$script"
    for ((i = 0; i < 200; i++)); do
        echo "SELECT $i * 2;" >>"$script"
        want+="$((i * 2))"$'\n'
    done
    for n in 0 1 2 3; do
        q -f "$script" >"$tmp/simple.$n" 2>&1 &
        pids+=($!)
    done
    for n in 0 1 2 3; do
        wait "${pids[$n]}" || { fail "session $n: $(tail -n 3 "$tmp/simple.$n")"; return; }
        got="$(cat "$tmp/simple.$n")"
        same "$got" "${want%$'\n'}" "session $n results" || return
    done
}

c_prepared_reuse() {
    # SQL-level PREPARE: within one transaction, and then (a session's prepared
    # statement) across many transactions of one client, from 4 clients at once.
    local got n pids=() want="" i
    got="$(q -c "BEGIN; PREPARE p_tx(int) AS SELECT \$1 + 1; EXECUTE p_tx(1); EXECUTE p_tx(2); DEALLOCATE p_tx; COMMIT" 2>&1)" \
        || { fail "PREPARE in a transaction: $got"; return; }
    same "$got" $'2\n3' "EXECUTE in a transaction" || return
    {
        echo "PREPARE p(int, text) AS SELECT \$1::int8 + 1, \$2 || '!';"
        for ((i = 0; i < 30; i++)); do echo "EXECUTE p($i, 'x');"; want+="$((i + 1))|x!"$'\n'; done
        echo "DEALLOCATE p;"
    } >"$tmp/prep.sql"
    for n in 0 1 2 3; do
        q -f "$tmp/prep.sql" >"$tmp/prep.$n" 2>&1 &
        pids+=($!)
    done
    for n in 0 1 2 3; do
        wait "${pids[$n]}" || { fail "session $n: $(head -n 3 "$tmp/prep.$n")"; return; }
        same "$(cat "$tmp/prep.$n")" "${want%$'\n'}" "session $n EXECUTE results" || return
    done
}

c_types_text() {
    local got want
    got="$(q -c "SET TimeZone = 'UTC'" -c "SELECT 32767::int2, (-2147483648)::int4, 9223372036854775807::int8,
        12345678901234567890.123456789::numeric, 3.141592653589793::float8, E'h\\u00e9llo ''w\\u00f6rld''',
        '\\x00ff10'::bytea, true, '2024-02-29'::date, '2024-02-29 12:34:56.789012+00'::timestamptz,
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '{\"a\": [1, 2, {\"b\": null}], \"c\": \"é\"}'::jsonb,
        '{1,2,NULL,4}'::int4[], ARRAY['a', 'b c', NULL], NULL::int4 IS NULL, coalesce(NULL::text, '<null>')" 2>&1)" \
        || { fail "$got"; return; }
    want='32767|-2147483648|9223372036854775807|12345678901234567890.123456789|3.141592653589793|héllo '"'"'wörld'"'"'|\x00ff10|t|2024-02-29|2024-02-29 12:34:56.789012+00|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{"a": [1, 2, {"b": null}], "c": "é"}|{1,2,NULL,4}|{a,"b c",NULL}|t|<null>'
    same "$got" "$want" "typed values as text"
}

c_txn_commit_rollback() {
    local got
    got="$(q <<SQL 2>&1
DROP TABLE IF EXISTS ${T}_tx;
CREATE TABLE ${T}_tx (id int PRIMARY KEY);
BEGIN; INSERT INTO ${T}_tx VALUES (1), (2); COMMIT;
BEGIN; INSERT INTO ${T}_tx VALUES (3); ROLLBACK;
BEGIN; INSERT INTO ${T}_tx VALUES (4); SAVEPOINT a; INSERT INTO ${T}_tx VALUES (5); ROLLBACK TO a; COMMIT;
SQL
)" || { fail "$got"; return; }
    same "$(q -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM ${T}_tx" 2>&1)" "1,2,4" "rows after commit/rollback"
}

c_txn_error_recovery() {
    local got
    got="$(q -c "DROP TABLE IF EXISTS ${T}_err" -c "CREATE TABLE ${T}_err (id int PRIMARY KEY)" 2>&1)" || { fail "create: $got"; return; }
    got="$("$PSQL" -X -q -A -t <<SQL 2>&1
BEGIN;
INSERT INTO ${T}_err VALUES (1);
SELECT 1 / 0;
SELECT 'in aborted transaction';
ROLLBACK;
SELECT 'after rollback';
BEGIN;
INSERT INTO ${T}_err VALUES (2);
SELECT no_such_column FROM pg_class;
COMMIT;
SELECT 'rows: ' || count(*) FROM ${T}_err;
SQL
)"
    [[ "$got" == *"division by zero"* ]] || { fail "no division-by-zero error: $got"; return; }
    [[ "$got" == *"current transaction is aborted"* ]] || { fail "no 25P02 in the aborted transaction: $got"; return; }
    [[ "$got" == *"after rollback"* ]] || { fail "no result after ROLLBACK: $got"; return; }
    [[ "$got" == *"rows: 0" ]] || fail "a failed transaction left rows or the last query failed: $got"
}

c_copy_in_out() {
    local i
    for ((i = 0; i < 5000; i++)); do printf '%d\trow %d\n' "$i" "$i"; done >"$tmp/copy.in"
    local got
    got="$(q -c "DROP TABLE IF EXISTS ${T}_copy" -c "CREATE TABLE ${T}_copy (id int, t text)" 2>&1)" || { fail "create: $got"; return; }
    got="$(q -c "\\copy ${T}_copy (id, t) FROM '$tmp/copy.in'" 2>&1)" || { fail "\\copy in: $got"; return; }
    got="$("$PSQL" -X -v ON_ERROR_STOP=1 -c "\\copy (SELECT id, t FROM ${T}_copy ORDER BY id) TO '$tmp/copy.out'" 2>&1)" \
        || { fail "\\copy out: $got"; return; }
    cmp -s "$tmp/copy.in" "$tmp/copy.out" || { fail "COPY out differs from what was copied in"; return; }
    got="$(q -c "COPY (SELECT id FROM ${T}_copy WHERE id < 3 ORDER BY id) TO STDOUT (FORMAT csv)" 2>&1)"
    same "$got" $'0\n1\n2' "COPY TO STDOUT csv"
}

c_big_result() {
    local got
    got="$(q -c "SELECT g, repeat('x', 20) FROM generate_series(1, 100000) g" 2>&1 | awk -F'|' '{n++; s += $1} END {printf "%d %.0f\n", n, s}')"
    same "$got" "100000 5000050000" "row count and sum" || return
    got="$(q -v FETCH_COUNT=5000 -c "SELECT g FROM generate_series(1, 100000) g" 2>&1 | awk '{n++; s += $1} END {printf "%d %.0f\n", n, s}')"
    same "$got" "100000 5000050000" "row count and sum with FETCH_COUNT=5000 (a cursor)"
}

c_cancel() {
    local started took rc pid out="$tmp/cancel.out"
    started=$(date +%s%N)
    "$PSQL" -X -q -A -t -c "SELECT pg_sleep(30)" >"$out" 2>&1 &
    pid=$!
    sleep 1
    kill -INT "$pid"
    wait "$pid"
    rc=$?
    took=$((($(date +%s%N) - started) / 1000000))
    [[ "$rc" != 0 ]] || { fail "pg_sleep(30) finished without being cancelled"; return; }
    grep -q "canceling statement due to user request" "$out" || { fail "psql exit $rc without the cancel error: $(cat "$out")"; return; }
    ((took < 10000)) || { fail "the cancel took ${took}ms"; return; }
    same "$(q -c "SELECT 'alive'" 2>&1)" "alive" "query after the cancel"
}

c_stmt_timeout_local() {
    local got
    got="$("$PSQL" -X -q -A -t -c "BEGIN" -c "SET LOCAL statement_timeout = '300ms'" -c "SELECT pg_sleep(5)" 2>&1)"
    [[ "$got" == *"canceling statement due to statement timeout"* ]] || { fail "no statement timeout: $got"; return; }
    same "$(q -c "SELECT pg_sleep(0.5)::text || 'ok'" 2>&1)" "ok" "the timeout ended with the transaction"
}

c_stmt_timeout_session() {
    local got i
    for ((i = 0; i < 3; i++)); do
        got="$(PGOPTIONS='-c statement_timeout=300' "$PSQL" -X -q -A -t -c "SELECT pg_sleep(3)" 2>&1)"
        [[ "$got" == *"statement timeout"* ]] || { fail "PGOPTIONS statement_timeout did not apply: $got"; return; }
    done
    got="$("$PSQL" -X -q -A -t -c "SET statement_timeout = '300ms'" -c "SELECT pg_sleep(3)" -c "SELECT pg_sleep(3)" 2>&1)"
    [[ "$(grep -c "statement timeout" <<<"$got")" == 2 ]] || { fail "session SET statement_timeout did not apply twice: $got"; return; }
    for ((i = 0; i < POOL_SIZE; i++)); do
        same "$(q -c "SHOW statement_timeout" 2>&1)" "0" "statement_timeout seen by another client" || return
    done
}

c_concurrent_20_pool_5() {
    local n i pids=() got
    got="$(q -c "DROP TABLE IF EXISTS ${T}_conc" -c "CREATE TABLE ${T}_conc (client int, i int, backends int)" 2>&1)" \
        || { fail "create: $got"; return; }
    for ((n = 0; n < 20; n++)); do
        {
            for ((i = 0; i < 5; i++)); do
                echo "BEGIN;"
                echo "INSERT INTO ${T}_conc SELECT $n, $i, count(*) FROM pg_stat_activity WHERE datname = current_database()
                      AND usename = current_user AND backend_type = 'client backend';"
                echo "SELECT pg_sleep(0.05);"
                echo "COMMIT;"
            done
        } >"$tmp/conc.$n.sql"
        q -f "$tmp/conc.$n.sql" >"$tmp/conc.$n.out" 2>&1 &
        pids+=($!)
    done
    for ((n = 0; n < 20; n++)); do
        wait "${pids[$n]}" || { fail "client $n: $(grep -v '^$' "$tmp/conc.$n.out" | head -n 2)"; return; }
    done
    got="$(q -c "SELECT count(*), count(DISTINCT client), max(backends) FROM ${T}_conc" 2>&1)"
    same "${got%|*}" "100|20" "rows written by 20 clients x 5 transactions" || return
    ((${got##*|} <= POOL_SIZE)) || fail "${got##*|} server connections at once, pool_size is $POOL_SIZE"
}

c_disconnect_in_txn() {
    # psql exits after its last -c even inside a transaction: PostgreSQL would end
    # that session and abort the transaction; the next client must start clean.
    local got i mode
    for mode in open failed; do
        # (Its output is checked: a client that never reached its transaction would
        # leave nothing behind, and the checks below would pass for nothing.)
        if [[ "$mode" == open ]]; then
            got="$("$PSQL" -X -q -A -t -c "BEGIN" -c "SELECT 1" 2>&1)" \
                || { fail "the client leaving an open transaction failed: $got"; return; }
        else
            got="$("$PSQL" -X -q -A -t -c "BEGIN" -c "SELECT 1 / 0" 2>&1)" || true
            [[ "$got" == *"division by zero"* ]] \
                || { fail "the client leaving a failed transaction did not fail in it: $got"; return; }
        fi
        for ((i = 0; i <= POOL_SIZE; i++)); do
            got="$("$PSQL" -X -q -A -t -c "SELECT now() = statement_timestamp()" 2>&1)"
            same "$got" "t" "client $i after a client left a $mode transaction (t = not inside a leftover transaction)" || return
        done
    done
}

# ---------------------------------------------------------------- sharded
shard_q() { PGPORT="$1" PGSSLMODE=disable q -c "$2"; }

c_shard_point_read() {
    local aid got
    for ((aid = 1; aid <= 20; aid++)); do
        got="$(q -c "SELECT balance, name FROM accounts WHERE aid = $aid" 2>&1)"
        same "$got" "$((10 * aid))|acct-$aid" "aid $aid" || return
    done
}

c_shard_point_write() {
    local base="${DRV_KEY_BASE:-1000000}" k i got on0 rows want
    IFS=, read -r -a ports <<<"${DRV_SHARD_PORTS:-}"
    for ((i = 0; i < 20; i++)); do
        got="$(q -c "INSERT INTO accounts (aid, balance, name) VALUES ($((base + i)), $((base + i)), 'w')" 2>&1)" \
            || { fail "insert $((base + i)): $got"; return; }
    done
    q -c "UPDATE accounts SET balance = balance + 1 WHERE aid = $((base + 3))" -c "DELETE FROM accounts WHERE aid = $((base + 5))" \
        >/dev/null 2>"$tmp/w.err" || { fail "update/delete: $(cat "$tmp/w.err")"; return; }
    for ((i = 0; i < 20; i++)); do
        k=$((base + i))
        want="$k"
        ((i == 3)) && want=$((k + 1))
        ((i == 5)) && want=""
        got="$(q -c "SELECT balance FROM accounts WHERE aid = $k" 2>&1)"
        same "$got" "$want" "aid $k read back through the router" || return
        on0="$(shard_q "${ports[0]}" "SELECT satisfies_hash_partition('drv_hashref'::regclass, 2, 0, $k::bigint)")"
        rows="$(shard_q "${ports[0]}" "SELECT count(*) FROM accounts WHERE aid = $k"),$(shard_q "${ports[1]}" "SELECT count(*) FROM accounts WHERE aid = $k")"
        want="0,1"
        [[ "$on0" == t ]] && want="1,0"
        ((i == 5)) && want="0,0"
        same "$rows" "$want" "aid $k: rows on shard 0,1" || return
    done
}

c_shard_fanout_aggregate() {
    same "$(q -c "SELECT count(*), sum(balance), min(aid), max(aid) FROM accounts WHERE aid BETWEEN 1 AND 1000" 2>&1)" \
        "1000|5005000|1|1000" "count/sum/min/max over both shards"
}

c_shard_order_limit() {
    same "$(q -c "SELECT aid FROM accounts WHERE aid <= 1000 ORDER BY aid DESC LIMIT 5" 2>&1 | paste -sd,)" \
        "1000,999,998,997,996" "ORDER BY aid DESC LIMIT 5"
}

if [[ "${DRV_TARGET:-single}" == single ]]; then
    cases=(connect_scram simple_reuse prepared_reuse types_text txn_commit_rollback txn_error_recovery copy_in_out
        big_result cancel stmt_timeout_local stmt_timeout_session concurrent_20_pool_5 disconnect_in_txn)
    [[ "${DRV_TLS:-0}" == 1 ]] && cases+=(verify_full_refuses)
else
    cases=(shard_point_read shard_point_write shard_fanout_aggregate shard_order_limit)
fi
echo "PLAN ${cases[*]}"
for case in "${cases[@]}"; do
    started=$(date +%s%N)
    if "c_$case"; then
        printf 'PASS %s (%d ms)\n' "$case" $((($(date +%s%N) - started) / 1000000))
    fi
done
