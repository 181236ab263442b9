//! Read/write splitting against a real streaming replica: reads (autocommit SELECTs,
//! `BEGIN READ ONLY` transactions, read-only extended batches) go to the replica; writes,
//! locking reads, transactions and mixed pipelines go to the primary; `SET orochi.role`
//! overrides.
//!
//! The modules below use clusters of their own (a primary with two replicas each):
//! balancing modes and role discovery, the 25006 retry, seed 001's endpoints, and
//! failures (a replica killed under load, a promotion, replay paused past
//! `max_replica_lag`).

mod cluster;
mod common;

#[path = "replicas/balancing.rs"]
mod balancing;
#[path = "replicas/endpoints.rs"]
mod endpoints;
#[path = "replicas/failover.rs"]
mod failover;
#[path = "replicas/retry.rs"]
mod retry;

use common::raw::{bind, execute, first_error, parse};
use common::*;
use orochi_wire::FrontendMessage;
use std::time::Duration;

async fn replica_port() -> u16 {
    let f = fleet();
    let port = f.port + 40;
    let out = tokio::process::Command::new("bash")
        .arg(repo_root().join("testing/pg.sh"))
        .args(["replica", "single_r1", "single", &port.to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "pg.sh replica: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    port
}

fn config(db: &str, replica: u16, extra: &str) -> String {
    let f = fleet();
    pool_toml(
        db,
        "transaction",
        4,
        &format!("load_balancing_mode = \"round_robin\"\nprimary_reads_enabled = false\n{extra}"),
    )
    .replace(
        &format!("servers = [[\"{}\", {}, \"primary\"]]", f.host, f.port),
        &format!(
            "servers = [[\"{h}\", {p}, \"primary\"], [\"{h}\", {replica}, \"replica\"]]",
            h = f.host,
            p = f.port
        ),
    )
}

/// Waits until the scratch database has reached the replica.
async fn wait_replicated(db: &str, replica: u16) {
    let f = fleet();
    for _ in 0..100 {
        let ok = tokio::process::Command::new(f.bindir.join("psql"))
            .args([
                "-X",
                "-h",
                &f.host,
                "-p",
                &replica.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                db,
                "-c",
                "SELECT 1",
            ])
            .env("PGPASSWORD", SUPERUSER_PASSWORD)
            .output()
            .await
            .is_ok_and(|o| o.status.success());
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("database {db} did not reach the replica on port {replica}");
}

async fn port_of(c: &mut sqlx::PgConnection, sql: &str) -> u16 {
    one(c, sql).await.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_and_writes_to_the_primary() {
    let rport = replica_port().await;
    let primary = fleet().port;
    let db = scratch_db().await;
    wait_replicated(&db, rport).await;
    let r = Router::start(&config(&db, rport, "")).await;
    let mut c = r.connect_retrying(&db).await;
    let q = "SELECT inet_server_port()::text";
    for _ in 0..4 {
        assert_eq!(port_of(&mut c, q).await, rport, "autocommit read");
    }
    exec(&mut c, "CREATE TABLE t (a int)").await;
    exec(&mut c, "INSERT INTO t VALUES (1)").await;
    assert_eq!(
        port_of(&mut c, "SELECT inet_server_port()::text FROM t FOR UPDATE").await,
        primary
    );
    exec(&mut c, "CREATE SEQUENCE s").await;
    assert_eq!(
        port_of(
            &mut c,
            "SELECT inet_server_port()::text FROM (SELECT nextval('s')) x"
        )
        .await,
        primary,
        "nextval writes"
    );

    exec(&mut c, "BEGIN").await;
    assert_eq!(
        port_of(&mut c, q).await,
        primary,
        "a transaction starts on the primary"
    );
    exec(&mut c, "COMMIT").await;
    exec(&mut c, "BEGIN READ ONLY").await;
    assert_eq!(
        port_of(&mut c, q).await,
        rport,
        "BEGIN READ ONLY may use the replica"
    );
    exec(&mut c, "COMMIT").await;

    exec(&mut c, "SET orochi.role = 'primary'").await;
    assert_eq!(port_of(&mut c, q).await, primary);
    exec(&mut c, "SET SERVER ROLE TO 'any'").await;
    assert_eq!(port_of(&mut c, q).await, rport);

    // Extended protocol: a prepared read goes to the replica...
    let got: i32 = sqlx::query_scalar("SELECT inet_server_port()")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(got as u16, rport);
    // ...and a pipeline that reads then writes, in one batch, goes to the primary.
    let mut raw = r.raw(&db).await;
    raw.send(&[
        parse("", "SELECT 1"),
        bind("", "", &[]),
        execute("", 0),
        parse("", "INSERT INTO t VALUES (2)"),
        bind("", "", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let msgs = raw.until_ready().await;
    assert!(first_error(&msgs).is_none(), "{msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_parser_everything_goes_to_the_primary() {
    let rport = replica_port().await;
    let primary = fleet().port;
    let db = scratch_db().await;
    let r = Router::start(&config(
        &db,
        rport,
        "query_parser_read_write_splitting = false",
    ))
    .await;
    let mut c = r.connect_retrying(&db).await;
    assert_ne!(rport, primary);
    for _ in 0..3 {
        assert_eq!(
            port_of(&mut c, "SELECT inet_server_port()::text").await,
            primary
        );
    }
}

impl Router {
    /// The scratch database reaches the replica a moment after its creation.
    async fn connect_retrying(&self, db: &str) -> sqlx::PgConnection {
        for _ in 0..100 {
            if let Ok(mut c) =
                sqlx::ConnectOptions::connect(&self.opts(APP_USER, APP_PASSWORD, db)).await
            {
                if scalar(&mut c, "SELECT 1::text").await.is_ok() {
                    return c;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("database {db} never became usable through the router");
    }
}
