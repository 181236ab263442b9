//! A statement held at a reshard cutover's pause is planned again against the new shard
//! map, not refused. The cutover is played on an in-process router the way
//! `reshard cutover` drives one (PAUSE, `RESHARD SWITCH`, RESUME): two old shards, three
//! new ones.
//!
//! The first window is the one `pause_gate` guards: a statement planned before the pause began
//! and reaching its checkout after it. An INSERT without a column list opens it on
//! purpose: its plan reads the table's columns from shard 0, and shard 0's only
//! connection is held by another client's transaction, so the statement waits there,
//! planned against the old map, while the pause begins and the map is switched.
//!
//! The second is a multi-shard portal: its Bind is answered by the router and its plan
//! waits for the Execute, which may come after a cutover (more in `reshard_held.rs`).
//!
//! Then the windows around it: a statement that meets two cutovers in a row, and one
//! whose planning spans a whole cutover, so that the pool is no longer paused when it
//! reaches its checkout.

mod common;

use common::raw::*;
use common::reshard::*;
use common::shards::*;
use common::*;
use orochi_wire::{BackendMessage, FrontendMessage};
use sqlx::{ConnectOptions, Row};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_batch_held_at_the_pause_runs_on_the_new_map() {
    let (router, db, new) = old_and_new().await;
    // A key the new map puts on its third shard, which the old map does not have.
    let id = (1_000_000..)
        .find(|&k| shard_in(k, 3) == 2)
        .expect("some key lands on new shard 2");
    let holder_key = (1..=ROWS).find(|&k| shard_of(k) == 0).unwrap();

    // The holder's open transaction takes shard 0's only connection.
    let mut holder = router.opts(TRUST_USER, "", &db).connect().await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET name = name WHERE id = {holder_key}"
    )))
    .execute(&mut holder)
    .await
    .unwrap();

    // The extended-protocol batch: planned against the old map, it waits for the
    // columns of `users` on shard 0.
    let mut client = router.raw(&db).await;
    let id_text = id.to_string();
    client
        .send(&[
            parse("", "INSERT INTO users VALUES ($1, $2, 1.0, 'Tokyo')"),
            bind("", "", &[&id_text, "held at the pause"]),
            execute("", 0),
            FrontendMessage::Sync,
        ])
        .await;
    assert_eq!(
        client.recv_within(Duration::from_millis(500)).await,
        Err(()),
        "the batch must wait for shard 0 while the holder's transaction runs"
    );

    // The cutover: PAUSE (the holder's transaction still finishes), switch, RESUME.
    router.app.pause(&db);
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    // The batch read its columns and now waits at its checkout for RESUME.
    all_back(&router, &db).await;
    cutover(&router, &db, &new).await;

    let answer = within(10, "the batch's answer", client.until_ready()).await;
    assert!(
        first_error(&answer).is_none(),
        "the batch must be planned again, not refused: {answer:?}"
    );
    assert!(
        answer
            .iter()
            .any(|m| matches!(m, BackendMessage::CommandComplete(t) if t == "INSERT 0 1")),
        "{answer:?}"
    );

    // Written once, on the shard the new map names; never on an old shard.
    for k in 0..3 {
        let want = i64::from(k == 2);
        assert_eq!(count_on(k, &new, id).await, want, "new shard {k}");
    }
    for k in 0..2 {
        assert_eq!(count_on(k, &db, id).await, 0, "old shard {k}");
    }
    // And an extended-protocol read through the router finds it on the new map.
    let mut reader = router.connect(&db).await;
    let row = sqlx::query("SELECT name FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "held at the pause");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_shard_portal_bound_before_the_cutover_reads_the_new_map() {
    let (router, db, new) = old_and_new().await;
    let mut client = router.raw(&db).await;
    client
        .send(&[
            parse("", "SELECT count(*) FROM users"),
            bind("", "", &[]),
            FrontendMessage::Flush,
        ])
        .await;
    assert_eq!(tags(&client.take(2).await), "12");
    // The cutover begins between the Bind and the Execute.
    router.app.pause(&db);
    client.send(&[execute("", 0), FrontendMessage::Sync]).await;
    assert_eq!(
        client.recv_within(Duration::from_millis(300)).await,
        Err(()),
        "the Execute waits for RESUME"
    );
    cutover(&router, &db, &new).await;
    let answer = within(10, "the portal's answer", client.until_ready()).await;
    assert!(first_error(&answer).is_none(), "{answer:?}");
    assert_eq!(
        first_column(&answer),
        [ROWS.to_string()],
        "every row, counted on all three new shards: {answer:?}"
    );
}

