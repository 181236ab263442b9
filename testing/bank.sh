#!/usr/bin/env bash
# bank.sh [ROUTER_BIN] — the bank test of issue #4 (`make test-bank`; CI runs it):
# 16 clients transfer money between 1,000 accounts on 4 shards for BANK_SECONDS
# (default 60) while the router is SIGKILLed and restarted every 2-4 s and one shard
# gets `pg_ctl restart -m immediate` midway; then a clean router's recovery sweeper
# runs and every invariant of atomic commit is checked on the shards directly
# (testing/bank/bank.py). Prints attempted / committed / failed / unknown counts.
# Meanwhile an attacker (testing/bank/attack.py) tries to split or stall the two-phase
# commits through the router and directly on the shards; every attempt must be refused.
# Env: BANK_SECONDS (60), BANK_CLIENTS (16), BANK_ATTACK (1; 0 runs without the
# attacker). Logs: .run/bank/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"
work="$PG_RUN_DIR/bank"
venv="$PG_RUN_DIR/drivers-venv"
mkdir -p "$work"
: >"$work/router.log"
ensure_psycopg "$venv" "$work" bank
bin="$(router_bin "${1:-}")"
fleet="$(bash "$here/pg.sh" fleet-up)"
shard_addrs="$(sed -n 's/^OROCHI_PG_SHARDS=//p' <<<"$fleet")"
[[ -n "$shard_addrs" ]] || pg_die "bank: pg.sh fleet-up printed no OROCHI_PG_SHARDS"
read -r port admin metrics < <(free_ports 3)
attack=""
[[ "${BANK_ATTACK:-1}" == 1 ]] && attack=1
echo "bank: router $bin on 127.0.0.1:$port, shards $shard_addrs (log $work/router.log)"
OROCHI_PG_BINDIR="$PG_BIN" timeout -k 10 "$((${BANK_SECONDS:-60} + 240))" "$venv/bin/python" "$here/bank/bank.py" \
    --router "$bin" --shards "$shard_addrs" --shard-names s0,s1,s2,s3 --pgsh "$here/pg.sh" --work "$work" \
    --ports "$port,$admin,$metrics" --duration "${BANK_SECONDS:-60}" --clients "${BANK_CLIENTS:-16}" \
    ${attack:+--attack}
