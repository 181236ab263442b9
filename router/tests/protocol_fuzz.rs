//! A stateful fuzzer over the frontend protocol, against the router binary in front of
//! real PostgreSQL (issue 17 item 4).
//!
//! Each case is one client connection: either a client that has not logged in (random
//! bytes, startup packets with odd versions, missing or huge parameters, SSLRequest or
//! GSSENCRequest followed by garbage, CancelRequests, lying lengths, a bad password
//! message), or a logged-in client sending 1-12 messages of the normal phase (Query,
//! Parse/Bind/Describe/Execute/Close/Sync/Flush, COPY messages out of place,
//! FunctionCall, unknown tags), some of them mutated (flipped bytes, cut tails, lying
//! length fields). After the fuzzed bytes a logged-in client sends CopyFail, Sync,
//! ROLLBACK and a marker Query.
//!
//! What must hold for every case: the router closes the connection or answers the
//! marker, never falling silent for longer than a bound (no hang). Before login the bound is `client_login_timeout`
//! (2 s) plus slack. After login, a case whose framing is intact must be answered (or
//! closed); a case with broken framing may leave the router rightly waiting for the rest
//! of a message, so the client then closes its side and the router must end the session
//! promptly;
//! no panic in the router's log; its RSS stays bounded; and a canary client running
//! `SELECT 1` all along never fails.
//!
//! `OROCHI_FUZZ_CASES` (default 8,000, under 2 minutes on 2 shared cores) and `OROCHI_FUZZ_SEED` (default: random, printed)
//! reproduce a run; a failing case names its seed.

mod common;
#[path = "fuzz/gen.rs"]
mod gen;

use common::procs::free_port;
use common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most cases wait on a bound (login timeout, a broken frame): many at once.
const WORKERS: usize = 96;
/// What a case may take: the login bound (1 s) plus slack for a loaded machine.
const CASE_LIMIT: Duration = Duration::from_secs(8);

fn rss_kib(pid: u32) -> u64 {
    common::procs::rss_kib(pid).unwrap_or(0)
}

/// Splits backend messages; `true` once a ReadyForQuery follows the marker's row.
fn marker_answered(buf: &[u8]) -> bool {
    let Some(at) = buf.windows(9).position(|w| w == b"fz-marker") else {
        return false;
    };
    let mut i = at;
    // Walk the messages after the marker's DataRow (its start is not known exactly:
    // find a 'Z' message header whose length is 5 at the end).
    while i + 6 <= buf.len() {
        if buf[i] == b'Z' && buf[i + 1..i + 5] == [0, 0, 0, 5] && i + 6 == buf.len() {
            return true;
        }
        i += 1;
    }
    false
}

/// The marker (and maybe more) was refused because the fuzz load holds every server
/// connection (53300 after `query_wait_timeout`), and the session is idle again.
fn idle_after_refusal(buf: &[u8]) -> bool {
    let n = buf.len();
    n >= 6
        && buf[n - 6] == b'Z'
        && buf[n - 5..n - 1] == [0, 0, 0, 5]
        && buf.windows(5).any(|w| w == b"53300")
}

/// Logs the trust user in; `None` if the router refused (it must not, but the canary
/// reports that separately).
async fn login(port: u16, db: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let mut b = Vec::new();
    b.extend_from_slice(&196608i32.to_be_bytes());
    for (k, v) in [("user", TRUST_USER), ("database", db)] {
        b.extend_from_slice(k.as_bytes());
        b.push(0);
        b.extend_from_slice(v.as_bytes());
        b.push(0);
    }
    b.push(0);
    let mut m = ((b.len() + 4) as i32).to_be_bytes().to_vec();
    m.extend(b);
    s.write_all(&m).await.ok()?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&chunk[..n]);
        if got.len() >= 6 && got[got.len() - 6] == b'Z' {
            return Some(s);
        }
    }
}

