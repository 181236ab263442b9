//! Router processes (the real binary) for tests that kill or run several routers, with
//! a two-shard 2PC config: timeout and sweep of 1 s, so recovery in tests is quick.

use super::shards::pool_toml_two_shards;
use super::*;
use sqlx::{ConnectOptions, PgConnection};
use std::time::Duration;

/// Starts the router binary with `fault` armed (or none) on `port`.
pub fn spawn_router(config: &std::path::Path, fault: Option<&str>) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orochi-router"));
    cmd.arg("-c")
        .arg(config)
        .env("PGDOG_LOG_LEVEL", "info")
        .kill_on_drop(true);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    match fault {
        Some(f) => cmd.env("OROCHI_2PC_FAULT", f),
        None => cmd.env_remove("OROCHI_2PC_FAULT"),
    };
    cmd.spawn().expect("start the router binary")
}

pub async fn connect_router(port: u16, db: &str) -> PgConnection {
    let opts = sqlx::postgres::PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username(APP_USER)
        .password(APP_PASSWORD)
        .database(db)
        .ssl_mode(sqlx::postgres::PgSslMode::Disable);
    within(20, "router accepts connections", async {
        loop {
            if let Ok(c) = opts.connect().await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

/// A router config file for the two-shard `db` on `port`: 2PC with a 1 s timeout and
/// sweep, so recovery in the crash tests is quick.
pub fn router_config(dir: &std::path::Path, db: &str, name: &str, port: u16) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            // Admin and metrics ports chosen by the OS: a port picked free here could be
            // taken by a parallel test before the router binds it.
            "[general]\nhost = \"127.0.0.1\"\nport = {port}\nadmin_port = 0\nmetrics_port = 0\n{}",
            pool_toml_two_shards(
                db,
                "[sharding.two_phase_commit]\ntimeout_seconds = 1\ncleanup_interval_seconds = 1"
            ),
        ),
    )
    .unwrap();
    path
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The resident memory of a process (`"self"` or a pid) in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: impl std::fmt::Display) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
