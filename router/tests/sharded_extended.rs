//! The extended protocol on a sharded pool once a server is held: a Describe and an
//! Execute that follow their Bind to the held shard go out in place (issue 16), while
//! the portals the router keeps itself still answer from the router — a fan-out's held
//! Bind, its result fetched in batches, a COMMIT of a transaction spanning shards — and
//! a statement's Describe is renamed to its server name. Raw protocol, two real shards.

mod common;

use common::raw::{bind, close, describe, execute, first_column, parse, tags, RawClient};
use common::shards::*;
use orochi_wire::FrontendMessage;

fn on_shard(k: usize) -> impl Iterator<Item = i64> {
    (1..).filter(move |&id| shard_of(id) == k)
}

async fn simple(c: &mut RawClient, sql: &str) -> String {
    let ms = c.query(sql).await;
    assert!(common::raw::first_error(&ms).is_none(), "{sql}: {ms:?}");
    tags(&ms)
}

/// The DataRows' first columns and the message tags of one request.
async fn request(c: &mut RawClient, msgs: &[FrontendMessage]) -> (Vec<String>, String) {
    let mut all = msgs.to_vec();
    all.push(FrontendMessage::Sync);
    c.send(&all).await;
    let ms = c.until_ready().await;
    assert!(common::raw::first_error(&ms).is_none(), "{ms:?}");
    (first_column(&ms), tags(&ms))
}

