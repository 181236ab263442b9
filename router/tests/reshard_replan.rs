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
//! waits for the Execute, which may come after a cutover.

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
