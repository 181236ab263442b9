//! `log_queries` through the real router binary: one debug line per statement with
//! pool, user, shard(s), duration and rows, for a single-shard statement and a two-shard
//! fan-out, shown at the default `log_level = info`; parameter values only once
//! `log_parameters = true` is switched on by a reload (SIGHUP).

mod common;

use common::procs::{connect_router, free_port};
use common::shards::*;
use common::*;
use std::path::Path;
use std::time::Duration;

fn write_config(path: &Path, db: &str, port: u16, parameters: bool) {
    std::fs::write(
        path,
        format!(
            "[general]\nhost = \"127.0.0.1\"\nport = {port}\nadmin_port = 0\nmetrics_port = 0\nlog_queries = true\nlog_parameters = {parameters}\n{}",
            pool_toml_two_shards(db, "")
        ),
    )
    .unwrap();
}

/// The `log_queries` lines of the router's log that contain `what`, once there is one.
async fn lines_with(log: &Path, what: &str) -> Vec<String> {
    within(20, "the query line is logged", async {
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let found: Vec<String> = text
                .lines()
                .filter(|l| l.contains("orochi::query") && l.contains(what))
                .map(str::to_string)
                .collect();
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_per_statement_with_pool_user_shards_duration_rows() {
    let db = two_shard_db().await;
    let dir = certs::scratch_dir("query_log");
    let config = dir.join("orochi.toml");
    let log = dir.join("router.log");
    let port = free_port();
    write_config(&config, &db, port, false);
    let mut router = tokio::process::Command::new(env!("CARGO_BIN_EXE_orochi-router"))
        .arg("-c")
        .arg(&config)
        .env("PGDOG_LOG_LEVEL", "info")
        .env_remove("OROCHI_2PC_FAULT")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("start the router binary");
    let mut c = connect_router(port, &db).await;

    // One shard: the key's.
    let rows = sqlx::raw_sql("SELECT name FROM users WHERE id = 1")
        .fetch_all(&mut c)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let line = &lines_with(&log, "query: SELECT name FROM users WHERE id = 1").await[0];
    for field in [
        format!("pool={db}"),
        format!("user={APP_USER}"),
        format!("shards={} ", shard_of(1)),
        "rows=1".to_string(),
        "duration_ms=".to_string(),
    ] {
        assert!(line.contains(&field), "{field} in {line}");
    }
    assert!(line.contains("DEBUG"), "{line}");

    // Both shards: one line for the whole fan-out.
    let rows = sqlx::raw_sql("SELECT id FROM users WHERE score > 0")
        .fetch_all(&mut c)
        .await
        .unwrap();
    assert_eq!(rows.len() as i64, ROWS);
    let lines = lines_with(&log, "query: SELECT id FROM users WHERE score > 0").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    for field in [
        "shards=0,1 ",
        &format!("rows={ROWS}"),
        &format!("pool={db}"),
    ] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }

    // Parameters: absent unless log_parameters.
    let secret = "Sekrit-Value-4711";
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = $1 AND name <> $2")
        .bind(2i64)
        .bind(secret)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let line = &lines_with(&log, "WHERE id = $1 AND name <> $2").await[0];
    assert!(line.contains(&format!("shards={} ", shard_of(2))), "{line}");
    assert!(!line.contains("params="), "{line}");
    let fanned: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE name <> $1")
        .bind(secret)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(fanned, ROWS);
    lines_with(&log, "WHERE name <> $1").await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(secret), "a parameter value reached the log");

    // RELOAD (SIGHUP) with log_parameters = true: the values appear.
    write_config(&config, &db, port, true);
    let pid = router.id().expect("the router runs").to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    within(20, "the reload applies", async {
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("configuration reloaded") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = $1 AND name <> $2")
        .bind(3i64)
        .bind(secret)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let fanned: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE name <> $1")
        .bind(secret)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(fanned, ROWS);
    let with_values = lines_with(&log, secret).await;
    within(20, "both statements log their values", async {
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let n = text
                .lines()
                .filter(|l| l.contains("orochi::query") && l.contains(&format!("'{secret}'")))
                .count();
            if n >= 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("params=$1=3, $2='{secret}'")),
        "{with_values:?}"
    );
    assert!(text.contains("shards=0,1 duration_ms="));
    router.kill().await.ok();
}