/// Runs one case; `Err` describes a hang.
async fn case(port: u16, db: &str, seed: u64) -> Result<(), String> {
    let mut g = gen::Gen::new(seed);
    let logged_in = g.coin(0.6);
    let mut framing_broken = false;
    let (mut s, bytes) = if logged_in {
        let Some(s) = login(port, db).await else {
            return Err(format!("seed {seed}: the trust user could not log in"));
        };
        let (mut bytes, mutated) = g.session();
        framing_broken = mutated;
        let mut tail = Vec::new();
        tail.extend(gen::msg(b'f', b"fz\0"));
        tail.extend(gen::msg(b'S', &[]));
        // A transaction the fuzzed messages opened (and maybe failed) would refuse the
        // marker with 25P02.
        tail.extend(gen::msg(b'Q', b"ROLLBACK\0"));
        tail.extend(gen::msg(b'Q', b"SELECT 'fz-marker'\0"));
        bytes.extend(tail);
        (s, bytes)
    } else {
        let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await else {
            return Err(format!("seed {seed}: connect refused"));
        };
        (s, g.pre_auth(TRUST_USER, db))
    };
    let _ = s.write_all(&bytes).await;
    let mut started = Instant::now();
    let mut limit = if framing_broken {
        Duration::from_millis(500)
    } else {
        CASE_LIMIT
    };
    let mut closed_ours = false;
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(n)) => {
                // The bound is on silence: an answer in several slow parts is progress.
                started = Instant::now();
                got.extend_from_slice(&chunk[..n]);
                if logged_in && marker_answered(&got) {
                    return Ok(());
                }
                if !logged_in && got.ends_with(&[b'Z', 0, 0, 0, 5, b'I']) {
                    return Ok(()); // a well-formed login went through
                }
            }
            Err(_) if idle_after_refusal(&got) => return Ok(()),
            Err(_) if framing_broken && !closed_ours => {
                // The router may be waiting for the rest of a message: go away.
                let _ = s.shutdown().await;
                closed_ours = true;
                started = Instant::now();
                limit = CASE_LIMIT;
            }
            Err(_) => {
                return Err(format!(
                    "seed {seed}: no answer and no close within {limit:?} (logged in: {logged_in}; framing broken: {framing_broken}; client closed: {closed_ours}; got {} bytes); sent {:02x?}",
                    got.len(),
                    bytes
                ))
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_frontend_messages_never_crash_hang_or_leak() {
    let cases: u64 = std::env::var("OROCHI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8_000);
    let seed: u64 = std::env::var("OROCHI_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("protocol fuzz: {cases} cases from seed {seed} (OROCHI_FUZZ_SEED={seed} reproduces)");

    let db = scratch_db().await;
    let dir = certs::scratch_dir("fuzz");
    let port = free_port();
    let config = dir.join("orochi.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\nhost = \"127.0.0.1\"\nport = {port}\nadmin_port = 0\nmetrics_port = 0\n\
             client_login_timeout = 1\nclient_auth_failure_limit = 0\nquery_timeout = 5\nquery_wait_timeout = 2\n{}",
            pool_toml(&db, "transaction", 40, "")
        ),
    )
    .unwrap();
    let log = dir.join("router.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orochi-router"))
        .arg("-c")
        .arg(&config)
        .env(
            "PGDOG_LOG_LEVEL",
            std::env::var("OROCHI_FUZZ_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::fs::File::create(dir.join("router.out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("start the router binary");
    let pid = child.id().expect("pid");
    let mut canary = procs::connect_router(port, &db).await;
    // Warm up, then take the baseline.
    for s in 0..30 {
        case(port, &db, seed ^ (s + 1) << 40).await.ok();
    }
    let rss_before = rss_kib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let canary_ok = Arc::new(AtomicUsize::new(0));
    let canary_task = {
        let (stop, ok) = (stop.clone(), canary_ok.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let v = scalar(&mut canary, "SELECT 'alive'").await;
                assert_eq!(v.as_deref().ok(), Some("alive"), "the canary failed: {v:?}");
                ok.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (next, db) = (next.clone(), db.clone());
        workers.push(tokio::spawn(async move {
            let mut hangs = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                if i >= cases {
                    return hangs;
                }
                if let Err(e) = case(port, &db, seed.wrapping_add(i)).await {
                    hangs.push(e);
                }
            }
        }));
    }
    let started = Instant::now();
    let mut hangs = Vec::new();
    for w in workers {
        hangs.extend(w.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    canary_task.await.expect("canary");
    let rss_after = rss_kib(pid);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the router process exited during the fuzz run (log {log:?})"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let panics: Vec<&str> = text.lines().filter(|l| l.contains("panicked")).collect();
    eprintln!("router log: {log:?}");
    eprintln!(
        "protocol fuzz: {cases} cases in {:?}; canary answered {} times; router RSS {} -> {} KiB",
        started.elapsed(),
        canary_ok.load(Ordering::Relaxed),
        rss_before,
        rss_after
    );
    assert!(
        panics.is_empty(),
        "the router panicked:\n{}",
        panics.join("\n")
    );
    assert!(
        hangs.is_empty(),
        "{} hung cases, first: {}",
        hangs.len(),
        hangs[0]
    );
    assert!(
        canary_ok.load(Ordering::Relaxed) > 0,
        "the canary never ran"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "router RSS grew from {rss_before} KiB to {rss_after} KiB over {cases} cases"
    );
    child.kill().await.ok();
}
