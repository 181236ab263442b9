//! Shards made from one image are distinct servers (issue 20 item 2): copies of one
//! initdb'd data directory, and a streaming replica promoted beside its primary, share
//! `pg_control_system()`'s system identifier and their databases' oids, yet each serves
//! one-shard and multi-shard statements (two-phase commit included). Instances come from
//! `testing/pg.sh` (`clone`, `replica`, `promote`) on ports above the fleet's.

mod common;

use common::*;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::ConnectOptions;

fn base_port() -> u16 {
    std::env::var("OROCHI_PG_BASE_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(15432)
}

fn pg_sh(args: &[&str]) {
    let _ = fleet(); // same directories and the same PostgreSQL binaries
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("testing/pg.sh"))
        .args(args)
        .output()
        .expect("run testing/pg.sh");
    assert!(
        out.status.success(),
        "pg.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn opts(port: u16, user: &str, password: &str) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username(user)
        .password(password)
        .database("app")
        .ssl_mode(PgSslMode::Disable)
}

async fn identity(port: u16) -> String {
    let mut c = opts(port, SUPERUSER, SUPERUSER_PASSWORD)
        .connect()
        .await
        .unwrap();
    sqlx::query_scalar("SELECT system_identifier::text || '/' || (SELECT oid FROM pg_database WHERE datname = 'app')::text FROM pg_control_system()")
        .fetch_one(&mut c)
        .await
        .unwrap()
}

/// A table sharded by id over the two servers (in their common database `app`, which
/// both have from the image), and a router over them.
async fn serve(ports: [u16; 2], tag: &str) {
    assert_eq!(
        identity(ports[0]).await,
        identity(ports[1]).await,
        "the two servers share system identifier and database oid"
    );
    let table = format!("cl_{tag}_{}", std::process::id());
    for (k, port) in ports.iter().enumerate() {
        let mut c = opts(*port, APP_USER, APP_PASSWORD).connect().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (id bigint PRIMARY KEY, v int);
             CREATE TEMP TABLE ks (id bigint) PARTITION BY HASH (id);
             INSERT INTO {table} SELECT g, 0 FROM generate_series(1, 100) g
              WHERE satisfies_hash_partition('ks'::regclass, 2, {k}, g::bigint);"
        )))
        .execute(&mut c)
        .await
        .unwrap();
    }
    let toml = format!(
        r#"
[pools.app]
pool_mode = "transaction"

[pools.app.users.0]
username = "{APP_USER}"
password = "{APP_PASSWORD}"
pool_size = 4

[pools.app.shards.0]
database = "app"
servers = [["127.0.0.1", {p0}, "primary"]]

[pools.app.shards.1]
database = "app"
servers = [["127.0.0.1", {p1}, "primary"]]

[sharding]
enabled = true

[[sharding.tables]]
name = "{table}"
column = "id"
data_type = "bigint"
"#,
        p0 = ports[0],
        p1 = ports[1]
    );
    let r = Router::start(&toml).await;
    let mut c = r.connect("app").await;
    // One shard.
    assert_eq!(
        one(&mut c, &format!("SELECT v::text FROM {table} WHERE id = 7")).await,
        "0"
    );
    // Several shards: a merged read and a two-phase write.
    assert_eq!(
        one(&mut c, &format!("SELECT count(*)::text FROM {table}")).await,
        "100"
    );
    exec(&mut c, &format!("UPDATE {table} SET v = 1 WHERE id <= 10")).await;
    assert_eq!(
        one(&mut c, &format!("SELECT sum(v)::text FROM {table}")).await,
        "10"
    );
    for port in ports {
        let mut d = opts(port, APP_USER, APP_PASSWORD).connect().await.unwrap();
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE v = 1"
        )))
        .fetch_one(&mut d)
        .await
        .unwrap();
        assert!(n > 0 && n < 10, "each server holds its own rows: {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_one_data_directory_are_distinct_shards() {
    let b = base_port();
    let (src, a, c) = (b + 20, b + 21, b + 22);
    pg_sh(&["init", "cl_src", &src.to_string()]);
    pg_sh(&["start", "cl_src"]); // roles and the `app` database, before the copies
    pg_sh(&["clone", "cl_a", "cl_src", &a.to_string()]);
    pg_sh(&["clone", "cl_b", "cl_src", &c.to_string()]);
    serve([a, c], "copy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_and_its_old_primary_are_distinct_shards() {
    let b = base_port();
    let (p, r) = (b + 23, b + 24);
    pg_sh(&["init", "cl_p", &p.to_string()]);
    pg_sh(&["start", "cl_p"]);
    pg_sh(&["replica", "cl_r", "cl_p", &r.to_string()]);
    let dir = String::from_utf8(
        std::process::Command::new("bash")
            .arg(repo_root().join("testing/pg.sh"))
            .args(["dir", "cl_r"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    if std::path::Path::new(dir.trim())
        .join("data/standby.signal")
        .exists()
    {
        pg_sh(&["promote", "cl_r"]);
    }
    serve([p, r], "promoted").await;
}
