//! Extended-protocol edge cases with a hand-written client: pipelines, portals with row
//! limits, Describe, Flush, empty queries, notices, errors mid-pipeline, bad messages.

mod common;

use bytes::{BufMut, BytesMut};
use common::raw::{
    bind, close, describe, execute, first_column, first_error, parse, ready_status, tags,
};
use common::*;
use orochi_wire::{BackendMessage, FrontendMessage};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_parse_bind_execute_before_one_sync() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    let mut msgs = Vec::new();
    for i in 0..30 {
        msgs.push(parse("", &format!("SELECT {i}::text")));
        msgs.push(bind("", "", &[]));
        msgs.push(execute("", 0));
    }
    msgs.push(FrontendMessage::Sync);
    c.send(&msgs).await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), format!("{}Z", "12DC".repeat(30)));
    let want: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    assert_eq!(first_column(&ms), want);

    // Named statements and several portals, interleaved, in one pipeline.
    c.send(&[
        parse("a", "SELECT $1::int4 + 1"),
        parse("b", "SELECT $1::text || '!'"),
        bind("pa", "a", &["41"]),
        bind("pb", "b", &["hi"]),
        execute("pb", 0),
        execute("pa", 0),
        bind("", "a", &["1"]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "1122DCDC2DCZ");
    assert_eq!(first_column(&ms), ["hi!", "42", "2"]);
    // Two pipelines sent back to back before reading anything.
    c.send(&[
        bind("", "a", &["9"]),
        execute("", 0),
        FrontendMessage::Sync,
        bind("", "b", &["x"]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let mut ms = c.until_ready().await;
    ms.extend(c.until_ready().await);
    assert_eq!(tags(&ms), "2DCZ2DCZ");
    assert_eq!(first_column(&ms), ["10", "x!"]);
}

/// libpq's extended mode parses the unnamed statement again before every execution;
/// the router compares such a Parse with the statement it has in place (issue 16). Only
/// the very same name, text and types count as the same: a text of the same length or
/// other parameter types are new statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_unnamed_parse_is_compared_in_full() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    let typed = |query: &str, param_types: Vec<u32>| FrontendMessage::Parse {
        name: String::new(),
        query: query.into(),
        param_types,
    };
    let steps: [(FrontendMessage, &[&str], &str); 6] = [
        (parse("", "SELECT 'one'::text"), &[], "one"),
        (parse("", "SELECT 'one'::text"), &[], "one"),
        (parse("", "SELECT 'two'::text"), &[], "two"),
        (typed("SELECT $1::text", vec![25]), &["x"], "x"),
        (typed("SELECT $1::text", vec![25]), &["y"], "y"),
        (typed("SELECT $1::text || '!'", vec![]), &["z"], "z!"),
    ];
    for (p, params, want) in steps {
        c.send(&[
            p,
            bind("", "", params),
            execute("", 0),
            FrontendMessage::Sync,
        ])
        .await;
        let ms = c.until_ready().await;
        assert_eq!(tags(&ms), "12DCZ", "{want}");
        assert_eq!(first_column(&ms), [want]);
    }
    // Inside a transaction, where the Bind and Execute go out in place.
    assert_eq!(ready_status(&c.query("BEGIN").await), Some(b'T'));
    for want in ["a", "a", "b"] {
        c.send(&[
            parse("", &format!("SELECT '{want}'::text")),
            bind("", "", &[]),
            describe(b'P', ""),
            execute("", 0),
            FrontendMessage::Sync,
        ])
        .await;
        let ms = c.until_ready().await;
        assert_eq!(tags(&ms), "12TDCZ");
        assert_eq!(first_column(&ms), [want]);
    }
    assert_eq!(ready_status(&c.query("COMMIT").await), Some(b'I'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_suspended_inside_transaction() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    assert_eq!(ready_status(&c.query("BEGIN").await), Some(b'T'));
    c.send(&[
        parse("", "SELECT generate_series(1, 10)::text"),
        bind("cur", "", &[]),
        execute("cur", 3),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "12DDDsZ");
    assert_eq!(ready_status(&ms), Some(b'T'));
    // Meanwhile another client waits for the only connection; it must not get it mid-transaction.
    let mut other = r.raw(&db).await;
    other
        .send(&[FrontendMessage::Query("SELECT 'other'".into())])
        .await;
    assert!(
        other.recv_within(Duration::from_millis(300)).await.is_err(),
        "the other client must wait for the transaction"
    );
    c.send(&[execute("cur", 3), FrontendMessage::Sync]).await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "DDDsZ");
    assert_eq!(first_column(&ms), ["4", "5", "6"]);
    c.send(&[execute("cur", 0), FrontendMessage::Sync]).await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "DDDDCZ");
    assert_eq!(first_column(&ms), ["7", "8", "9", "10"]);
    assert_eq!(ready_status(&c.query("COMMIT").await), Some(b'I'));
    let ms = other.until_ready().await;
    assert_eq!(first_column(&ms), ["other"]);

    // Without BEGIN: the portal lives until Sync; two row-limited Executes then Sync.
    c.send(&[
        parse("", "SELECT generate_series(1, 5)::text"),
        bind("p2", "", &[]),
        execute("p2", 2),
        execute("p2", 2),
        execute("p2", 2),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "12DDsDDsDCZ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_statement_and_portal() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    c.send(&[
        parse("d", "SELECT $1::int4 AS a, 'x'::text AS b"),
        describe(b'S', "d"),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "1tTZ");
    match &ms[1] {
        BackendMessage::ParameterDescription(types) => assert_eq!(types, &[23]),
        other => panic!("{other:?}"),
    }
    match &ms[2] {
        BackendMessage::RowDescription(fields) => {
            let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(names, ["a", "b"]);
        }
        other => panic!("{other:?}"),
    }
    // Describe on a later Sync cycle (maybe another server connection).
    c.send(&[
        bind("pd", "d", &["5"]),
        describe(b'P', "pd"),
        execute("pd", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "2TDCZ");
    assert_eq!(first_column(&ms), ["5"]);
    // A statement with no result columns: NoData.
    c.send(&[
        parse("n", "SET work_mem = '5MB'"),
        describe(b'S', "n"),
        FrontendMessage::Sync,
    ])
    .await;
    assert_eq!(tags(&c.until_ready().await), "1tnZ");
    // Describe of an unknown statement: 26000.
    c.send(&[describe(b'S', "nope"), FrontendMessage::Sync])
        .await;
    let ms = c.until_ready().await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("26000"),
        "{ms:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_delivers_results_before_sync() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    c.send(&[
        parse("f", "SELECT 'flushed'::text"),
        bind("", "f", &[]),
        execute("", 0),
        FrontendMessage::Flush,
    ])
    .await;
    let ms = c.take(4).await;
    assert_eq!(tags(&ms), "12DC");
    assert_eq!(first_column(&ms), ["flushed"]);
    // More work after the flush, in the same unsynced batch.
    c.send(&[bind("", "f", &[]), execute("", 0), FrontendMessage::Flush])
        .await;
    assert_eq!(tags(&c.take(3).await), "2DC");
    c.send(&[FrontendMessage::Sync]).await;
    assert_eq!(tags(&c.until_ready().await), "Z");
    // Parse of a statement the router already knows, then Flush: ParseComplete arrives.
    let mut d = r.raw(&db).await;
    d.send(&[parse("f", "SELECT 'flushed'::text"), FrontendMessage::Flush])
        .await;
    assert_eq!(tags(&d.take(1).await), "1");
    d.send(&[bind("", "f", &[]), execute("", 0), FrontendMessage::Sync])
        .await;
    assert_eq!(first_column(&d.until_ready().await), ["flushed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_queries() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    assert_eq!(tags(&c.query("").await), "IZ");
    assert_eq!(tags(&c.query("  ;").await), "IZ");
    c.send(&[
        parse("", ""),
        bind("", "", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    assert_eq!(tags(&c.until_ready().await), "12IZ");
    assert_eq!(c.rows("SELECT 'after'").await, ["after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_are_relayed() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    let ms = c
        .query("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$")
        .await;
    assert_eq!(tags(&ms), "NCZ");
    match &ms[0] {
        BackendMessage::NoticeResponse(f) => assert_eq!(f.message, "hello from plpgsql"),
        other => panic!("{other:?}"),
    }
    // In the extended protocol too.
    c.send(&[
        parse(
            "",
            "DO $$ BEGIN RAISE NOTICE 'ext'; RAISE WARNING 'careful'; END $$",
        ),
        bind("", "", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    assert_eq!(tags(&c.until_ready().await), "12NNCZ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_mid_pipeline_discards_until_sync() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    c.send(&[
        parse("", "SELECT 1::text"),
        bind("", "", &[]),
        execute("", 0),
        parse("", "SELECT 1 / g FROM generate_series(0, 0) g"),
        bind("", "", &[]),
        execute("", 0),
        parse("", "SELECT 3::text"),
        bind("", "", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "12DC12EZ");
    assert_eq!(first_error(&ms).map(|e| e.code.as_str()), Some("22012"));
    assert_eq!(first_column(&ms), ["1"]);
    // The next Sync cycle works.
    c.send(&[
        parse("", "SELECT 4::text"),
        bind("", "", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    assert_eq!(first_column(&c.until_ready().await), ["4"]);

    // Named statements: the ones after the error were never created.
    c.send(&[
        parse("ok", "SELECT 'ok'::text"),
        parse("bad", "SELEC"),
        parse("after", "SELECT 'after'::text"),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "1EZ");
    c.send(&[
        bind("", "after", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("26000"),
        "{ms:?}"
    );
    c.send(&[bind("", "ok", &[]), execute("", 0), FrontendMessage::Sync])
        .await;
    assert_eq!(first_column(&c.until_ready().await), ["ok"]);
    // "after" can now be created.
    c.send(&[
        parse("after", "SELECT 'after'::text"),
        bind("", "after", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    assert_eq!(first_column(&c.until_ready().await), ["after"]);

    // An error inside a transaction block: aborted until ROLLBACK, then fine.
    assert_eq!(ready_status(&c.query("BEGIN").await), Some(b'T'));
    c.send(&[
        parse("", "SELECT 1 / g FROM generate_series(0, 0) g"),
        bind("", "", &[]),
        execute("", 0),
        close(b'P', ""),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "12EZ");
    assert_eq!(ready_status(&ms), Some(b'E'));
    let ms = c.query("SELECT 1").await;
    assert_eq!(first_error(&ms).map(|e| e.code.as_str()), Some("25P02"));
    assert_eq!(ready_status(&c.query("ROLLBACK").await), Some(b'I'));
    assert_eq!(c.rows("SELECT 'fine'").await, ["fine"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_message_is_08p01_and_others_unaffected() {
    let (r, db) = setup("transaction", 1).await;
    let mut good = r.raw(&db).await;
    assert_eq!(good.rows("SELECT 'before'").await, ["before"]);

    // 1. An unknown message type.
    let mut bad = r.raw(&db).await;
    bad.send_raw(&[b'!', 0, 0, 0, 4]).await;
    let ms = bad.until_closed().await;
    let e = first_error(&ms).unwrap_or_else(|| panic!("no error: {ms:?}"));
    assert_eq!(e.code, "08P01");
    assert_eq!(e.severity, "FATAL");

    // 2. A Bind whose body is truncated, sent while holding a transaction (and a row lock).
    good.query("CREATE TABLE t (id int PRIMARY KEY)").await;
    good.query("INSERT INTO t VALUES (1)").await;
    let mut bad = r.raw(&db).await;
    assert_eq!(ready_status(&bad.query("BEGIN").await), Some(b'T'));
    bad.rows("SELECT id::text FROM t FOR UPDATE").await;
    let mut b = BytesMut::new();
    b.put_u8(b'B');
    b.put_i32(4 + 3);
    b.put_slice(b"p\0s"); // portal "p", statement name missing its terminator, nothing else
    bad.send_raw(&b).await;
    let ms = bad.until_closed().await;
    let e = first_error(&ms).unwrap_or_else(|| panic!("no error: {ms:?}"));
    assert_eq!(e.code, "08P01");

    // 3. A length field below 4.
    let mut bad = r.raw(&db).await;
    bad.send_raw(&[b'Q', 0, 0, 0, 2]).await;
    let ms = bad.until_closed().await;
    let e = first_error(&ms).unwrap_or_else(|| panic!("no error: {ms:?}"));
    assert_eq!(e.code, "08P01");

    // 4. Messages the router checks in place, without decoding them (issue 16): a Bind
    //    with no statement held, then, inside a transaction, a Describe of an unknown
    //    kind, an Execute without its row limit and a Bind with a trailing byte.
    //    The Bind comes while the pool's one connection is held by another client: it
    //    is refused at once, not after a wait for a connection (53300).
    assert_eq!(ready_status(&good.query("BEGIN").await), Some(b'T'));
    good.rows("SELECT 1::text").await;
    let mut good_holds = true;
    for (in_tx, tag, body) in [
        (false, b'B', &b"\0s"[..]),
        (true, b'D', &b"Xp\0"[..]),
        (true, b'E', &b"\0\0\0"[..]),
        (true, b'B', &b"\0\0\0\0\0\0\0\0\0"[..]),
    ] {
        let mut bad = r.raw(&db).await;
        if in_tx {
            if std::mem::take(&mut good_holds) {
                assert_eq!(ready_status(&good.query("COMMIT").await), Some(b'I'));
            }
            assert_eq!(ready_status(&bad.query("BEGIN").await), Some(b'T'));
        }
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_i32(4 + body.len() as i32);
        b.put_slice(body);
        bad.send_raw(&b).await;
        let ms = bad.until_closed().await;
        let e = first_error(&ms).unwrap_or_else(|| panic!("{}: no error: {ms:?}", tag as char));
        assert_eq!(
            (e.severity.as_str(), e.code.as_str()),
            ("FATAL", "08P01"),
            "{}",
            tag as char
        );
    }

    // The good client and the single server connection are fine; the lock is gone.
    let ms = within(10, "good client after bad ones", async {
        good.query("SELECT id::text FROM t FOR UPDATE NOWAIT").await
    })
    .await;
    assert!(first_error(&ms).is_none(), "{ms:?}");
    assert_eq!(first_column(&ms), ["1"]);
}
