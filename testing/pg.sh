#!/usr/bin/env bash
# pg.sh — run throw-away PostgreSQL instances on 127.0.0.1 for tests, the demo
# and benchmarks. A CLI, and a library when sourced (`source testing/pg.sh`
# defines the pg_* functions and runs nothing).
#
#   pg.sh init NAME PORT              initdb once (later calls only fix the port)
#   pg.sh start NAME | stop NAME      start (waits until it accepts) / fast stop
#   pg.sh replica NAME PRIMARY PORT   streaming replica of PRIMARY (pg_basebackup -R), started
#   pg.sh promote NAME                promote a running replica to primary (pg_ctl promote -w)
#   pg.sh clone NAME SOURCE PORT      a copy of SOURCE's data directory (SOURCE stopped while
#                                     copied), started: same system identifier and database
#                                     oids, as a VM or volume snapshot gives
#   pg.sh repoint NAME PRIMARY        make replica NAME stream from PRIMARY (after a promotion;
#                                     it follows the new timeline: recovery_target_timeline=latest)
#   pg.sh psql NAME [psql args]       psql as superuser over the instance's unix socket
#   pg.sh status | stop-all           list instances / stop every instance
#   pg.sh destroy NAME                stop and delete an instance
#   pg.sh port NAME | dir NAME        print an instance's port / directory
#   pg.sh fleet-up | fleet-down       the standard test fleet (below)
#   pg.sh fleet-trim                  drop the scratch databases the suites left in it
#
# Where things live. Instances are under $ROOT/.run/pg/NAME/ (ROOT = the repo
# root): data/ (PGDATA), postgres.log, and the unix socket. PostgreSQL refuses
# to run as root, so when we are root every server command runs as the
# `postgres` user (runuser) and .run/pg belongs to postgres. If postgres cannot
# traverse the path to the repo (e.g. a checkout under /root), or the path is
# too long for a unix socket name, .run/pg is instead a symlink to
# /tmp/orochi-<hash of ROOT>/pg. As a normal user everything runs as you.
#
# Every instance: listen_addresses=127.0.0.1, fsync/synchronous_commit/
# full_page_writes off (test speed, not durability), max_connections=600,
# max_prepared_transactions=100, wal_level=replica. Authentication: trust on
# the unix socket; on 127.0.0.1 SCRAM, except md5 for role md5user. Roles:
# postgres/postgres (superuser), app/secret (SCRAM, CREATEDB, owns database
# `app`), md5user/md5pass (password stored as md5).
#
# The fleet (fleet-up; idempotent; serialised with flock so parallel test
# binaries can all call it): `single` on $OROCHI_PG_BASE_PORT (default 15432)
# and `s0`..`s3` on BASE+8..BASE+11. It writes $ROOT/.run/fleet.env and prints it:
#   OROCHI_PG_SINGLE=127.0.0.1:15432
#   OROCHI_PG_SHARDS=127.0.0.1:15440,127.0.0.1:15441,127.0.0.1:15442,127.0.0.1:15443
#   OROCHI_PG_TLS=127.0.0.1:15444
# `tls` (BASE+12) is for the TLS tests: its pg_hba.conf admits role tlsapp/tlssecret
# over `hostssl` only. It starts with ssl off; the tests write certificates they make
# into its data directory and turn ssl on (ALTER SYSTEM, reload).
# A port held by anything other than the instance itself is a clear error.

PG_ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_RUN_DIR="$PG_ROOT_DIR/.run"
PG_BIN="${PG_BIN:-$(pg_config --bindir 2>/dev/null || true)}"
[[ -x "$PG_BIN/initdb" ]] || PG_BIN=/usr/lib/postgresql/15/bin
PG_SHARD_COUNT=4

pg_die() { echo "pg.sh: $*" >&2; exit 1; }
pg_log() { echo "pg.sh: $*" >&2; }

pg_is_root() { [[ "$(id -u)" == 0 ]]; }

