//! Clients that vanish, cancel requests, and graceful shutdown.

mod common;

use common::raw::{first_error, ready_status, RawClient};
use common::*;
use orochi_router::signals::Stop;
use orochi_wire::{BackendMessage, FrontendMessage};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_mid_transaction_rolls_back_and_reuses_server() {
    let (r, db) = setup("transaction", 1).await;
    let mut setup_c = r.raw(&db).await;
    setup_c
        .rows("CREATE TABLE acct (id int PRIMARY KEY, bal int)")
        .await;
    setup_c.rows("INSERT INTO acct VALUES (1, 100)").await;
    drop(setup_c);

    let mut a = r.raw(&db).await;
    assert_eq!(ready_status(&a.query("BEGIN").await), Some(b'T'));
    let pid_a = a.rows("SELECT pg_backend_pid()::text").await;
    a.rows("SELECT bal::text FROM acct WHERE id = 1 FOR UPDATE")
        .await;
    a.rows("UPDATE acct SET bal = 0 WHERE id = 1").await;
    // Vanish without Terminate.
    drop(a);

    let mut b = r.raw(&db).await;
    let started = Instant::now();
    assert_eq!(ready_status(&b.query("BEGIN").await), Some(b'T'));
    let ms = b
        .query("SELECT bal::text FROM acct WHERE id = 1 FOR UPDATE NOWAIT")
        .await;
    assert!(
        first_error(&ms).is_none(),
        "row still locked: {:?}",
        first_error(&ms)
    );
    assert_eq!(
        common::raw::first_column(&ms),
        ["100"],
        "update must be rolled back"
    );
    assert_eq!(
        b.rows("SELECT pg_backend_pid()::text").await,
        pid_a,
        "server reused"
    );
    b.query("COMMIT").await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_mid_pipeline_in_transaction_rolls_back() {
    let (r, db) = setup("transaction", 1).await;
    let mut b = r.raw(&db).await;
    b.rows("CREATE TABLE acct (id int PRIMARY KEY, bal int)")
        .await;
    b.rows("INSERT INTO acct VALUES (1, 100)").await;
    let pid_a = b.rows("SELECT pg_backend_pid()::text").await;
    // Vanish in the middle of an unsynced extended-protocol batch inside a transaction.
    let mut a = r.raw(&db).await;
    a.send(&[
        FrontendMessage::Query("BEGIN".into()),
        common::raw::parse("", "UPDATE acct SET bal = 1 WHERE id = 1"),
        common::raw::bind("", "", &[]),
        common::raw::execute("", 0),
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(a);
    let ms = within(
        10,
        "after unsynced client",
        b.query("SELECT bal::text FROM acct FOR UPDATE NOWAIT"),
    )
    .await;
    assert_eq!(common::raw::first_column(&ms), ["100"], "{ms:?}");
    assert_eq!(
        b.rows("SELECT pg_backend_pid()::text").await,
        pid_a,
        "server reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_during_long_query_cancels_it() {
    let (r, db) = setup("transaction", 1).await;
    let mut a = r.raw(&db).await;
    let pid_a = a.rows("SELECT pg_backend_pid()::text").await;
    a.send(&[FrontendMessage::Query("SELECT pg_sleep(30)".into())])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(a);
    let started = Instant::now();
    let mut b = r.raw(&db).await;
    let pid_b = within(
        8,
        "next client after a vanished sleeper",
        b.rows("SELECT pg_backend_pid()::text"),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        pid_b, pid_a,
        "the server connection should be reused after the cancel"
    );
    assert_eq!(b.rows("SHOW statement_timeout").await, ["0"]);
}

/// A client that starts a COPY FROM STDIN and leaves before its CopyInResponse came
/// back (the protocol fuzzer's case): the server waits for data no cancel interrupts. The
/// client is closed at once, not after the cleanup timeout, and the next client of a
/// one-connection pool is not made to wait for that timeout either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_before_its_copy_began_is_closed_at_once() {
    let (r, db) = setup("transaction", 1).await;
    let mut b = r.raw(&db).await;
    b.rows("CREATE TABLE sink (v text)").await;
    drop(b);
    let mut a = r.raw(&db).await;
    let started = Instant::now();
    a.send(&[
        FrontendMessage::Query("COPY sink FROM STDIN".into()),
        FrontendMessage::Sync,
        FrontendMessage::Terminate,
    ])
    .await;
    let ms = a.until_closed().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "closed after {:?}, got {ms:?}",
        started.elapsed()
    );
    let mut c = r.raw(&db).await;
    let n = within(
        3,
        "the next client",
        c.rows("SELECT count(*)::text FROM sink"),
    )
    .await;
    assert_eq!(n, ["0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_cancels_the_running_query() {
    let (r, db) = setup("transaction", 2).await;
    let mut a = r.raw(&db).await;
    let mut bystander = r.raw(&db).await;
    a.send(&[FrontendMessage::Query("SELECT pg_sleep(30)".into())])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    a.cancel(r.port).await;
    let ms = within(5, "cancelled query", a.until_ready()).await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("57014"),
        "{ms:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(a.rows("SELECT 'alive'").await, ["alive"]);
    // A cancel with a wrong key does nothing; a cancel for an idle client does nothing.
    bystander
        .send(&[FrontendMessage::Query("SELECT pg_sleep(0.5)::text".into())])
        .await;
    let mut fake = RawClient::connect(r.port, TRUST_USER, &db, &[])
        .await
        .unwrap();
    fake.key = (a.key.0, a.key.1.wrapping_add(1));
    fake.cancel(r.port).await;
    a.cancel(r.port).await;
    let ms = bystander.until_ready().await;
    assert!(first_error(&ms).is_none(), "bystander cancelled: {ms:?}");

    // psql: SIGINT makes psql send a CancelRequest.
    let child = psql_cmd(
        r.port,
        APP_USER,
        APP_PASSWORD,
        &db,
        &["-c", "SELECT pg_sleep(30)"],
    )
    .spawn()
    .unwrap();
    let pid = child.id().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let out = within(8, "psql after SIGINT", child.wait_with_output())
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_lets_transactions_finish() {
    let (mut r, db) = setup_with("transaction", 2, "shutdown_timeout = 10000", "").await;
    let mut a = r.raw(&db).await;
    a.rows("CREATE TABLE g (v int)").await;
    let mut idle = r.raw(&db).await;
    assert_eq!(ready_status(&a.query("BEGIN").await), Some(b'T'));
    a.rows("INSERT INTO g VALUES (1)").await;
    r.stop(Stop::Graceful);

    // The idle client is told 57P01 and disconnected right away.
    let ms = within(3, "idle client on graceful stop", idle.until_closed()).await;
    let e = first_error(&ms).unwrap_or_else(|| panic!("no error for idle client: {ms:?}"));
    assert_eq!((e.severity.as_str(), e.code.as_str()), ("FATAL", "57P01"));

    // New connections are refused.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let newcomer = tokio::net::TcpStream::connect(("127.0.0.1", r.port)).await;
    if let Ok(s) = newcomer {
        let mut c = RawClientProbe(s);
        assert!(
            c.closed_soon().await,
            "a new client must not be served after stop"
        );
    }

    // The transaction in flight can still work and commit...
    a.rows("INSERT INTO g VALUES (2)").await;
    let ms = a.query("COMMIT").await;
    assert!(first_error(&ms).is_none(), "{ms:?}");
    assert_eq!(ready_status(&ms), Some(b'I'));
    // ...then the client is told 57P01.
    let ms = within(3, "client after commit", a.until_closed()).await;
    let e = first_error(&ms).unwrap_or_else(|| panic!("no 57P01 after commit: {ms:?}"));
    assert_eq!(e.code, "57P01");
    r.join(Duration::from_secs(5)).await.expect("router stops");
    let mut su = superuser(&db).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM g")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(n, 2, "the transaction committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_times_out_and_fast_stop_is_immediate() {
    let (mut r, db) = setup_with("transaction", 2, "shutdown_timeout = 500", "").await;
    let mut a = r.raw(&db).await;
    assert_eq!(ready_status(&a.query("BEGIN").await), Some(b'T'));
    let started = Instant::now();
    r.stop(Stop::Graceful);
    // Never commits: after shutdown_timeout the client is disconnected with 57P01.
    let ms = within(5, "client past shutdown_timeout", a.until_closed()).await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let e = first_error(&ms).unwrap_or_else(|| panic!("no error: {ms:?}"));
    assert_eq!(e.code, "57P01");
    r.join(Duration::from_secs(5)).await.expect("router stops");

    let (mut r, db) = setup_with("transaction", 2, "shutdown_timeout = 30000", "").await;
    let mut a = r.raw(&db).await;
    assert_eq!(ready_status(&a.query("BEGIN").await), Some(b'T'));
    a.send(&[FrontendMessage::Query("SELECT pg_sleep(20)".into())])
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    r.stop(Stop::Fast);
    let ms = within(5, "fast stop", a.until_closed()).await;
    assert!(
        ms.iter()
            .any(|m| matches!(m, BackendMessage::ErrorResponse(e) if e.code == "57P01")),
        "{ms:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    r.join(Duration::from_secs(5)).await.expect("router stops");
}

/// A bare TCP connection: did the router close it without serving it?
struct RawClientProbe(tokio::net::TcpStream);

impl RawClientProbe {
    async fn closed_soon(&mut self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut b = bytes::BytesMut::new();
        orochi_wire::StartupRequest::Startup {
            minor: 0,
            params: vec![("user".into(), TRUST_USER.into())],
        }
        .encode(&mut b);
        if self.0.write_all(&b).await.is_err() {
            return true;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(2), self.0.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            // Told to go away is fine too; being authenticated is not.
            Ok(Ok(n)) => buf[0] == b'E' && n > 0,
            Err(_) => false,
        }
    }
}