/// A statement that meets two cutovers in a row — a cutover, then a reverse that began
/// while it waited again — is planned again each time and answered on the last map.
/// Each wait is made on purpose: an ORDER BY across shards first asks shard 0 of its
/// map for the collation, and that shard's only connection is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_meets_two_cutovers_in_a_row_runs_on_the_last_map() {
    let (router, db, new) = old_and_new().await;
    let mut client = router.raw(&db).await;
    let held = hold_shard(&router, &db, 0).await;
    client
        .send(&[FrontendMessage::Query(
            "SELECT id FROM users ORDER BY id".into(),
        )])
        .await;
    assert_eq!(
        client.recv_within(Duration::from_millis(500)).await,
        Err(()),
        "the query must wait for shard 0 while its connection is taken"
    );

    // The cutover: the query plans on, and waits at its checkouts for RESUME.
    router.app.pause(&db);
    held.release();
    all_back(&router, &db).await;
    switch(&router, &db, &new, 3);
    // Before RESUME, the new map's shard 0 is taken too: planned again, the query
    // waits there.
    let held = hold_shard(&router, &db, 0).await;
    router.app.resume(&db);
    assert_eq!(
        client.recv_within(Duration::from_millis(500)).await,
        Err(()),
        "planned again on the new map, the query waits for its shard 0"
    );

    // The reverse begins while it waits: back to the old map.
    router.app.pause(&db);
    held.release();
    all_back(&router, &db).await;
    switch(&router, &db, &db, 2);
    router.app.resume(&db);

    let answer = within(10, "the query's answer", client.until_ready()).await;
    assert!(
        first_error(&answer).is_none(),
        "planned again after each cutover, not refused: {answer:?}"
    );
    let want: Vec<String> = (1..=ROWS).map(|k| k.to_string()).collect();
    assert_eq!(first_column(&answer), want, "every row, once, in order");
}

/// A statement whose planning spans a whole cutover — PAUSE, switch and RESUME all
/// while it waited for shard 0 — reaches its checkout when the pool is no longer
/// paused, with shard numbers of the old map: it is planned again there all the same,
/// and written where the new map says, never on a shard of the new map chosen by the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_planned_across_a_whole_cutover_is_planned_again() {
    let (router, db, new) = old_and_new().await;
    // A key the new map puts on its third shard: the old map says shard 0 or 1.
    let id = (1_000_000..)
        .find(|&k| shard_in(k, 3) == 2)
        .expect("some key lands on new shard 2");
    let mut client = router.raw(&db).await;
    let held = hold_shard(&router, &db, 0).await;
    let id_text = id.to_string();
    client
        .send(&[
            parse("", "INSERT INTO users VALUES ($1, $2, 1.0, 'Tokyo')"),
            bind("", "", &[&id_text, "planned across a cutover"]),
            execute("", 0),
            FrontendMessage::Sync,
        ])
        .await;
    assert_eq!(
        client.recv_within(Duration::from_millis(500)).await,
        Err(()),
        "the batch must wait for the columns of users on shard 0"
    );
    router.app.pause(&db);
    cutover(&router, &db, &new).await;
    held.release();

    let answer = within(10, "the batch's answer", client.until_ready()).await;
    assert!(first_error(&answer).is_none(), "{answer:?}");
    for k in 0..3 {
        let want = i64::from(k == 2);
        assert_eq!(count_on(k, &new, id).await, want, "new shard {k}");
    }
    for k in 0..2 {
        assert_eq!(count_on(k, &db, id).await, 0, "old shard {k}");
    }
}
