//! Pool behaviour: exhaustion (53300), dead server connections, fairness under load,
//! and the session and statement pool modes (including LISTEN/NOTIFY).

mod common;

use common::raw::{first_column, first_error, ready_status, tags, RawClient};
use common::*;
use orochi_wire::{BackendMessage, FrontendMessage};
use sqlx::ConnectOptions;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_53300_then_recovers() {
    let (r, db) = setup_with("transaction", 1, "", "connect_timeout = 500").await;
    let mut holder = r.connect(&db).await;
    let mut waiter = r.connect(&db).await;
    exec(&mut holder, "BEGIN").await;
    one(&mut holder, "SELECT 'holding'::text").await;
    let started = Instant::now();
    let e = scalar(&mut waiter, "SELECT 'never'::text")
        .await
        .expect_err("no connection can free up");
    let waited = started.elapsed();
    assert_eq!(code(&e).as_deref(), Some("53300"), "{e}");
    let text = message_and_hint(&e);
    assert!(text.contains("no server connection available"), "{text}");
    assert!(text.contains(&db), "message should name the pool: {text}");
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "waited {waited:?} for a 500 ms connect_timeout"
    );
    // The waiting client's session survived the error.
    exec(&mut holder, "COMMIT").await;
    assert_eq!(one(&mut waiter, "SELECT 'now'::text").await, "now");

    // A waiter that gets the connection before the timeout simply waits.
    exec(&mut holder, "BEGIN").await;
    let opts = r.opts(APP_USER, APP_PASSWORD, &db);
    let t = tokio::spawn(async move {
        let mut w = opts.connect().await.unwrap();
        one(&mut w, "SELECT 'waited'::text").await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    exec(&mut holder, "COMMIT").await;
    assert_eq!(t.await.unwrap(), "waited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_idle_server_connection_is_replaced() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.connect(&db).await;
    let pid1 = one(&mut c, "SELECT pg_backend_pid()::text").await;
    terminate(&pid1).await;
    // The next query of the same client (and of a new one) just works, on a new backend.
    let pid2 = one(&mut c, "SELECT pg_backend_pid()::text").await;
    assert_ne!(pid1, pid2);
    let mut d = r.connect(&db).await;
    assert_eq!(one(&mut d, "SELECT 'ok'::text").await, "ok");
}

/// Ends server backend `pid` and waits (up to 5 s) until it is gone.
async fn terminate(pid: &str) {
    let mut su = superuser("postgres").await;
    let gone: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1::int, 5000)")
        .bind(pid.parse::<i32>().unwrap())
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert!(gone, "backend {pid} still there after 5 s");
}

/// A server session ended inside the client's transaction (`pg_terminate_backend`):
/// PostgreSQL sends its FATAL (57P01) and closes. The client gets exactly that, as it
/// would from PostgreSQL itself — the router adds no error of its own when the server
/// closes — and the pool's next client gets a working connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_fatal_ends_the_session_with_nothing_added() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    c.rows("BEGIN").await;
    let pid = c.rows("SELECT pg_backend_pid()::text").await;
    terminate(&pid[0]).await;
    c.send(&[FrontendMessage::Query("SELECT 1".into())]).await;
    let end = within(5, "the end of the session", c.until_closed()).await;
    let errors: Vec<(&str, &str)> = end
        .iter()
        .filter_map(|m| match m {
            BackendMessage::ErrorResponse(f) => Some((f.severity.as_str(), f.code.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(errors, [("FATAL", "57P01")], "{end:?}");
    let mut other = r.raw(&db).await;
    let n = within(5, "the pool's next client", other.rows("SELECT 'next'")).await;
    assert_eq!(n, ["next"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_share_a_small_pool_fairly() {
    let (r, db) = setup_with("transaction", 3, "", "connect_timeout = 10000").await;
    let mut c = r.connect(&db).await;
    exec(
        &mut c,
        "CREATE TABLE counter (id int PRIMARY KEY, n int); INSERT INTO counter VALUES (1, 0)",
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let opts = r.opts(APP_USER, APP_PASSWORD, &db);
        tasks.push(tokio::spawn(async move {
            let mut c = opts.connect().await.unwrap();
            for _ in 0..10 {
                exec(&mut c, "BEGIN").await;
                exec(&mut c, "UPDATE counter SET n = n + 1 WHERE id = 1").await;
                exec(&mut c, "COMMIT").await;
            }
        }));
    }
    within(40, "20 clients x 10 transactions", async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    assert_eq!(one(&mut c, "SELECT n::text FROM counter").await, "200");
    let mut su = superuser(&db).await;
    let conns: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND usename = 'app'",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert!(conns <= 3, "{conns} server connections for pool_size 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_in_transaction_mode_names_session_mode() {
    let (r, db) = setup("transaction", 2).await;
    let mut c = r.connect(&db).await;
    let e = scalar(&mut c, "LISTEN chan")
        .await
        .expect_err("LISTEN refused");
    assert_eq!(code(&e).as_deref(), Some("0A000"), "{e}");
    let text = message_and_hint(&e);
    assert!(
        text.contains("session"),
        "must say to use session mode: {text}"
    );
    // Extended protocol too, and the session continues.
    let e = sqlx::query("LISTEN chan")
        .execute(&mut c)
        .await
        .expect_err("LISTEN refused");
    assert_eq!(code(&e).as_deref(), Some("0A000"), "{e}");
    assert_eq!(one(&mut c, "SELECT 'fine'::text").await, "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_listen_notify_and_pinned_connection() {
    let (r, db) = setup("session", 2).await;
    let mut listener = r.raw(&db).await;
    listener.rows("LISTEN chan").await;
    let pid = listener.rows("SELECT pg_backend_pid()::text").await;
    // Session state persists on the pinned connection.
    listener.rows("SET work_mem = '9MB'").await;
    let mut sender = r.raw(&db).await;
    sender.rows("NOTIFY chan, 'hello'").await;
    let m = within(5, "notification", listener.recv()).await;
    match m {
        Some(BackendMessage::NotificationResponse {
            channel, payload, ..
        }) => {
            assert_eq!((channel.as_str(), payload.as_str()), ("chan", "hello"));
        }
        other => panic!("expected a notification, got {other:?}"),
    }
    assert_eq!(listener.rows("SELECT pg_backend_pid()::text").await, pid);
    assert_eq!(listener.rows("SHOW work_mem").await, ["9MB"]);
    // Session state does not survive the client: the next client on that connection is clean.
    drop(listener);
    drop(sender);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut next = r.raw(&db).await;
    assert_eq!(next.rows("SHOW work_mem").await, ["4MB"]);
    let ms = next
        .query("SELECT count(*)::text FROM pg_listening_channels()")
        .await;
    assert_eq!(first_column(&ms), ["0"]);

    // pool_size 1 in session mode: a second concurrent client of the same user waits,
    // then gets 53300 (at login or at its first query); after the first leaves, it works.
    let (r, db) = setup_with("session", 1, "", "connect_timeout = 300").await;
    let mut first = r.connect(&db).await;
    assert_eq!(one(&mut first, "SELECT 'first'::text").await, "first");
    let opts = r.opts(APP_USER, APP_PASSWORD, &db);
    let refused = match opts.clone().connect().await {
        Err(e) => code(&e),
        Ok(mut second) => scalar(&mut second, "SELECT '1'::text")
            .await
            .err()
            .and_then(|e| code(&e)),
    };
    assert_eq!(
        refused.as_deref(),
        Some("53300"),
        "a second session client must not share the pinned connection"
    );
    sqlx::Connection::close(first).await.unwrap();
    let mut second = within(5, "session client after the first left", opts.connect())
        .await
        .unwrap();
    assert_eq!(one(&mut second, "SELECT 'second'::text").await, "second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_mode_basics() {
    let (r, db) = setup("statement", 1).await;
    let mut c = r.connect(&db).await;
    let mut d = r.connect(&db).await;
    for i in 0..5 {
        assert_eq!(
            one(&mut c, &format!("SELECT '{i}'::text")).await,
            i.to_string()
        );
        assert_eq!(one(&mut d, "SELECT 'd'::text").await, "d");
    }
    // A single Query message with a whole transaction is one statement batch: allowed.
    assert_eq!(
        one(&mut c, "BEGIN; SELECT 'in one'::text; COMMIT")
            .await
            .as_str(),
        "in one"
    );
    // Extended protocol statements work too.
    let v: i32 = sqlx::query_scalar("SELECT $1::int4")
        .bind(5)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(v, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_mode_refuses_multi_statement_transactions_cleanly() {
    let (r, db) = setup("statement", 1).await;
    let mut c = r.raw(&db).await;
    // BEGIN as its own statement must be refused with a clear error, and the protocol must
    // stay in step: the reply to the next query is that query's reply.
    let first = c.query("BEGIN").await;
    let mut all = first.clone();
    // Whatever the router sends unasked after BEGIN would show up here.
    while let Ok(Some(m)) = c.recv_within(Duration::from_millis(300)).await {
        all.push(m);
    }
    let e = first_error(&all)
        .unwrap_or_else(|| panic!("BEGIN accepted in statement mode: {}", tags(&all)));
    assert_eq!(e.code, "0A000");
    assert!(e.message.contains("statement pooling"), "{}", e.message);
    assert!(
        all.len() == first.len(),
        "the router sent messages nobody asked for after BEGIN's ReadyForQuery: {} then {}",
        tags(&first),
        tags(&all[first.len()..])
    );
    assert_eq!(
        ready_status(&first),
        Some(b'I'),
        "no transaction may stay open"
    );
    let ms = c.query("SELECT 'next'").await;
    assert_eq!(first_column(&ms), ["next"], "{}", tags(&ms));

    // sqlx: begin() fails clearly and the connection stays usable.
    let mut s = r.opts(APP_USER, APP_PASSWORD, &db).connect().await.unwrap();
    match sqlx::Connection::begin(&mut s).await {
        Err(e) => assert_eq!(code(&e).as_deref(), Some("0A000"), "{e}"),
        Ok(mut tx) => {
            // If BEGIN itself passed, the first statement inside must fail with 0A000.
            let e = sqlx::raw_sql("SELECT 1")
                .execute(&mut *tx)
                .await
                .expect_err("must be refused");
            assert_eq!(code(&e).as_deref(), Some("0A000"), "{e}");
        }
    }
    let v: String = within(
        5,
        "query after refused transaction",
        scalar(&mut s, "SELECT 'usable'::text"),
    )
    .await
    .unwrap();
    assert_eq!(v, "usable");
}

/// `server_lifetime` and `idle_timeout` (milliseconds here): a connection past either is
/// not lent again; one within both is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_and_long_idle_connections_are_replaced() {
    for (general, replaced) in [
        ("server_lifetime = 300", true),
        ("idle_timeout = 300", true),
        ("server_lifetime = 60000\nidle_timeout = 60000", false),
    ] {
        let (r, db) = setup_with("transaction", 1, general, "").await;
        let mut c = r.connect(&db).await;
        let pid1 = one(&mut c, "SELECT pg_backend_pid()::text").await;
        tokio::time::sleep(Duration::from_millis(450)).await;
        let pid2 = one(&mut c, "SELECT pg_backend_pid()::text").await;
        assert_eq!(pid1 != pid2, replaced, "{general}: {pid1} then {pid2}");
    }
}

/// A router whose pool has one connection, held by a transaction of the returned client
/// (table `queued` exists), and a second client whose `INSERT INTO queued VALUES (x)` is
/// sent and now waits for that connection.
async fn one_held_and_one_queued(x: i32) -> (Router, String, RawClient, RawClient) {
    let (r, db) = setup_with("transaction", 1, "", "connect_timeout = 20000").await;
    let mut holder = r.raw(&db).await;
    holder.rows("CREATE TABLE queued (x int)").await;
    holder.rows("BEGIN").await;
    holder.rows("SELECT 1").await;
    let mut waiting = r.raw(&db).await;
    insert_queued(&mut waiting, x).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    (r, db, holder, waiting)
}

async fn insert_queued(c: &mut RawClient, x: i32) {
    let sql = format!("INSERT INTO queued VALUES ({x})");
    c.send(&[FrontendMessage::Query(sql)]).await;
}

/// A client that closes its connection while its statement waits for a server
/// connection leaves the queue: the statement never runs, and the connection goes to
/// the clients still there (drivers that close on a timeout otherwise pile up queued
/// statements that run for nobody).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_whose_client_left_while_waiting_does_not_run() {
    let (r, db, mut holder, gone) = one_held_and_one_queued(1).await;
    drop(gone);
    let mut next = r.raw(&db).await;
    insert_queued(&mut next, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.rows("COMMIT").await;
    // Had the first statement stayed queued, it would have run first, here.
    assert_eq!(tags(&next.until_ready().await), "CZ");
    let rows = holder.rows("SELECT string_agg(x::text, ',') FROM queued");
    assert_eq!(rows.await, vec!["2"]);
}

/// A cancel request for a statement that waits for a server connection ends the wait
/// with 57014, as PostgreSQL answers a cancelled statement: it did not run, and the
/// session goes on. A cancel while the client is idle touches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_ends_a_wait_for_a_server_connection() {
    let (r, _db, mut holder, mut w) = one_held_and_one_queued(1).await;
    let asked = Instant::now();
    w.cancel(r.port).await;
    let ms = w.until_ready().await;
    let code = first_error(&ms).map(|e| e.code.clone());
    assert_eq!(code.as_deref(), Some("57014"), "{}", tags(&ms));
    assert_eq!(ready_status(&ms), Some(b'I'));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    holder.rows("COMMIT").await;
    assert_eq!(w.rows("SELECT count(*) FROM queued").await, vec!["0"]);
    w.cancel(r.port).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.rows("SELECT 'after'::text").await, vec!["after"]);
}

/// A waiting client that sends more (a pipelined statement) is not taken for one that
/// left: both statements run, in order, once the connection frees up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_client_that_sends_more_is_still_served() {
    let (_r, _db, mut holder, mut w) = one_held_and_one_queued(1).await;
    insert_queued(&mut w, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.rows("COMMIT").await;
    assert_eq!(tags(&w.until_ready().await), "CZ");
    assert_eq!(tags(&w.until_ready().await), "CZ");
    let rows = holder.rows("SELECT string_agg(x::text, ',' ORDER BY x) FROM queued");
    assert_eq!(rows.await, vec!["1,2"]);
}
