//! Two-phase commit against concurrent first use and against its own clients (issues 19
//! and 20): setup is race-free across routers, clients cannot COMMIT/ROLLBACK PREPARED
//! the router's transactions, cannot write decision rows once setup had the privileges,
//! and a session squatting on the sweeper's advisory lock is reported.

mod common;

use common::procs::*;
use common::shards::*;
use common::*;
use sqlx::{ConnectOptions, PgConnection};
use std::time::Duration;

async fn direct(k: usize, user: &str, password: &str, db: &str) -> PgConnection {
    shard_opts(k, user, password, db).connect().await.unwrap()
}

async fn err_code(c: &mut PgConnection, sql: &str) -> Option<String> {
    let e = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *c)
        .await
        .expect_err(sql);
    code(&e)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("orochi-2pcg-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A pair of ids per client: one on each shard, distinct for every client.
fn pairs(n: usize) -> Vec<(i64, i64)> {
    let zero: Vec<i64> = (1..=ROWS).filter(|&i| shard_of(i) == 0).take(n).collect();
    let one: Vec<i64> = (1..=ROWS).filter(|&i| shard_of(i) == 1).take(n).collect();
    zero.into_iter().zip(one).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_two_phase_commits_from_two_routers_all_succeed() {
    // Fresh databases: no orochi schema yet, so every one of these commits runs setup.
    let db = two_shard_db().await;
    let dir = temp_dir("race");
    let ports = [free_port(), free_port()];
    let mut routers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let cfg = router_config(&dir, &db, &format!("r{i}.toml"), *port);
        routers.push(spawn_router(&cfg, None));
    }
    let mut clients = Vec::new();
    for i in 0..16 {
        clients.push(connect_router(ports[i % 2], &db).await);
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for (mut c, (a, b)) in clients.into_iter().zip(pairs(16)) {
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "UPDATE users SET name = 'raced' WHERE id IN ({a}, {b})"
            )))
            .execute(&mut c)
            .await
            .map(|r| r.rows_affected())
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        match within(60, "a first two-phase commit", t).await.unwrap() {
            Ok(n) => assert_eq!(n, 2),
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert!(errors.is_empty(), "{} errors: {errors:?}", errors.len());
    let mut su = direct(0, SUPERUSER, SUPERUSER_PASSWORD, &db).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orochi.twopc_decisions")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(n, 16, "one commit decision per transaction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_resolve_the_routers_prepared_transactions() {
    let (r, db) = cluster("").await;
    // A prepared participant named like the router's, as a crash would leave it.
    let gid = "orochi_t3st_1r00000000000000aa_c0_s1";
    let mut d = direct(1, APP_USER, APP_PASSWORD, &db).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN; UPDATE users SET name = 'prepared' WHERE id = (SELECT min(id) FROM users); PREPARE TRANSACTION '{gid}'"
    )))
    .execute(&mut d)
    .await
    .unwrap();
    let mut c = r.connect(&db).await;
    for sql in [
        format!("COMMIT PREPARED '{gid}'"),
        format!("rollback /* x */ prepared\n'{gid}'"),
        format!("COMMIT PREPARED E'\\x6f{}'", &gid[1..]),
        format!("COMMIT PREPARED U&'\\004F{}'", &gid[1..].to_uppercase()),
    ] {
        assert_eq!(
            err_code(&mut c, &sql).await.as_deref(),
            Some("42501"),
            "{sql}"
        );
    }
    // Extended protocol (sqlx prepares it).
    let e = sqlx::query(sqlx::AssertSqlSafe(format!("COMMIT PREPARED '{gid}'")))
        .execute(&mut c)
        .await
        .expect_err("extended COMMIT PREPARED");
    assert_eq!(code(&e).as_deref(), Some("42501"), "{e}");
    exec(&mut c, "BEGIN").await;
    exec(&mut c, "UPDATE users SET name = 'x' WHERE id = 1").await;
    assert_eq!(
        err_code(&mut c, "PREPARE TRANSACTION 'orochi_mine_1_c0_s0'")
            .await
            .as_deref(),
        Some("42501")
    );
    exec(&mut c, "ROLLBACK").await;
    assert_eq!(
        one(&mut c, "SELECT 'still usable'::text").await,
        "still usable"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1")
        .bind(gid)
        .fetch_one(&mut d)
        .await
        .unwrap();
    assert_eq!(left, 1, "the prepared transaction is untouched");
    exec(&mut d, &format!("ROLLBACK PREPARED '{gid}'")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_not_writable_by_the_server_user_after_privileged_setup() {
    let db = two_shard_db().await;
    let dir = temp_dir("harden");
    let port = free_port();
    let cfg = router_config(&dir, &db, "r.toml", port);
    for _ in 0..2 {
        // Idempotent: the second run finds everything in place.
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orochi-router"))
            .args(["setup", "--admin-user", SUPERUSER, "-c"])
            .arg(&cfg)
            .env("OROCHI_SETUP_PASSWORD", SUPERUSER_PASSWORD)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Directly on every shard, as the application's role.
    for k in 0..2 {
        let mut a = direct(k, APP_USER, APP_PASSWORD, &db).await;
        for sql in [
            "INSERT INTO orochi.twopc_decisions VALUES ('orochi_x_1_c0', 'abort')",
            "UPDATE orochi.twopc_decisions SET decision = 'abort'",
            "DELETE FROM orochi.twopc_decisions",
            "DROP TABLE orochi.twopc_decisions",
            "SET ROLE orochi_twopc",
            "ALTER FUNCTION orochi.record_decision(text, text) SECURITY INVOKER",
        ] {
            assert_eq!(
                err_code(&mut a, sql).await.as_deref(),
                Some("42501"),
                "shard {k}: {sql}"
            );
        }
        assert_eq!(
            err_code(&mut a, "SELECT orochi.record_decision('mine', 'abort')")
                .await
                .as_deref(),
            Some("22023"),
            "only router gids"
        );
    }
    // The router still commits across shards, and its clients cannot write decisions.
    let _r = spawn_router(&cfg, None);
    let mut c = connect_router(port, &db).await;
    exec(&mut c, "UPDATE users SET name = 'ok' WHERE city = 'Paris'").await;
    assert_eq!(
        err_code(
            &mut c,
            "INSERT INTO orochi.twopc_decisions VALUES ('orochi_x_2_c0', 'abort')"
        )
        .await
        .as_deref(),
        Some("42501")
    );
    let mut su = direct(0, SUPERUSER, SUPERUSER_PASSWORD, &db).await;
    let (owner, n): (String, i64) = sqlx::query_as(
        "SELECT pg_get_userbyid(c.relowner)::text, (SELECT count(*) FROM orochi.twopc_decisions WHERE decision = 'commit') FROM pg_class c WHERE c.oid = 'orochi.twopc_decisions'::regclass",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!((owner.as_str(), n), ("orochi_twopc", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_holding_the_sweeper_lock_is_reported() {
    let db = two_shard_db().await;
    let mut squatter = direct(0, APP_USER, APP_PASSWORD, &db).await;
    exec(&mut squatter, "SET application_name = 'squatter'").await;
    exec(
        &mut squatter,
        "SELECT pg_advisory_lock(8030603558299185776)",
    )
    .await;
    let dir = temp_dir("lock");
    let (port, metrics) = (free_port(), free_port());
    let cfg = dir.join("r.toml");
    std::fs::write(
        &cfg,
        format!(
            "[general]\nhost = \"127.0.0.1\"\nport = {port}\nadmin_port = {}\nmetrics_port = {metrics}\n{}",
            free_port(),
            pool_toml_two_shards(&db, "[sharding.two_phase_commit]\ntimeout_seconds = 1\ncleanup_interval_seconds = 1")
        ),
    )
    .unwrap();
    let log = dir.join("router.log");
    let _r = tokio::process::Command::new(env!("CARGO_BIN_EXE_orochi-router"))
        .arg("-c")
        .arg(&cfg)
        .env("PGDOG_LOG_LEVEL", "info")
        .env_remove("OROCHI_2PC_FAULT")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let name = format!("orochi_pgdog_2pc_sweeper_lock_unavailable_total{{pool=\"{db}\"}}");
    within(30, "the metric counts the unavailable lock", async {
        loop {
            let body = scrape(metrics).await.unwrap_or_default();
            let n = body
                .lines()
                .find(|l| l.starts_with(&name))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
            if n.is_some_and(|n| n >= 1.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("squatter") && text.contains("advisory lock"),
        "the warning names the holder:\n{text}"
    );
}

async fn scrape(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}
