//! Slow and abandoned clients (issue 17 item 5), against the router binary so that its
//! memory is measured alone (`VmRSS` of its process):
//! - N connections that send half a startup packet (closed by `client_login_timeout`);
//! - N trust-user clients that log in, send `BEGIN` and go silent without reading. The
//!   first `POOL` of them get the user's every server connection and sit idle in their
//!   transactions; the rest queue for a server (bounded by `query_wait_timeout`).
//!   `idle_transaction_timeout` ends the silent holders (25P03) and closes their server
//!   connections, which the queue then gets, and so on.
//!
//! Meanwhile a client of another user keeps running queries with bounded latency. The
//! router's RSS stays under 64 KiB per connection; once the clients are gone every
//! session ends (the router's descriptors are back to where they were), a second wave
//! reuses the first one's memory instead of growing, and no server connection stays
//! idle in a transaction.
//! N is 5,000 (env `OROCHI_ABANDONED_CLIENTS`), lowered to fit the open-file limit of
//! this process when that is too small for 2N sockets (the router inherits it).

mod common;

use common::procs::{free_port, spawn_router};
use common::raw::RawClient;
use common::*;
use orochi_wire::FrontendMessage;
use sqlx::ConnectOptions;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Server connections of the silent user.
const POOL: usize = 10;
const IDLE_TX_S: u64 = 2;
const PER_CONN_KIB: u64 = 64;

fn rss_kib(pid: u32) -> u64 {
    common::procs::rss_kib(pid).unwrap_or_else(|| panic!("no VmRSS for pid {pid}"))
}

/// The soft open-file limit of this process.
fn fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1024)
}

fn clients() -> usize {
    let wanted: usize = std::env::var("OROCHI_ABANDONED_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    // 2N sockets here and in the router, plus room for everything else.
    let fit = fd_limit().saturating_sub(500) / 2;
    if fit < wanted {
        eprintln!(
            "open-file limit {}: {fit} connections per kind instead of {wanted}",
            fd_limit()
        );
    }
    wanted.min(fit)
}

/// PostgreSQL backends of the silent user (`app` on the server side) idle in a
/// transaction in `db`.
async fn idle_in_tx(su: &mut sqlx::PgConnection, db: &str) -> BTreeSet<i32> {
    sqlx::query_scalar::<_, i32>(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = 'app' AND state = 'idle in transaction'",
    )
    .bind(db)
    .fetch_all(su)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// A TCP connection to the router. One connect of a burst of thousands was once refused
/// while a build ran beside the tests (the test passed alone and in the next full run;
/// the router never closes its listener). Clients retry that, and so does this test, a
/// few times: what it measures is memory, not the kernel's accept path.
async fn connect_retrying(port: u16) -> TcpStream {
    let mut refused = 0;
    loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => return s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && refused < 5 => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("connect to the router: {e}"),
        }
    }
}

/// N connections that send half a startup packet, and N trust-user clients that log
/// in, send `BEGIN` and never read again.
async fn wave(port: u16, db: &str, n: usize) -> (Vec<TcpStream>, Vec<TcpStream>) {
    let mut half = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = connect_retrying(port).await;
        // A startup packet announcing 40 bytes, 6 sent.
        s.write_all(&[0, 0, 0, 40, 0, 3]).await.unwrap();
        half.push(s);
    }
    let mut silent = Vec::with_capacity(n);
    let mut batch = tokio::task::JoinSet::new();
    for i in 0..n {
        let db = db.to_string();
        batch.spawn(async move {
            let mut c = RawClient::connect(port, TRUST_USER, &db, &[])
                .await
                .expect("trust login");
            c.send(&[FrontendMessage::Query("BEGIN".into())]).await;
            c.stream
        });
        if batch.len() >= 64 || i + 1 == n {
            while let Some(s) = batch.join_next().await {
                silent.push(s.unwrap());
            }
        }
    }
    (half, silent)
}