# Run a command as the user that owns the PostgreSQL processes, from a
# directory it can read (runuser keeps the caller's cwd). Every descriptor
# above stderr is closed first: a server started here must not inherit (and
# hold for its lifetime) a flock of ours or of a script that sourced us.
pg_as() {
    (
        local fd
        for fd in "/proc/$BASHPID/fd/"*; do
            fd="${fd##*/}"
            ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
        done
        cd /
        if pg_is_root; then
            exec runuser -u postgres -- "$@"
        else
            exec "$@"
        fi
    )
}

# Write stdin to FILE as the owner of the instances.
pg_write() { pg_as tee "$1" >/dev/null; }

# The directory holding all instances; created (and its location decided) on first use.
pg_root() {
    local link="$PG_RUN_DIR/pg"
    mkdir -p "$PG_RUN_DIR"
    if [[ -L "$link" ]]; then
        local target
        target="$(readlink "$link")"
        # /tmp may have been emptied since (reboot): recreate the target.
        pg_make_root_dir "$target"
        echo "$target"
        return
    fi
    if [[ ! -d "$link" ]]; then
        # 60 bytes left for "/NAME/.s.PGSQL.PORT" within the 107-byte socket path limit.
        if (( ${#link} > 60 )) || { pg_is_root && ! runuser -u postgres -- test -x "$PG_RUN_DIR"; }; then
            local target
            target="/tmp/orochi-$(printf %s "$PG_ROOT_DIR" | sha1sum | cut -c1-12)/pg"
            pg_make_root_dir "$target"
            ln -sfn "$target" "$link"
            pg_log "postgres cannot use $PG_RUN_DIR directly; instances live in $target (symlinked from $link)"
            echo "$target"
            return
        fi
    fi
    pg_make_root_dir "$link"
    echo "$link"
}

pg_make_root_dir() {
    mkdir -p "$1"
    if pg_is_root; then
        chown postgres:postgres "$1"
        # The parent of a /tmp fallback must be traversable too.
        [[ "$1" == /tmp/orochi-* ]] && chmod 755 "$(dirname "$1")"
    fi
    chmod 755 "$1"
}

pg_dir() { echo "$(pg_root)/$1"; }

pg_exists() { [[ -f "$(pg_dir "$1")/data/PG_VERSION" ]]; }

pg_port() {
    local conf
    conf="$(pg_dir "$1")/data/orochi.conf"
    [[ -f "$conf" ]] || pg_die "instance '$1' is not initialised (run: pg.sh init $1 PORT)"
    sed -n 's/^port = \([0-9]*\)$/\1/p' "$conf"
}

pg_running() {
    pg_exists "$1" || return 1
    pg_as "$PG_BIN/pg_ctl" -D "$(pg_dir "$1")/data" status >/dev/null 2>&1
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
pg_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_check_name() {
    [[ "$1" =~ ^[A-Za-z0-9_-]{1,24}$ ]] || pg_die "bad instance name '$1' (letters, digits, _ and -, at most 24)"
}

pg_check_port() {
    if ! [[ "$1" =~ ^[0-9]+$ ]] || ! (( $1 > 0 && $1 < 65536 )); then pg_die "bad port '$1'"; fi
}

# The settings we own; rewritten on every init so a port change takes effect.
pg_write_conf() {
    local name="$1" port="$2" dir
    dir="$(pg_dir "$name")"
    pg_write "$dir/data/orochi.conf" <<EOF
# Written by testing/pg.sh; rewritten by 'pg.sh init'. Test settings, not for production.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 600
max_prepared_transactions = 100
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
password_encryption = 'scram-sha-256'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
}

pg_write_hba() {
    pg_write "$(pg_dir "$1")/data/pg_hba.conf" <<'EOF'
# Written by testing/pg.sh.
# TYPE  DATABASE     USER     ADDRESS        METHOD
local   all          all                     trust
local   replication  all                     trust
host    all          md5user  127.0.0.1/32   md5
host    all          all      127.0.0.1/32   scram-sha-256
host    replication  all      127.0.0.1/32   scram-sha-256
EOF
}

# Make an existing instance use PORT (stopping it first if it runs elsewhere).
pg_set_port() {
    local name="$1" port="$2" old
    old="$(pg_port "$name")"
    if [[ "$old" != "$port" ]]; then
        pg_log "$name: moving from port $old to $port"
        if pg_running "$name"; then pg_stop "$name"; fi
        pg_write_conf "$name" "$port"
    fi
}

# init NAME PORT: initdb once; afterwards only make sure the port is PORT.
pg_init() {
    local name="$1" port="$2" dir
    pg_check_name "$name"
    pg_check_port "$port"
    dir="$(pg_dir "$name")"
    if pg_exists "$name"; then
        pg_set_port "$name" "$port"
        return 0
    fi
    pg_log "$name: initdb (port $port)"
    pg_as mkdir -p "$dir"
    pg_as chmod 755 "$dir"
    pg_as rm -rf "$dir/data" "$dir/data.tmp" "$dir/.roles-done"
    printf 'postgres\n' | pg_write "$dir/pwfile"
    if ! pg_as "$PG_BIN/initdb" -D "$dir/data.tmp" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 --pwfile="$dir/pwfile" \
        --no-sync --no-instructions >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        pg_die "$name: initdb failed"
    fi
    pg_as rm -f "$dir/pwfile"
    pg_as mv "$dir/data.tmp" "$dir/data"
    echo "include 'orochi.conf'" | pg_as tee -a "$dir/data/postgresql.conf" >/dev/null
    pg_write_conf "$name" "$port"
    pg_write_hba "$name"
}

# Roles and grants on a primary; once per instance.
pg_bootstrap() {
    local name="$1" dir
    dir="$(pg_dir "$name")"
    [[ -f "$dir/.roles-done" || -f "$dir/data/standby.signal" ]] && return 0
    # (Checked here: callers run pg_start in conditions, where set -e is off.)
    if ! pg_psql "$name" -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
SET password_encryption = 'scram-sha-256';
ALTER ROLE postgres PASSWORD 'postgres';
DO $$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app LOGIN CREATEDB; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'md5user') THEN CREATE ROLE md5user LOGIN; END IF;
END$$;
ALTER ROLE app PASSWORD 'secret';
SET password_encryption = 'md5';
ALTER ROLE md5user PASSWORD 'md5pass';
GRANT CREATE ON DATABASE postgres TO app, md5user;
GRANT CREATE ON SCHEMA public TO app, md5user;
SELECT 'CREATE DATABASE app OWNER app' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app')
\gexec
\c template1
GRANT CREATE ON SCHEMA public TO app, md5user;
SQL
    then
        pg_die "$name: creating the test roles and databases failed"
    fi
    pg_as touch "$dir/.roles-done"
}

pg_start() {
    local name="$1" dir port
    pg_exists "$name" || pg_die "instance '$name' is not initialised (run: pg.sh init $name PORT)"
    dir="$(pg_dir "$name")"
    port="$(pg_port "$name")"
    if ! pg_running "$name"; then
        if pg_port_busy "$port"; then
            pg_die "$name: port $port is already in use by another process; free it or pick another port (OROCHI_PG_BASE_PORT for the fleet)"
        fi
        if ! pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -s start >/dev/null 2>&1; then
            tail -n 20 "$dir/postgres.log" >&2 || true
            pg_die "$name: failed to start on port $port (log: $dir/postgres.log)"
        fi
        pg_log "$name: started on 127.0.0.1:$port"
    fi
    pg_bootstrap "$name"
}

pg_stop() {
    local name="$1"
    pg_exists "$name" || pg_die "no instance '$name'"
    if pg_running "$name"; then
        pg_as "$PG_BIN/pg_ctl" -D "$(pg_dir "$name")/data" -m fast -w -t 60 -s stop
        pg_log "$name: stopped"
    fi
}

# psql as the superuser over the unix socket; args go to psql and may override
# the database (-d) or user (-U).
pg_psql() {
    local name="$1"
    shift
    pg_exists "$name" || pg_die "no instance '$name'"
    PGHOST="$(pg_dir "$name")" PGPORT="$(pg_port "$name")" PGUSER=postgres PGDATABASE=postgres \
        "$PG_BIN/psql" -X "$@"
}

# replica NAME PRIMARY PORT: a streaming replica of PRIMARY, started.
pg_replica() {
    local name="$1" primary="$2" port="$3" dir pport
    pg_check_name "$name"
    pg_check_port "$port"
    if ! pg_exists "$name"; then
        pg_exists "$primary" || pg_die "primary '$primary' is not initialised"
        pg_start "$primary"
        pport="$(pg_port "$primary")"
        dir="$(pg_dir "$name")"
        pg_log "$name: pg_basebackup from $primary (127.0.0.1:$pport)"
        pg_as mkdir -p "$dir"
        pg_as chmod 755 "$dir"
        pg_as rm -rf "$dir/data" "$dir/data.tmp" "$dir/.roles-done"
        if ! PGPASSWORD=postgres pg_as "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres \
            -D "$dir/data.tmp" -R -X stream -c fast --no-sync >"$dir/basebackup.log" 2>&1; then
            cat "$dir/basebackup.log" >&2
            pg_die "$name: pg_basebackup from $primary failed"
        fi
        pg_as mv "$dir/data.tmp" "$dir/data"
        pg_write_conf "$name" "$port"
    else
        [[ -f "$(pg_dir "$name")/data/standby.signal" ]] || pg_log "$name: note: exists and is not a standby (promoted?)"
        pg_set_port "$name" "$port"
        local log seen=0
        log="$(pg_dir "$name")/postgres.log"
        [[ -f "$log" ]] && seen="$(stat -c %s "$log")"
        pg_start "$name"
        if pg_replica_stale "$name" "$seen"; then
            pg_log "$name: $primary no longer has the WAL this replica needs; taking a new base backup"
            pg_destroy "$name"
            pg_replica "$name" "$primary" "$port"
        fi
        return 0
    fi
    pg_start "$name"
}

# pg_replica_stale NAME LOG_OFFSET: true when the (just started) standby NAME cannot catch
# up because its primary removed the WAL it needs (it was down while the primary wrote
# past wal_keep_size): it would wait forever, and tests reading from it would time out.
# Looks at what the server logged since LOG_OFFSET (it retries every 5 s), for up to 7 s
# or until it streams.
pg_replica_stale() {
    local name="$1" from="$2" log i
    [[ -f "$(pg_dir "$name")/data/standby.signal" ]] || return 1
    log="$(pg_dir "$name")/postgres.log"
    for ((i = 0; i < 70; i++)); do
        tail -c +"$((from + 1))" "$log" 2>/dev/null | grep -q "has already been removed" && return 0
        [[ "$(pg_psql "$name" -Atc "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null)" == streaming ]] && return 1
        sleep 0.1
    done
    return 1
}

# clone NAME SOURCE PORT: copy SOURCE's (stopped) data directory, start the copy.
pg_clone() {
    local name="$1" source="$2" port="$3" dir sdir was_running=0
    pg_check_name "$name"
    pg_check_port "$port"
    if ! pg_exists "$name"; then
        pg_exists "$source" || pg_die "source '$source' is not initialised"
        [[ -f "$(pg_dir "$source")/data/standby.signal" ]] && pg_die "$source: is a replica; clone a primary"
        if pg_running "$source"; then
            was_running=1
            pg_stop "$source"
        fi
        dir="$(pg_dir "$name")"
        sdir="$(pg_dir "$source")"
        pg_log "$name: copy of $source's data directory"
        pg_as mkdir -p "$dir"
        pg_as chmod 755 "$dir"
        pg_as rm -rf "$dir/data" "$dir/data.tmp" "$dir/.roles-done"
        pg_as cp -a "$sdir/data" "$dir/data.tmp"
        pg_as rm -f "$dir/data.tmp/postmaster.pid"
        pg_as mv "$dir/data.tmp" "$dir/data"
        if [[ -f "$sdir/.roles-done" ]]; then pg_as touch "$dir/.roles-done"; fi
        pg_write_conf "$name" "$port"
        if ((was_running)); then pg_start "$source"; fi
    else
        pg_set_port "$name" "$port"
    fi
    pg_start "$name"
}

pg_promote() {
    local name="$1"
    pg_exists "$name" || pg_die "no instance '$name'"
    pg_running "$name" || pg_die "$name: not running"
    [[ -f "$(pg_dir "$name")/data/standby.signal" ]] || pg_die "$name: not a replica"
    if ! pg_as "$PG_BIN/pg_ctl" -D "$(pg_dir "$name")/data" -w -t 60 -s promote; then
        pg_die "$name: promote failed (log: $(pg_dir "$name")/postgres.log)"
    fi
    pg_log "$name: promoted to primary"
}

pg_repoint() {
    local name="$1" primary="$2" pport
    pg_exists "$name" || pg_die "no instance '$name'"
    pport="$(pg_port "$primary")"
    pg_psql "$name" -q -v ON_ERROR_STOP=1 \
        -c "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=$pport user=postgres password=postgres application_name=$name'" \
        -c "SELECT pg_reload_conf()" >/dev/null || pg_die "$name: could not repoint to $primary"
    pg_log "$name: now streams from $primary (127.0.0.1:$pport)"
}

pg_destroy() {
    local name="$1"
    pg_check_name "$name"
    if pg_exists "$name"; then pg_stop "$name"; fi
    pg_as rm -rf "$(pg_dir "$name")"
    rm -rf "$(pg_dir "$name")"
}

pg_instances() {
    local root d
    root="$(pg_root)"
    for d in "$root"/*/data/PG_VERSION; do
        [[ -e "$d" ]] || continue
        d="${d%/data/PG_VERSION}"
        echo "${d##*/}"
    done
}

pg_status() {
    local name role state
    printf '%-16s %-6s %-8s %-8s %s\n' NAME PORT ROLE STATE DIR
    for name in $(pg_instances); do
        role=primary
        [[ -f "$(pg_dir "$name")/data/standby.signal" ]] && role=replica
        state=stopped
        pg_running "$name" && state=running
        printf '%-16s %-6s %-8s %-8s %s\n' "$name" "$(pg_port "$name")" "$role" "$state" "$(pg_dir "$name")"
    done
}

pg_stop_all() {
    local name
    for name in $(pg_instances); do
        pg_stop "$name"
    done
}

pg_fleet_names() {
    local i
    echo single
    for ((i = 0; i < PG_SHARD_COUNT; i++)); do echo "s$i"; done
    echo tls
}

pg_fleet_port() {
    local base="${OROCHI_PG_BASE_PORT:-15432}"
    pg_check_port "$base"
    case "$1" in
        single) echo "$base" ;;
        tls) echo $((base + 12)) ;;
        s*) echo $((base + 8 + ${1#s})) ;;
    esac
}

pg_fleet_up() {
    local name shards=() env="$PG_RUN_DIR/fleet.env"
    for name in $(pg_fleet_names); do
        pg_init "$name" "$(pg_fleet_port "$name")"
        pg_start "$name"
        case "$name" in
            single) ;;
            tls) pg_tls_setup "$name" ;;
            *) shards+=("127.0.0.1:$(pg_fleet_port "$name")") ;;
        esac
    done
    local IFS=,
    cat >"$env.tmp" <<EOF
OROCHI_PG_SINGLE=127.0.0.1:$(pg_fleet_port single)
OROCHI_PG_SHARDS=${shards[*]}
OROCHI_PG_TLS=127.0.0.1:$(pg_fleet_port tls)
OROCHI_PG_SUPERUSER=postgres
OROCHI_PG_SUPERUSER_PASSWORD=postgres
OROCHI_PG_APP_USER=app
OROCHI_PG_APP_PASSWORD=secret
OROCHI_PG_BINDIR=$PG_BIN
EOF
    mv "$env.tmp" "$env"
    cat "$env"
}

