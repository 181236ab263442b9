#!/usr/bin/env bash
# demo.sh [up|stop|status] — a local two-shard Orochi Router to play with (`make run`, `make stop`).
#
# up (default): builds the router (release; OROCHI_ROUTER_BIN=path skips the
# build), starts two PostgreSQL shards demo_s0/demo_s1 on 127.0.0.1:25440/25441
# (testing/pg.sh), creates database `app` with
#   accounts(aid bigint primary key, balance bigint, name text)  sharded by aid
#   branches(bid int primary key, name text)                      replicated
# seeds 100 accounts, each on the shard PostgreSQL's own PARTITION BY HASH
# (MODULUS 2) picks (SPEC §3), and the same branches on both, writes
# .run/demo/orochi.toml (pool `app`, user app/secret, transaction mode) and
# starts the router in the background on 6543 (admin 6433, metrics 9091;
# 5432 is often taken by a system PostgreSQL). Log .run/demo/router.log, pid
# .run/demo/router.pid. Re-running restarts the router and keeps the data.
#
# The JWT gateway (SPEC §9) listens on 5433: a self-signed certificate
# (openssl), a dev Ed25519 key .run/demo/dev.pem and its JWKS (both made by
# `orochi-router token`), role app_user and table notes(tenant_id, id, body),
# distributed by tenant_id, with a row-level security policy on the token's
# claims. The last lines printed log in with a minted token.
#
# stop: stops the router and both demo shards.
# Env: OROCHI_DEMO_PORT (6543), OROCHI_DEMO_ADMIN_PORT (6433), OROCHI_DEMO_METRICS_PORT (9091),
#      OROCHI_DEMO_GATEWAY_PORT (5433), OROCHI_DEMO_SHARD_PORT (25440: shards on it and the next).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testing/lib.sh
source "$here/lib.sh"

demo="$PG_RUN_DIR/demo"
port="${OROCHI_DEMO_PORT:-6543}"
admin="${OROCHI_DEMO_ADMIN_PORT:-6433}"
metrics="${OROCHI_DEMO_METRICS_PORT:-9091}"
gateway="${OROCHI_DEMO_GATEWAY_PORT:-5433}"
shards=(demo_s0 demo_s1)
shard_base="${OROCHI_DEMO_SHARD_PORT:-25440}"
shard_ports=("$shard_base" "$((shard_base + 1))")
pidfile="$demo/router.pid"
log="$demo/router.log"
config="$demo/orochi.toml"

demo_stop() {
    router_stop "$pidfile"
    local s
    for s in "${shards[@]}"; do
        if pg_exists "$s"; then bash "$here/pg.sh" stop "$s"; fi
    done
    echo "demo: stopped"
}

demo_status() {
    if [[ -f "$pidfile" ]] && router_alive "$(cat "$pidfile")"; then
        echo "router: running (pid $(cat "$pidfile")) on 127.0.0.1:$port"
    else
        echo "router: not running"
    fi
    bash "$here/pg.sh" status | grep -E '^(NAME|demo_)' || true
}

demo_build() {
    if [[ -n "${OROCHI_ROUTER_BIN:-}" ]]; then
        router_bin "$OROCHI_ROUTER_BIN"
        return
    fi
    echo "demo: cargo build --release -p orochi-router" >&2
    (cd "$PG_ROOT_DIR" && cargo build --release -q -p orochi-router >&2)
    echo "${CARGO_TARGET_DIR:-$PG_ROOT_DIR/target}/release/orochi-router"
}

