//! A multi-shard portal held from its Bind to its Execute (the router answers the Bind,
//! the plan waits for the Execute) meets a reshard cutover in between, or while its
//! Execute waits, and is answered as it would be on the map it finally runs on: never
//! refused, never run on shard numbers of a map the router no longer serves.
//! The cutovers are played on an in-process router (`common::reshard`).

mod common;

use common::raw::*;
use common::reshard::*;
use common::shards::*;
use common::*;
use orochi_wire::{BackendMessage, FrontendMessage};
use sqlx::ConnectOptions;
use std::time::Duration;

/// A Bind of `SELECT id, name, score FROM users WHERE id IN ($1, $2)` with the id in
/// binary and the rest in text.
fn bind_pair(a: i64, b: i64) -> FrontendMessage {
    let text = |v: i64| Some(bytes::Bytes::from(v.to_string()));
    FrontendMessage::Bind {
        portal: String::new(),
        statement: String::new(),
        param_formats: vec![],
        params: vec![text(a), text(b)],
        result_formats: vec![1, 0, 0],
    }
}

const PAIR: &str = "SELECT id, name, score FROM users WHERE id IN ($1, $2)";

/// Two keys on different shards of the old map (two shards) that the new map (three)
/// puts on one.
fn split_then_joined() -> (i64, i64) {
    for a in 1..=ROWS {
        for b in a + 1..=ROWS {
            if shard_of(a) != shard_of(b) && shard_in(a, 3) == shard_in(b, 3) {
                return (a, b);
            }
        }
    }
    panic!("no pair of keys split by two shards and joined by three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_the_new_map_puts_on_one_shard_answers_as_that_shard_does() {
    let (router, db, new) = old_and_new().await;
    let (a, b) = split_then_joined();
    let mut client = router.raw(&db).await;
    client
        .send(&[
            parse("", PAIR),
            bind_pair(a, b),
            describe(b'P', ""),
            FrontendMessage::Flush,
        ])
        .await;
    // Held by the router: two shards of the old map.
    assert_eq!(tags(&client.take(2).await), "12");
    router.app.pause(&db);
    client.send(&[execute("", 0), FrontendMessage::Sync]).await;
    assert_eq!(
        client.recv_within(Duration::from_millis(300)).await,
        Err(()),
        "the Execute waits for RESUME"
    );
    cutover(&router, &db, &new).await;
    let held = within(10, "the portal's answer", client.until_ready()).await;
    assert!(first_error(&held).is_none(), "{held:?}");

    // The same Bind, Describe and Execute on the new map, where they go to one shard.
    let mut direct = router.raw(&db).await;
    direct
        .send(&[
            parse("", PAIR),
            bind_pair(a, b),
            describe(b'P', ""),
            execute("", 0),
            FrontendMessage::Sync,
        ])
        .await;
    let direct = within(10, "the direct answer", direct.until_ready()).await;
    assert_eq!(tags(&direct[..2]), "12");
    assert_eq!(
        held,
        direct[2..],
        "the description, rows (binary id), tag and status of a direct Bind and Execute"
    );
    let ids: Vec<i64> = held
        .iter()
        .filter_map(|m| match m {
            BackendMessage::DataRow(cols) => cols[0]
                .as_ref()
                .map(|v| i64::from_be_bytes(v[..].try_into().unwrap())),
            _ => None,
        })
        .collect();
    let mut ids = ids;
    ids.sort();
    assert_eq!(ids, [a, b], "both rows, from the one shard that has them");
}

/// The Execute of a held portal plans it again after a cutover and waits there (the
/// collation check an ORDER BY across shards needs, on the new map's shard 0, whose
/// only connection is taken); the pause of a second cutover — a reverse — begins
/// meanwhile, so the Execute meets it at its own checkouts. It is planned again on the
/// map it then runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_portal_that_meets_the_pause_at_its_checkouts_is_planned_again() {
    let (router, db, new) = old_and_new().await;
    let mut client = router.raw(&db).await;
    client
        .send(&[
            parse("", "SELECT id FROM users ORDER BY id"),
            bind("", "", &[]),
            FrontendMessage::Flush,
        ])
        .await;
    assert_eq!(tags(&client.take(2).await), "12");

    // A cutover between the Bind and the Execute; the new shard 0 is taken before RESUME.
    router.app.pause(&db);
    switch(&router, &db, &new, 3);
    let held = hold_shard(&router, &db, 0).await;
    router.app.resume(&db);
    client.send(&[execute("", 0), FrontendMessage::Sync]).await;
    assert_eq!(
        client.recv_within(Duration::from_millis(500)).await,
        Err(()),
        "planned again on the new map, the Execute waits for its shard 0"
    );

    // The reverse begins: the Execute plans on and waits at its checkouts.
    router.app.pause(&db);
    held.release();
    all_back(&router, &db).await;
    switch(&router, &db, &db, 2);
    router.app.resume(&db);

    let answer = within(10, "the portal's answer", client.until_ready()).await;
    assert!(
        first_error(&answer).is_none(),
        "planned again at its checkouts, not refused: {answer:?}"
    );
    let want: Vec<String> = (1..=ROWS).map(|k| k.to_string()).collect();
    assert_eq!(first_column(&answer), want, "every row, once, in order");
}

/// The same inside the client's transaction, for a write: the one-shard portal joins
/// the transaction on the shard the new map names, and COMMIT makes it durable there;
/// nothing reaches the old shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_portal_the_new_map_puts_on_one_shard_joins_the_transaction_there() {
    let (router, db, new) = old_and_new().await;
    let (a, b) = split_then_joined();
    let mut client = router.raw(&db).await;
    assert!(first_error(&client.query("BEGIN").await).is_none());
    client
        .send(&[
            parse("", "UPDATE users SET name = $3 WHERE id IN ($1, $2)"),
            bind("", "", &[&a.to_string(), &b.to_string(), "moved"]),
            FrontendMessage::Flush,
        ])
        .await;
    assert_eq!(tags(&client.take(2).await), "12");
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
    assert!(
        answer
            .iter()
            .any(|m| matches!(m, BackendMessage::CommandComplete(t) if t == "UPDATE 2")),
        "{answer:?}"
    );
    assert_eq!(
        ready_status(&answer),
        Some(b'T'),
        "still in the transaction"
    );
    assert!(first_error(&client.query("COMMIT").await).is_none());

    let names = |k: usize, db: String| async move {
        let mut c = shard_opts(k, APP_USER, APP_PASSWORD, &db)
            .connect()
            .await
            .unwrap();
        sqlx::query_scalar::<_, String>("SELECT name FROM users WHERE id IN ($1, $2)")
            .bind(a)
            .bind(b)
            .fetch_all(&mut c)
            .await
            .unwrap()
    };
    let s = shard_in(a, 3);
    assert_eq!(
        names(s, new.clone()).await,
        ["moved", "moved"],
        "new shard {s}"
    );
    for k in 0..2 {
        assert!(
            names(k, db.clone()).await.iter().all(|n| n != "moved"),
            "old shard {k} untouched"
        );
    }
}
