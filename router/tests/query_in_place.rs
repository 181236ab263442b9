//! Simple Queries on an unsharded pool are handled in place when nothing has to wait
//! (`client/query_now.rs`, issue 16): a transaction's later ones, and autocommit ones
//! that find a connection ready. They must keep every check and every piece of
//! bookkeeping of the full path. A session setting made inside a transaction is still
//! tracked (the next client on the same server does not see it), LISTEN is still
//! refused outside session pooling, the two-phase-commit guard still refuses the
//! router's transactions, and a pipeline of Queries is answered in order. Session
//! pooling sends every Query in place. A connection with another client's settings or
//! temporary table still goes through the full checkout. The extended protocol's first
//! message of a statement, a Parse or a Bind, takes a ready connection in place the same
//! way (`extended_first_now`). Raw protocol, a pool of one connection, so both clients
//! share one server.

mod common;

use common::raw::{
    bind, describe, execute, first_column, first_error, parse, ready_status, RawClient,
};
use common::*;
use orochi_wire::{BackendMessage, FrontendMessage};

async fn ok(c: &mut RawClient, sql: &str) -> Vec<String> {
    let ms = c.query(sql).await;
    assert!(first_error(&ms).is_none(), "{sql}: {ms:?}");
    first_column(&ms)
}