demo_schema() {
    local k="$1" name="${shards[$1]}"
    pg_psql "$name" -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT 'CREATE DATABASE app OWNER app' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app')
\gexec
SQL
    pg_psql "$name" -U app -d app -q -v ON_ERROR_STOP=1 -v shard="$k" -v shards="${#shards[@]}" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS branches (bid int PRIMARY KEY, name text NOT NULL);
INSERT INTO branches VALUES (1, 'Tokyo'), (2, 'Osaka'), (3, 'Kyoto'), (4, 'Sapporo')
    ON CONFLICT (bid) DO NOTHING;
CREATE TABLE IF NOT EXISTS accounts (aid bigint PRIMARY KEY, balance bigint NOT NULL DEFAULT 0, name text);
-- The router's placement rule is PostgreSQL's hash partitioning; ask it directly.
CREATE TEMP TABLE keyspace (aid bigint) PARTITION BY HASH (aid);
INSERT INTO accounts (aid, balance, name)
    SELECT g, 1000, 'account ' || g FROM generate_series(1, 100) AS g
    WHERE satisfies_hash_partition('keyspace'::regclass, :shards, :shard, g::bigint)
    ON CONFLICT (aid) DO NOTHING;
-- The JWT gateway's table: each tenant sees its own rows (RLS on the token's claims).
CREATE TABLE IF NOT EXISTS notes (tenant_id bigint NOT NULL, id int NOT NULL, body text,
                                  PRIMARY KEY (tenant_id, id));
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_rows ON notes;
CREATE POLICY tenant_rows ON notes
    USING (tenant_id = (current_setting('request.jwt.claims', true)::jsonb->>'tenant_id')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO app_user;
CREATE TEMP TABLE tenants (t bigint) PARTITION BY HASH (t);
INSERT INTO notes SELECT t, g, 'note ' || g || ' of tenant ' || t
    FROM generate_series(1, 50) AS t, generate_series(1, 3) AS g
    WHERE satisfies_hash_partition('tenants'::regclass, :shards, :shard, t::bigint)
    ON CONFLICT DO NOTHING;
SQL
}

# The gateway's database role (what tokens name), granted to the pool user `app`.
demo_roles() {
    pg_psql "$1" -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT 'CREATE ROLE app_user NOLOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_user')
\gexec
GRANT app_user TO app;
SQL
}

# A self-signed certificate for 127.0.0.1/localhost, a dev signing key and its JWKS.
demo_secrets() {
    local bin="$1"
    if [[ ! -s "$demo/server.crt" ]]; then
        command -v openssl >/dev/null || pg_die "openssl is needed for the demo's TLS certificate"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
            -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
            -keyout "$demo/server.key" -out "$demo/server.crt" >/dev/null 2>&1 \
            || pg_die "openssl could not make the demo certificate"
        chmod 600 "$demo/server.key"
    fi
    [[ -s "$demo/dev.pem" ]] || "$bin" token --generate-key --key "$demo/dev.pem"
    "$bin" token --key "$demo/dev.pem" --kid dev --print-jwks >"$demo/jwks.json"
}

demo_config() {
    cat >"$config" <<EOF
# Orochi Router demo: two local shards (written by testing/demo.sh; edit and re-run 'make run').
[general]
host = "127.0.0.1"
port = $port
admin_port = $admin
metrics_port = $metrics
admin_username = "admin"
admin_password = "admin"
tls_certificate = "$demo/server.crt"
tls_private_key = "$demo/server.key"

[pools.app]
pool_mode = "transaction"
sharding_function = "postgres_hash"

[pools.app.users.0]
username = "app"
password = "secret"
pool_size = 20

[pools.app.shards.0]
database = "app"
servers = [["127.0.0.1", ${shard_ports[0]}, "primary"]]

[pools.app.shards.1]
database = "app"
servers = [["127.0.0.1", ${shard_ports[1]}, "primary"]]

[sharding]
enabled = true

[[sharding.tables]]
name = "accounts"
column = "aid"
data_type = "bigint"

[[sharding.tables]]
name = "notes"
column = "tenant_id"
data_type = "bigint"

# The JWT gateway: the password is a token signed by dev.pem (jwks.json holds its public key).
[gateway]
port = $gateway
pool = "app"
jwks_file = "$demo/jwks.json"
issuer = "orochi-demo"
audience = "orochi"
user = "app"
role_claim = "role"
tenant_claim = "tenant_id"
leeway_seconds = 30
EOF
}

