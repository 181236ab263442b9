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
use orochi_wire::FrontendMessage;
use std::time::Duration;

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