async fn code(c: &mut RawClient, sql: &str) -> String {
    let ms = c.query(sql).await;
    first_error(&ms)
        .unwrap_or_else(|| panic!("{sql}: no error in {ms:?}"))
        .code
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactions_later_queries_keep_the_full_paths_checks() {
    let (r, db) = setup("transaction", 1).await;
    let mut a = r.raw(&db).await;
    let mut b = r.raw(&db).await;

    // A session setting made by a later statement of a transaction is tracked: the
    // other client, on the same server after COMMIT, does not see it; its own does.
    ok(&mut a, "BEGIN").await;
    ok(&mut a, "SET application_name = 'set_in_place'").await;
    ok(&mut a, "SET LOCAL statement_timeout = '7s'").await;
    assert_eq!(ok(&mut a, "SHOW statement_timeout").await, ["7s"]);
    ok(&mut a, "COMMIT").await;
    assert_ne!(ok(&mut b, "SHOW application_name").await, ["set_in_place"]);
    assert_eq!(ok(&mut a, "SHOW application_name").await, ["set_in_place"]);

    // LISTEN inside a transaction, transaction pooling: refused by the router.
    ok(&mut a, "BEGIN").await;
    assert_eq!(code(&mut a, "LISTEN in_place").await, "0A000");
    ok(&mut a, "ROLLBACK").await;

    // The two-phase-commit guard: the router's own prepared transactions (PostgreSQL
    // itself would answer 25001 inside a transaction block).
    ok(&mut a, "BEGIN").await;
    assert_eq!(
        code(&mut a, "COMMIT PREPARED 'orochi_x_1_c0'").await,
        "42501"
    );
    ok(&mut a, "ROLLBACK").await;

    // A pipeline: the transaction's Queries written at once, answered in order.
    a.send(&[
        FrontendMessage::Query("BEGIN".into()),
        FrontendMessage::Query("SELECT 1".into()),
        FrontendMessage::Query("SELECT 2; SELECT 3".into()),
        FrontendMessage::Query("COMMIT".into()),
    ])
    .await;
    let mut rows = Vec::new();
    let mut status = Vec::new();
    for _ in 0..4 {
        let ms = a.until_ready().await;
        assert!(first_error(&ms).is_none(), "{ms:?}");
        rows.extend(first_column(&ms));
        status.push(ready_status(&ms).unwrap() as char);
    }
    assert_eq!(rows, ["1", "2", "3"]);
    assert_eq!(status, ['T', 'T', 'T', 'I']);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_pooling_answers_every_query_in_place_with_its_effects() {
    // Session pooling holds the server from the first statement on: every later one,
    // in a transaction or not, goes out in place. LISTEN is allowed there, and the
    // session's own notification comes back with its NOTIFY's answer.
    let (r, db) = setup("session", 1).await;
    let mut a = r.raw(&db).await;
    ok(&mut a, "SELECT 1").await;
    ok(&mut a, "SET application_name = 'held'").await;
    assert_eq!(ok(&mut a, "SHOW application_name").await, ["held"]);
    ok(&mut a, "LISTEN in_place").await;
    let ms = a.query("NOTIFY in_place, 'hello'").await;
    assert!(first_error(&ms).is_none(), "{ms:?}");
    assert!(
        common::raw::tags(&ms).contains('A'),
        "the notification: {ms:?}"
    );
    assert_eq!(
        code(&mut a, "COMMIT PREPARED 'orochi_x_1_c0'").await,
        "42501"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_connection_is_lent_in_place_only_when_nothing_must_be_reset() {
    // Autocommit statements of two clients alternate on the pool's one connection: a
    // client's own is lent in place, the other's settings are replayed first and a
    // connection made dirty by a temporary table is reset (the full checkout).
    let (r, db) = setup("transaction", 1).await;
    let mut a = r.raw(&db).await;
    let mut b = r.raw(&db).await;
    ok(&mut a, "SET application_name = 'a_app'").await;
    ok(&mut b, "SET application_name = 'b_app'").await;
    for _ in 0..3 {
        assert_eq!(ok(&mut a, "SHOW application_name").await, ["a_app"]);
        assert_eq!(ok(&mut a, "SHOW application_name").await, ["a_app"]);
        assert_eq!(ok(&mut b, "SHOW application_name").await, ["b_app"]);
    }
    ok(&mut a, "CREATE TEMP TABLE only_a (x int)").await;
    ok(&mut a, "INSERT INTO only_a VALUES (1)").await;
    assert_eq!(ok(&mut a, "SELECT count(*) FROM only_a").await, ["1"]);
    assert_eq!(code(&mut b, "SELECT * FROM only_a").await, "42P01");
    assert_eq!(ok(&mut b, "SHOW application_name").await, ["b_app"]);
    assert_eq!(ok(&mut a, "SHOW application_name").await, ["a_app"]);
}

/// `sql` in the extended protocol as libpq sends it: the unnamed statement parsed,
/// bound, its portal described and executed, then Sync.
async fn ext(c: &mut RawClient, sql: &str) -> Vec<BackendMessage> {
    c.send(&[
        parse("", sql),
        bind("", "", &[]),
        describe(b'P', ""),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    c.until_ready().await
}

/// A named statement bound and executed, as `pgbench -M prepared` does.
async fn bound(c: &mut RawClient, statement: &str) -> Vec<BackendMessage> {
    c.send(&[
        bind("", statement, &[]),
        describe(b'P', ""),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    c.until_ready().await
}

fn column(ms: &[BackendMessage]) -> Vec<String> {
    assert!(first_error(ms).is_none(), "{ms:?}");
    assert_eq!(ready_status(ms), Some(b'I'), "{ms:?}");
    first_column(ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_statements_first_message_takes_a_ready_connection_with_its_checks() {
    // Two clients alternate autocommit statements in the extended protocol on the
    // pool's one connection: each keeps its own settings, a named statement is
    // prepared on the connection before its Bind when the server lacks it (after the
    // other client's temporary table had it reset), and the guards still refuse.
    let (r, db) = setup("transaction", 1).await;
    let mut a = r.raw(&db).await;
    let mut b = r.raw(&db).await;
    ok(&mut a, "SET application_name = 'a_ext'").await;
    ok(&mut b, "SET application_name = 'b_ext'").await;
    let show = "SELECT current_setting('application_name')";
    a.send(&[parse("app", show), FrontendMessage::Sync]).await;
    assert_eq!(column(&a.until_ready().await), Vec::<String>::new());
    for _ in 0..3 {
        assert_eq!(column(&ext(&mut a, show).await), ["a_ext"]);
        assert_eq!(column(&bound(&mut a, "app").await), ["a_ext"]);
        assert_eq!(column(&ext(&mut b, show).await), ["b_ext"]);
        assert_eq!(column(&bound(&mut a, "app").await), ["a_ext"]);
    }
    ok(&mut b, "CREATE TEMP TABLE only_b (x int)").await;
    assert_eq!(
        column(&ext(&mut b, "SELECT count(*) FROM only_b").await),
        ["0"]
    );
    assert_eq!(column(&bound(&mut a, "app").await), ["a_ext"]);
    let ms = ext(&mut a, "SELECT count(*) FROM only_b").await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("42P01"),
        "{ms:?}"
    );

    // The two-phase-commit guard on a first Parse; the session goes on after its Sync.
    let ms = ext(&mut a, "COMMIT PREPARED 'orochi_x_1_c0'").await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("42501"),
        "{ms:?}"
    );
    assert_eq!(ready_status(&ms), Some(b'I'), "{ms:?}");
    assert_eq!(column(&ext(&mut a, show).await), ["a_ext"]);
    // A Bind of a statement never prepared: PostgreSQL's own error, nothing held.
    let ms = bound(&mut a, "never_prepared").await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("26000"),
        "{ms:?}"
    );
    assert_eq!(column(&ext(&mut b, show).await), ["b_ext"]);
}