# The TLS instance: role tlsapp may log in over TLS only (hostssl); the superuser and
# app over anything, so tests can turn ssl on. Idempotent.
pg_tls_setup() {
    local name="$1"
    pg_write "$(pg_dir "$name")/data/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       all                      trust
hostssl all       tlsapp    127.0.0.1/32   scram-sha-256
hostssl all       tlsapp    ::1/128        scram-sha-256
host    all       postgres  127.0.0.1/32   scram-sha-256
host    all       app       127.0.0.1/32   scram-sha-256
EOF
    pg_psql "$name" -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
DO $$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tlsapp') THEN CREATE ROLE tlsapp LOGIN; END IF;
END$$;
SET password_encryption = 'scram-sha-256';
ALTER ROLE tlsapp PASSWORD 'tlssecret';
SELECT pg_reload_conf();
SQL
}

# The test suites make a scratch database per test and leave it (a failed test's
# data is worth reading); on a CI disk they add up to gigabytes. fleet-trim drops
# every database of the running fleet instances but postgres, app and the
# templates, so the suites after make test start from the fleet's own state.
pg_fleet_trim() {
    local name db
    for name in $(pg_fleet_names); do
        { pg_exists "$name" && pg_running "$name"; } || continue
        while read -r db; do
            [[ -n "$db" ]] || continue
            pg_psql "$name" -q -c "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
                pg_log "$name: could not drop $db"
        done < <(pg_psql "$name" -Atc "SELECT datname FROM pg_database
            WHERE datname NOT IN ('postgres', 'app', 'template0', 'template1')")
        pg_psql "$name" -q -c CHECKPOINT >/dev/null 2>&1 || true
    done
}

pg_fleet_down() {
    local name
    for name in $(pg_fleet_names); do
        pg_exists "$name" && pg_stop "$name"
    done
    rm -f "$PG_RUN_DIR/fleet.env"
}

# Serialise every command that changes instances: test binaries run in parallel.
pg_lock() {
    mkdir -p "$PG_RUN_DIR"
    exec 9>"$PG_RUN_DIR/pg-cmd.lock"
    flock -w 300 9 || pg_die "timed out waiting for $PG_RUN_DIR/pg-cmd.lock"
}

pg_usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

pg_main() {
    set -euo pipefail
    [[ -x "$PG_BIN/initdb" ]] || pg_die "PostgreSQL binaries not found (run testing/install-deps.sh)"
    local cmd="${1:-}"
    (($#)) && shift
    case "$cmd" in
        init) (($# == 2)) || pg_usage; pg_lock; pg_init "$1" "$2" ;;
        start) (($# == 1)) || pg_usage; pg_lock; pg_start "$1" ;;
        stop) (($# == 1)) || pg_usage; pg_lock; pg_stop "$1" ;;
        replica) (($# == 3)) || pg_usage; pg_lock; pg_replica "$1" "$2" "$3" ;;
        promote) (($# == 1)) || pg_usage; pg_lock; pg_promote "$1" ;;
        clone) (($# == 3)) || pg_usage; pg_lock; pg_clone "$1" "$2" "$3" ;;
        repoint) (($# == 2)) || pg_usage; pg_lock; pg_repoint "$1" "$2" ;;
        psql) (($# >= 1)) || pg_usage; pg_psql "$@" ;;
        port) (($# == 1)) || pg_usage; pg_port "$1" ;;
        dir) (($# == 1)) || pg_usage; pg_dir "$1" ;;
        destroy) (($# == 1)) || pg_usage; pg_lock; pg_destroy "$1" ;;
        status) pg_status ;;
        stop-all) pg_lock; pg_stop_all ;;
        fleet-up) pg_lock; pg_fleet_up ;;
        fleet-down) pg_lock; pg_fleet_down ;;
        fleet-trim) pg_lock; pg_fleet_trim ;;
        *) pg_usage ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    pg_main "$@"
fi