/// Open descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits until the router holds no more descriptors than `limit` (every session of the
/// wave has ended: the half logins at EOF, queued clients at `query_wait_timeout`).
async fn sessions_end(pid: u32, limit: usize) {
    within(30, "the router closes every session of the wave", async {
        while fds(pid) > limit {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_logins_and_silent_transactions_leave_memory_bounded() {
    let n = clients();
    let db = scratch_db().await;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("orochi_abandoned_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("r.toml");
    // md5user's own pool serves the client that must not notice any of this.
    std::fs::write(
        &cfg,
        format!(
            "[general]\nhost = \"127.0.0.1\"\nport = {port}\nadmin_port = 0\nmetrics_port = 0\n\
             client_login_timeout = 20\nidle_transaction_timeout = {IDLE_TX_S}\nquery_wait_timeout = 10\n\
             max_client_conn = {}\n{}",
            2 * n + 100,
            pool_toml(&db, "transaction", POOL, "")
        ),
    )
    .unwrap();
    let mut router = spawn_router(&cfg, None);
    let pid = router.id().expect("router pid");
    let opts = sqlx::postgres::PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username(MD5_USER)
        .password(MD5_PASSWORD)
        .database(&db)
        .ssl_mode(sqlx::postgres::PgSslMode::Disable);
    let mut other = within(20, "router accepts connections", async {
        loop {
            if let Ok(c) = opts.connect().await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // Warm up the paths the clients below take, so their first use is not counted.
    for _ in 0..20 {
        let mut w = RawClient::connect(port, TRUST_USER, &db, &[])
            .await
            .unwrap();
        w.rows("SELECT 1").await;
    }
    let mut baseline_ms = 0.0f64;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(one(&mut other, "SELECT 'ok'::text").await, "ok");
        baseline_ms = baseline_ms.max(t.elapsed().as_secs_f64() * 1000.0);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let fds_before = fds(pid);

    // The other client runs throughout; its slowest query is the measure.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut count = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let v: String = sqlx::query_scalar("SELECT 'ok'::text")
                    .fetch_one(&mut other)
                    .await
                    .expect("the other client's query");
                assert_eq!(v, "ok");
                worst = worst.max(t.elapsed());
                count += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (worst, count)
        })
    };

    let started = Instant::now();
    let (half, silent) = wave(port, &db, n).await;
    let connected_in = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = rss_kib(pid);
    let per_conn = peak.saturating_sub(before) * 1024 / (2 * n as u64);
    eprintln!(
        "{n} half logins + {n} silent transactions in {connected_in:?}: router RSS {before} KiB -> {peak} KiB ({per_conn} B per connection)"
    );
    assert!(
        per_conn < PER_CONN_KIB * 1024,
        "{per_conn} bytes per connection"
    );

    // idle_transaction_timeout: the server connections held by silent clients are
    // closed (their backends end), and the queue gets new ones.
    let mut su = superuser(&db).await;
    let first = within(10, "silent clients hold the pool's connections", async {
        loop {
            let s = idle_in_tx(&mut su, &db).await;
            if !s.is_empty() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(first.len() <= POOL, "{} > pool_size", first.len());
    within(
        IDLE_TX_S + 5,
        "the silent holders' server connections are closed",
        async {
            loop {
                if idle_in_tx(&mut su, &db).await.is_disjoint(&first) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    )
    .await;
    // The holders were told why (25P03); read what reached the silent clients' sockets.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut told = 0;
    for s in &silent {
        let mut buf = vec![0u8; 4096];
        if let Ok(k) = s.try_read(&mut buf) {
            if buf[..k].windows(5).any(|w| w == b"25P03") {
                told += 1;
            }
        }
    }
    assert!(told >= POOL, "{told} silent clients got 25P03");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst, count) = within(20, "the other client", watcher).await.unwrap();
    eprintln!(
        "other client: {count} queries, slowest {worst:?} (baseline {baseline_ms:.1} ms); {told} silent clients got 25P03"
    );
    assert!(
        count > 10,
        "the other client kept running ({count} queries)"
    );
    assert!(
        worst < Duration::from_secs(2),
        "the other client's slowest query took {worst:?}"
    );

    // Everyone leaves: every session ends and its descriptors are closed.
    drop(half);
    drop(silent);
    sessions_end(pid, fds_before + 10).await;
    let after_first = rss_kib(pid);
    // glibc's malloc keeps freed memory for reuse rather than returning it, so RSS does
    // not fall back by itself; what must hold is that it is reused: a second, identical
    // wave takes (almost) nothing more.
    let (half, silent) = wave(port, &db, n).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak2 = rss_kib(pid);
    drop(half);
    drop(silent);
    sessions_end(pid, fds_before + 10).await;
    let after_second = rss_kib(pid);
    eprintln!(
        "after the first wave {after_first} KiB; second wave peak {peak2} KiB, after it {after_second} KiB"
    );
    let slack = peak.saturating_sub(before) / 10 + 8 * 1024;
    assert!(
        peak2 <= peak + slack,
        "a second wave grew RSS from {peak} to {peak2} KiB: memory of the first is not reused"
    );
    within(
        IDLE_TX_S + 15,
        "no server connection idle in a transaction",
        async {
            while !idle_in_tx(&mut su, &db).await.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    )
    .await;
    // The silent user's pool serves again.
    let mut c = RawClient::connect(port, TRUST_USER, &db, &[])
        .await
        .unwrap();
    assert_eq!(c.rows("SELECT 'back'").await, vec!["back".to_string()]);
    drop(c);
    let _ = router.start_kill();
    let _ = router.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}