/// A read over both shards, described and fetched four rows at a time: the router keeps
/// its portal and serves the batches itself.
fn fan_out_in_batches() -> Vec<FrontendMessage> {
    vec![
        parse("", "SELECT id FROM users WHERE id <= 6 ORDER BY id"),
        bind("", "", &[]),
        describe(b'P', ""),
        execute("", 4),
        execute("", 0),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_on_the_held_shard_and_the_routers_own_in_one_transaction() {
    let (r, db) = cluster("").await;
    let mut c = r.raw(&db).await;
    let a = on_shard(0).next().unwrap();
    simple(&mut c, "BEGIN").await;

    // The transaction's first statement takes shard 0; then a portal on it, fetched two
    // rows at a time by the server (the Describe and the Executes go out in place).
    let sql = "SELECT id * 10 + g FROM users, generate_series(1, 3) g WHERE id = $1 ORDER BY g";
    let (rows, t) = request(
        &mut c,
        &[
            parse("three", sql),
            bind("", "three", &[&a.to_string()]),
            describe(b'P', ""),
            execute("", 2),
            execute("", 0),
        ],
    )
    .await;
    let want: Vec<String> = (1..=3).map(|g| (a * 10 + g).to_string()).collect();
    assert_eq!(rows, want);
    assert_eq!(t, "12TDDsDCZ");

    // A statement's Describe on the held shard: renamed to the server's name for it.
    c.send(&[describe(b'S', "three"), FrontendMessage::Sync])
        .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "tTZ", "{ms:?}");

    // A fan-out read while shard 0 is held: the router keeps the portal (Describe from
    // its plan, rows in batches it serves itself), then the held shard again.
    let (rows, t) = request(&mut c, &fan_out_in_batches()).await;
    assert_eq!(rows, ["1", "2", "3", "4", "5", "6"]);
    assert_eq!(t, "12TDDDDsDDCZ");
    let (_, t) = request(
        &mut c,
        &[
            parse("", "SELECT count(*) FROM users"),
            bind("", "", &[]),
            close(b'P', ""),
            bind("", "three", &[&a.to_string()]),
            execute("", 0),
        ],
    )
    .await;
    assert_eq!(
        t, "1232DDDCZ",
        "a closed fan-out portal, then the held shard's"
    );
    // The same in one pipeline, where shard 0 is still held when the fan-out is bound.
    let mut pipeline = vec![bind("", "three", &[&a.to_string()]), execute("", 1)];
    pipeline.extend(fan_out_in_batches());
    let (rows, t) = request(&mut c, &pipeline).await;
    let mut want = vec![(a * 10 + 1).to_string()];
    want.extend((1..=6).map(|i| i.to_string()));
    assert_eq!(rows, want);
    assert_eq!(t, "2Ds12TDDDDsDDCZ");
    simple(&mut c, "COMMIT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_spanning_shards_in_the_extended_protocol_is_the_routers() {
    let (r, db) = cluster("").await;
    let mut c = r.raw(&db).await;
    let (a, b) = (on_shard(0).next().unwrap(), on_shard(1).next().unwrap());
    simple(&mut c, "BEGIN").await;
    for id in [a, b] {
        let (_, t) = request(
            &mut c,
            &[
                parse("", "UPDATE users SET name = 'both' WHERE id = $1"),
                bind("", "", &[&id.to_string()]),
                describe(b'P', ""),
                execute("", 0),
            ],
        )
        .await;
        assert_eq!(t, "12nCZ");
    }
    // Held: the second shard's connection. The COMMIT's portal is the router's (two-phase
    // commit over both), never the held shard's.
    let (_, t) = request(
        &mut c,
        &[
            parse("", "COMMIT"),
            bind("", "", &[]),
            describe(b'P', ""),
            execute("", 0),
        ],
    )
    .await;
    assert_eq!(t, "12nCZ");
    let status = common::raw::ready_status(&c.query("").await);
    assert_eq!(status, Some(b'I'));
    for id in [a, b] {
        let rows = c
            .rows(&format!("SELECT name FROM users WHERE id = {id}"))
            .await;
        assert_eq!(rows, ["both"], "committed on shard {}", shard_of(id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parse_is_answered_by_the_router_and_a_duplicate_name_refused() {
    let (r, db) = cluster("").await;
    let mut c = r.raw(&db).await;
    let a = on_shard(1).next().unwrap();
    let sql = "SELECT name FROM users WHERE id = $1";
    let (_, t) = request(&mut c, &[parse("dup", sql)]).await;
    assert_eq!(t, "1Z");
    c.send(&[
        parse("dup", "SELECT 1"),
        bind("", "dup", &[&a.to_string()]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    let code = common::raw::first_error(&ms).map(|e| e.code.clone());
    assert_eq!(code.as_deref(), Some("42P05"), "{ms:?}");
    assert_eq!(tags(&ms), "EZ", "the rest of the batch skipped to Sync");
    // The first statement stands; it is prepared on the key's shard at its Bind.
    let (rows, t) = request(
        &mut c,
        &[bind("", "dup", &[&a.to_string()]), execute("", 0)],
    )
    .await;
    assert_eq!(rows, [format!("user{a}")]);
    assert_eq!(t, "2DCZ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unnamed_statement_parsed_again_follows_each_bind_to_its_shard() {
    // libpq's extended mode: the same unnamed Parse before every Bind, the keys on
    // alternating shards; each shard's server gets the statement before its Bind.
    let (r, db) = cluster("").await;
    let mut c = r.raw(&db).await;
    let (a, b) = (on_shard(0).nth(3).unwrap(), on_shard(1).nth(3).unwrap());
    let sql = "SELECT name FROM users WHERE id = $1";
    for id in [a, b, b, a, b] {
        let (rows, t) = request(
            &mut c,
            &[
                parse("", sql),
                bind("", "", &[&id.to_string()]),
                describe(b'P', ""),
                execute("", 0),
            ],
        )
        .await;
        assert_eq!(rows, [format!("user{id}")], "key {id}");
        assert_eq!(t, "12TDCZ");
    }
    // A simple query drops the server's unnamed statement. Sent in one write behind the
    // first request, it reaches the same server before that one is answered; the same
    // Parse after it is sent again before its Bind.
    let first = [
        parse("", sql),
        bind("", "", &[&a.to_string()]),
        execute("", 0),
    ];
    let mut all = first.to_vec();
    all.push(FrontendMessage::Sync);
    all.push(FrontendMessage::Query("SELECT 1".into()));
    all.extend(first);
    all.push(FrontendMessage::Sync);
    c.send(&all).await;
    for want in ["12DCZ", "TDCZ", "12DCZ"] {
        let ms = c.until_ready().await;
        assert_eq!(tags(&ms), want, "{ms:?}");
    }
    // Another text in its place, then the first again.
    for (q, id, want) in [
        ("SELECT id FROM users WHERE id = $1", a, a.to_string()),
        (sql, b, format!("user{b}")),
    ] {
        let (rows, _) = request(
            &mut c,
            &[
                parse("", q),
                bind("", "", &[&id.to_string()]),
                execute("", 0),
            ],
        )
        .await;
        assert_eq!(rows, [want]);
    }
}