demo_up() {
    mkdir -p "$demo"
    local bin k
    bin="$(demo_build)"
    [[ -x "$bin" ]] || pg_die "router binary $bin missing after the build"
    router_stop "$pidfile"
    pg_port_busy "$gateway" && pg_die "port $gateway is already in use; set OROCHI_DEMO_GATEWAY_PORT"
    for k in "${!shards[@]}"; do
        bash "$here/pg.sh" init "${shards[$k]}" "${shard_ports[$k]}"
        bash "$here/pg.sh" start "${shards[$k]}"
        demo_roles "${shards[$k]}"
        demo_schema "$k"
    done
    demo_secrets "$bin"
    demo_config
    "$bin" check -c "$config" >&2 || pg_die "the router rejected $config"
    router_start "$bin" "$config" "$log" "$pidfile" "$port" "$admin" "$metrics"
    router_wait "$pidfile" "$port" "$log"
    local got
    if ! got="$(PGPASSWORD=secret PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$port" -U app -d app \
        -c 'SELECT count(*) FROM branches' 2>&1)"; then
        echo "$got" >&2
        tail -n 20 "$log" >&2
        pg_die "the router runs but a query through it failed (log: $log)"
    fi
    local mint="$bin token -c $config --key $demo/dev.pem --kid dev --role app_user --tenant 42"
    local gw_conn="host=127.0.0.1 port=$gateway sslmode=require user=app_user dbname=app"
    local seen
    # shellcheck disable=SC2086 # $mint is a command line
    if ! seen="$(PGPASSWORD="$($mint)" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -At "$gw_conn" \
        -c 'SELECT current_user, count(*) FROM notes' 2>&1)"; then
        echo "$seen" >&2
        tail -n 20 "$log" >&2
        pg_die "the JWT gateway runs but a login with a minted token failed (log: $log)"
    fi
    cat <<EOF

Orochi Router demo is up (pid $(cat "$pidfile"); log $log; config $config).
  shards:   127.0.0.1:${shard_ports[0]} and 127.0.0.1:${shard_ports[1]}, database app
  tables:   accounts (sharded by aid, 100 rows), branches (replicated, $got rows)

Connect:
  PGPASSWORD=secret psql -h 127.0.0.1 -p $port -U app app
  psql "postgresql://app:secret@127.0.0.1:$port/app"
A sharded session (keys route to their shard; other reads fan out and merge):
  PGPASSWORD=secret psql -h 127.0.0.1 -p $port -U app app -c "SELECT * FROM accounts WHERE aid = 42"
  PGPASSWORD=secret psql -h 127.0.0.1 -p $port -U app app -c "SELECT count(*), sum(balance), avg(balance) FROM accounts"
  PGPASSWORD=secret psql -h 127.0.0.1 -p $port -U app app -c "SELECT aid, name FROM accounts ORDER BY aid DESC LIMIT 5"
  PGPASSWORD=secret psql -h 127.0.0.1 -p $port -U app app -c "SELECT b.name, count(*) FROM accounts a JOIN branches b ON b.bid = a.aid % 4 + 1 GROUP BY b.name ORDER BY 1"
  printf '1001,7,csv one\n1002,8,csv two\n' | PGPASSWORD=secret psql -h 127.0.0.1 -p $port -U app app -c "\\copy accounts FROM STDIN CSV"   # rows split per shard, committed together
  $bin shard-for -c $config --table accounts 42            # which shard holds aid 42
  PGPASSWORD=secret psql -h 127.0.0.1 -p $port -U app app -c "SELECT count(DISTINCT name) FROM accounts"   # rows gathered from every shard, answered on one
Admin console:
  PGPASSWORD=admin psql -h 127.0.0.1 -p $admin -U admin orochi      (SHOW POOLS; SHOW SHARDS;)
Metrics:
  curl -s http://127.0.0.1:$metrics/metrics
JWT gateway (TLS; the password is a token for role app_user, tenant 42; it sees $seen):
  PGPASSWORD=\$($mint) psql "$gw_conn"
  PGPASSWORD=\$($mint) psql "$gw_conn" -c "SELECT current_setting('request.jwt.claims', true), * FROM notes"
  $bin token --key $demo/dev.pem --kid dev --print-jwks     # the JWKS the gateway reads ($demo/jwks.json)
A shard directly:
  testing/pg.sh psql demo_s0 -d app
Stop:
  make stop
EOF
}

case "${1:-up}" in
    up) demo_up ;;
    stop) demo_stop ;;
    status) demo_status ;;
    *) echo "usage: $0 [up|stop|status]" >&2; exit 2 ;;
esac
