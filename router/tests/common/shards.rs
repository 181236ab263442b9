//! Two real shards (the fleet's s0 and s1) with a database holding `users` (sharded by
//! `id`, rows placed where PostgreSQL's hash partitioning puts them) and `cities`
//! (replicated), and router configs for them (users `app` and the trust user for raw
//! protocol clients).

use super::*;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Row};

pub const ROWS: i64 = 200;

pub fn shard_opts(k: usize, user: &str, password: &str, db: &str) -> PgConnectOptions {
    let (host, port) = &fleet().shards[k];
    PgConnectOptions::new_without_pgpass()
        .host(host)
        .port(*port)
        .username(user)
        .password(password)
        .database(db)
        .ssl_mode(PgSslMode::Disable)
}

pub fn shard_of(id: i64) -> usize {
    orochi_sharding::shard_for(&orochi_sharding::ShardKey::Int(id), 2).unwrap()
}

/// A database on shards 0 and 1 with `users` (sharded by id) and `cities` (replicated).
/// A database with the data on both shards and an in-process router in front.
pub async fn cluster(extra: &str) -> (Router, String) {
    let db = two_shard_db().await;
    (Router::start(&pool_toml_two_shards(&db, extra)).await, db)
}

/// Creates the database on both shards and loads it.
pub async fn two_shard_db() -> String {
    shard_db("sh", &[], |k| {
        format!(
            "CREATE TABLE users (id bigint PRIMARY KEY, name text, score numeric(10,2), city text);
             CREATE TABLE cities (name text PRIMARY KEY, country text);
             INSERT INTO cities VALUES ('Tokyo', 'JP'), ('Osaka', 'JP'), ('Paris', 'FR');
             CREATE TEMP TABLE ks (id bigint) PARTITION BY HASH (id);
             INSERT INTO users SELECT g, 'user' || g, g * 1.25, (ARRAY['Tokyo','Osaka','Paris'])[1 + g % 3]
               FROM generate_series(1, {ROWS}) g
              WHERE satisfies_hash_partition('ks'::regclass, 2, {k}, g::bigint);"
        )
    })
    .await
}

/// A fresh database `<prefix>_<pid>_<n>` (owner `app`) on shards 0 and 1: `admin` runs
/// as the superuser once it exists, then `load(k)` as `app` in it on shard k.
pub async fn shard_db(prefix: &str, admin: &[String], load: impl Fn(usize) -> String) -> String {
    let db = format!("{prefix}_{}_{}", std::process::id(), rand_suffix());
    for k in 0..2 {
        let mut su = shard_opts(k, SUPERUSER, SUPERUSER_PASSWORD, "postgres")
            .connect()
            .await
            .unwrap();
        // A database of this name is left by an earlier test process with the same pid
        // (one statement each: CREATE DATABASE refuses an implicit transaction).
        let create = [
            format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"),
            format!("CREATE DATABASE \"{db}\" OWNER app"),
        ];
        for sql in create.iter().chain(admin) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut su)
                .await
                .unwrap();
        }
        let mut c = shard_opts(k, APP_USER, APP_PASSWORD, &db)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(load(k)))
            .execute(&mut c)
            .await
            .unwrap();
    }
    db
}

/// The pool (named like the database) over both shards; `extra` goes in `[sharding]`.
pub fn pool_toml_two_shards(db: &str, extra: &str) -> String {
    let f = fleet();
    format!(
        r#"
[pools.{db}]
pool_mode = "transaction"

[pools.{db}.users.0]
username = "{APP_USER}"
password = "{APP_PASSWORD}"
pool_size = 4

[pools.{db}.users.1]
username = "{TRUST_USER}"
auth_type = "trust"
server_username = "{APP_USER}"
server_password = "{APP_PASSWORD}"
pool_size = 2

[pools.{db}.shards.0]
database = "{db}"
servers = [["{h0}", {p0}, "primary"]]

[pools.{db}.shards.1]
database = "{db}"
servers = [["{h1}", {p1}, "primary"]]

[sharding]
enabled = true
{extra}

[[sharding.tables]]
name = "users"
column = "id"
data_type = "bigint"
"#,
        h0 = f.shards[0].0,
        p0 = f.shards[0].1,
        h1 = f.shards[1].0,
        p1 = f.shards[1].1,
    )
}

pub fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Every row of a simple-protocol query, each column as text (NULL as "").
pub async fn answer(
    c: &mut sqlx::PgConnection,
    sql: &str,
) -> Result<Vec<Vec<String>>, sqlx::Error> {
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut *c)
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.try_get::<Option<String>, _>(i)
                        .unwrap()
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect())
}

/// All the rows of both shards of `two_shard_db` in one plain database on shard 0's
/// server: the reference a sharded answer must equal.
pub async fn one_database(db: &str) -> sqlx::PgConnection {
    let name = format!("{db}_ref");
    let mut su = shard_opts(0, SUPERUSER, SUPERUSER_PASSWORD, "postgres")
        .connect()
        .await
        .unwrap();
    exec(
        &mut su,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
    .await;
    exec(&mut su, &format!("CREATE DATABASE \"{name}\" OWNER app")).await;
    let mut c = shard_opts(0, APP_USER, APP_PASSWORD, &name)
        .connect()
        .await
        .unwrap();
    exec(
        &mut c,
        &format!(
            "CREATE TABLE users (id bigint PRIMARY KEY, name text, score numeric(10,2), city text);
             CREATE TABLE cities (name text PRIMARY KEY, country text);
             INSERT INTO cities VALUES ('Tokyo', 'JP'), ('Osaka', 'JP'), ('Paris', 'FR');
             INSERT INTO users SELECT g, 'user' || g, g * 1.25, (ARRAY['Tokyo','Osaka','Paris'])[1 + g % 3]
               FROM generate_series(1, {ROWS}) g"
        ),
    )
    .await;
    c
}
