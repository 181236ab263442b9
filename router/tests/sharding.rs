//! Sharded routing against two real PostgreSQL shards: keys reach the shard PostgreSQL's
//! hash partitioning names (simple and extended protocol, text and binary parameters),
//! fan-out reads merge into the answer one database would give, refusals are `0A000` and
//! leave the session usable, transactions stay on their first key's shard, and opted-in
//! best-effort multi-shard writes (DDL, split multi-row INSERT) reach every shard.

mod common;

use common::shards::*;
use common::*;
use sqlx::{ConnectOptions, Connection, PgConnection, Row};

async fn rows(c: &mut PgConnection, sql: &str) -> Vec<Vec<String>> {
    use sqlx::ValueRef;
    let rs = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut *c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rs.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    let v = r.try_get_raw(i).unwrap();
                    if v.is_null() {
                        "NULL".to_string()
                    } else {
                        v.as_str().unwrap().to_string()
                    }
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reach_their_shard_in_both_protocols() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;
    let ports = [fleet().shards[0].1, fleet().shards[1].1];
    for id in [1i64, 2, 3, 42, 77, 150] {
        let want = ports[shard_of(id)] as i32;
        let got = one(
            &mut c,
            &format!("SELECT inet_server_port()::text FROM users WHERE id = {id}"),
        )
        .await;
        assert_eq!(got, want.to_string(), "simple protocol, id {id}");
        // Extended protocol, binary int8 parameter, through a cast.
        let got: i32 =
            sqlx::query_scalar("SELECT inet_server_port() FROM users WHERE id = $1::bigint")
                .bind(id)
                .fetch_one(&mut c)
                .await
                .unwrap();
        assert_eq!(got, want, "extended protocol, id {id}");
        let name: String = sqlx::query_scalar("SELECT name FROM users u WHERE u.id = ANY($1)")
            .bind(vec![id])
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(name, format!("user{id}"));
    }
}

/// With the session's shard chosen by hand the router plans nothing, and compares a
/// repeated unnamed Parse in place (issue 16): a shard comment in that statement still
/// picks its shard every time, and the next statement without one goes back to the
/// session's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_unnamed_parse_keeps_its_shard_comment() {
    use common::raw::{bind, execute, first_column, first_error, parse};
    let (r, db) = cluster("").await;
    let ports = [fleet().shards[0].1, fleet().shards[1].1];
    let mut raw = r.raw(&db).await;
    assert!(first_error(&raw.query("SET orochi.shard = 0").await).is_none());
    let steps = [
        ("/* orochi.shard = 1 */ SELECT inet_server_port()::text", 1),
        ("/* orochi.shard = 1 */ SELECT inet_server_port()::text", 1),
        ("SELECT inet_server_port()::text", 0),
        ("SELECT inet_server_port()::text", 0),
    ];
    for (sql, shard) in steps {
        raw.send(&[
            parse("", sql),
            bind("", "", &[]),
            execute("", 0),
            orochi_wire::FrontendMessage::Sync,
        ])
        .await;
        let ms = raw.until_ready().await;
        assert!(first_error(&ms).is_none(), "{sql}: {:?}", first_error(&ms));
        assert_eq!(first_column(&ms), [ports[shard].to_string()], "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_reads_merge_like_one_database() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;
    assert_eq!(
        rows(&mut c, "SELECT count(*), sum(id) FROM users").await,
        [["200", "20100"]]
    );
    // Types are PostgreSQL's (count → bigint, sum(bigint) → numeric, avg → numeric), in
    // binary format through the extended protocol.
    let row = sqlx::query("SELECT count(*), sum(id), avg(id) FROM users WHERE id > $1")
        .bind(100i64)
        .fetch_one(&mut c)
        .await
        .unwrap();
    use sqlx::{Column, TypeInfo};
    let types: Vec<String> = row
        .columns()
        .iter()
        .map(|c| c.type_info().name().to_string())
        .collect();
    assert_eq!(types, ["INT8", "NUMERIC", "NUMERIC"]);
    let num = |i: usize| {
        let raw = row.try_get_raw(i).unwrap();
        orochi_router::fanout::numeric::Numeric::parse_binary(raw.as_bytes().unwrap())
            .unwrap()
            .to_text()
    };
    assert_eq!(row.get::<i64, _>(0), 100);
    assert_eq!(
        (num(1), num(2)),
        ("15050".into(), "150.5000000000000000".into())
    );
    assert_eq!(
        rows(
            &mut c,
            "SELECT city, count(*), avg(score) FROM users GROUP BY city ORDER BY city"
        )
        .await,
        [
            ["Osaka", "67", "125.0000000000000000"],
            ["Paris", "67", "126.2500000000000000"],
            ["Tokyo", "66", "125.6250000000000000"],
        ]
    );
    assert_eq!(
        rows(
            &mut c,
            "SELECT id FROM users ORDER BY id DESC LIMIT 3 OFFSET 2"
        )
        .await,
        [["198"], ["197"], ["196"]]
    );
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM users ORDER BY name, id LIMIT $1 OFFSET $2")
            .bind(4i64)
            .bind(1i64)
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(
        ids,
        [10, 100, 101, 102],
        "text order is byte order (C collation)"
    );
    assert_eq!(
        rows(&mut c, "SELECT DISTINCT city FROM users ORDER BY 1").await,
        [["Osaka"], ["Paris"], ["Tokyo"]]
    );
    assert_eq!(
        rows(&mut c, "SELECT count(*) FROM users WHERE id < 0").await,
        [["0"]]
    );
    assert!(rows(&mut c, "SELECT * FROM users WHERE id < 0")
        .await
        .is_empty());
    // A join with the replicated table, fanned out, and a replicated-table read.
    assert_eq!(
        rows(&mut c, "SELECT c.country, count(*) FROM users u JOIN cities c ON c.name = u.city GROUP BY c.country ORDER BY 1").await,
        [["FR", "67"], ["JP", "133"]]
    );
    assert_eq!(rows(&mut c, "SELECT count(*) FROM cities").await, [["3"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_merged_is_refused_with_0a000() {
    let (r, db) = cluster("[sharding.two_phase_commit]\nenabled = false").await;
    let mut c = r.connect(&db).await;
    // (Reads the merge cannot answer are gathered instead: tests/sharded_gather.rs.)
    for sql in [
        "UPDATE users SET name = 'x' WHERE city = 'Tokyo'",
        "UPDATE users SET id = 1000 WHERE id = 1",
        "INSERT INTO users (id, name) VALUES (1001, 'a'), (1002, 'b'), (1003, 'c'), (1004, 'd')",
        "CREATE TABLE t_new (a int)",
    ] {
        let e = scalar(&mut c, sql).await.expect_err(sql);
        assert_eq!(code(&e).as_deref(), Some("0A000"), "{sql}: {e}");
        assert_eq!(
            one(&mut c, "SELECT name FROM users WHERE id = 9").await,
            "user9"
        );
    }
    // Nothing was half-applied.
    assert_eq!(
        rows(
            &mut c,
            "SELECT count(*) FROM users WHERE name = 'x' OR id > 1000"
        )
        .await,
        [["0"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_follow_their_keys_and_need_2pc_to_span_shards() {
    // Two-phase commit disabled: a transaction may visit several shards, but one that
    // wrote on two of them cannot commit atomically and is rolled back with 0A000.
    let (r, db) = cluster("[sharding.two_phase_commit]\nenabled = false").await;
    let mut c = r.connect(&db).await;
    let (a, b) = {
        let a = 1i64;
        let b = (2..).find(|&i| shard_of(i) != shard_of(a)).unwrap();
        (a, b)
    };
    let mut tx = c.begin().await.unwrap();
    sqlx::query("UPDATE users SET name = 'changed' WHERE id = $1")
        .bind(a)
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: String = sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
        .bind(a)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, "changed");
    sqlx::query("UPDATE users SET name = 'other' WHERE id = $1")
        .bind(b)
        .execute(&mut *tx)
        .await
        .unwrap();
    let e = tx
        .commit()
        .await
        .expect_err("two written shards without 2PC");
    assert_eq!(code(&e).as_deref(), Some("0A000"), "{e}");
    for id in [a, b] {
        assert_eq!(
            one(&mut c, &format!("SELECT name FROM users WHERE id = {id}")).await,
            format!("user{id}"),
            "rolled back on every shard"
        );
    }
    // BEGIN ... COMMIT in the simple protocol, committed on the key's shard.
    exec(
        &mut c,
        &format!("BEGIN; UPDATE users SET score = 0 WHERE id = {b}; COMMIT"),
    )
    .await;
    let mut direct = shard_opts(shard_of(b), APP_USER, APP_PASSWORD, &db)
        .connect()
        .await
        .unwrap();
    let s: String = sqlx::query_scalar("SELECT score::text FROM users WHERE id = $1")
        .bind(b)
        .fetch_one(&mut direct)
        .await
        .unwrap();
    assert_eq!(s, "0.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_effort_writes_reach_every_shard() {
    let (r, db) = cluster("[sharding.two_phase_commit]\nenabled = false\nbest_effort = true").await;
    let mut c = r.connect(&db).await;
    exec(&mut c, "CREATE TABLE notes (id bigint, body text)").await;
    let tag = sqlx::raw_sql(
        "INSERT INTO users (id, name) VALUES (1001, 'a'), (1002, 'b'), (1003, 'c'), (1004, 'd')",
    )
    .execute(&mut c)
    .await
    .unwrap();
    assert_eq!(tag.rows_affected(), 4);
    let up = sqlx::raw_sql("UPDATE users SET name = 'big' WHERE id > 1000")
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(up.rows_affected(), 4);
    for k in 0..2 {
        let mut d = shard_opts(k, APP_USER, APP_PASSWORD, &db)
            .connect()
            .await
            .unwrap();
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id > 1000 ORDER BY id")
            .fetch_all(&mut d)
            .await
            .unwrap();
        assert!(
            ids.iter().all(|&i| shard_of(i) == k),
            "shard {k} holds {ids:?}"
        );
        let t: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
            .fetch_one(&mut d)
            .await
            .unwrap();
        assert_eq!(t, 0, "the table exists on shard {k}");
    }
    assert_eq!(
        rows(&mut c, "SELECT count(*) FROM users WHERE name = 'big'").await,
        [["4"]]
    );
    let _ = c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_row_insert_with_parameters_splits_per_shard() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;
    let on = |shard: usize, from: i64| (from..).find(|&id| shard_of(id) == shard).unwrap();
    let (a, b, lit) = (on(0, 1001), on(1, 1001), on(1, 1500));
    // Typed binary parameters (sqlx), a literal row, RETURNING from both shards.
    let mut got: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4), ({lit}, 'lit') RETURNING id"
    )))
    .bind(a)
    .bind("pa")
    .bind(b)
    .bind("pb")
    .fetch_all(&mut c)
    .await
    .unwrap();
    got.sort();
    let mut want = vec![a, b, lit];
    want.sort();
    assert_eq!(got, want);
    let ports = [fleet().shards[0].1, fleet().shards[1].1];
    for (id, name) in [(a, "pa"), (b, "pb"), (lit, "lit")] {
        assert_eq!(
            one(
                &mut c,
                &format!("SELECT name || ' ' || inet_server_port() FROM users WHERE id = {id}")
            )
            .await,
            format!("{name} {}", ports[shard_of(id)])
        );
    }
    // Untyped text parameters (Parse without types): a parameter only the other shard's
    // rows use must not leave PostgreSQL guessing its type.
    let (a, b) = (on(0, 2001), on(1, 2001));
    let mut raw = r.raw(&db).await;
    raw.send(&[
        common::raw::parse("", "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4)"),
        common::raw::bind("", "", &[&a.to_string(), "ra", &b.to_string(), "rb"]),
        common::raw::execute("", 0),
        orochi_wire::FrontendMessage::Sync,
    ])
    .await;
    let ms = raw.until_ready().await;
    assert!(
        common::raw::first_error(&ms).is_none(),
        "{:?}",
        common::raw::first_error(&ms)
    );
    assert!(ms.iter().any(
        |m| matches!(m, orochi_wire::BackendMessage::CommandComplete(t) if t == "INSERT 0 2")
    ));
    assert_eq!(
        rows(
            &mut c,
            &format!("SELECT name FROM users WHERE id IN ({a}, {b}) ORDER BY name")
        )
        .await,
        [["ra"], ["rb"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_that_are_one_database_refuse_multi_shard_statements() {
    // PgCat's "DNS resiliency" layout (seed 001): one database listed as two shards.
    let db = two_shard_db().await;
    let f = fleet();
    let (h0, p0) = (&f.shards[0].0, f.shards[0].1);
    let toml = pool_toml_two_shards(&db, "").replace(
        &format!(
            "servers = [[\"{}\", {}, \"primary\"]]",
            f.shards[1].0, f.shards[1].1
        ),
        &format!("servers = [[\"{h0}\", {p0}, \"primary\"]]"),
    );
    let r = Router::start(&toml).await;
    let mut c = r.connect(&db).await;
    for sql in [
        "INSERT INTO cities VALUES ('Nice', 'FR')",
        "SELECT count(*) FROM users",
    ] {
        let e = scalar(&mut c, sql).await.expect_err(sql);
        assert_eq!(code(&e).as_deref(), Some("0A000"), "{sql}: {e}");
        assert!(e.to_string().contains("same database"), "{e}");
    }
    // Nothing was written; statements on one shard still run.
    assert_eq!(
        one(
            &mut c,
            "SELECT count(*)::text FROM cities WHERE name = 'Nice'"
        )
        .await,
        "0"
    );
    assert_eq!(
        one(&mut c, "SELECT name FROM users WHERE id = 2").await,
        "user2"
    );
}

/// city, bool_and, bool_or, every, bit_and(int4), bit_or(int4), bit_or(int2), bit_and(int8).
type BoolBitRow = (String, bool, bool, bool, i32, i32, i16, i64);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boolean_and_bitwise_aggregates_merge_like_one_database() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;
    // users: ids 1..ROWS over both shards, score = id * 1.25, city by id % 3.
    let fanout = "SELECT city, bool_and(id > 0), bool_or(id > 150), every(score > 2), \
                  bit_and(id::int), bit_or(id::int), bit_or((id % 7)::smallint), bit_and(id + 1024) \
                  FROM users GROUP BY city ORDER BY city";
    let direct = format!(
        "SELECT (ARRAY['Tokyo','Osaka','Paris'])[1 + g % 3] AS city, bool_and(g > 0), bool_or(g > 150), \
         every(g * 1.25 > 2), bit_and(g::int), bit_or(g::int), bit_or((g % 7)::smallint), bit_and(g::bigint + 1024) \
         FROM generate_series(1, {ROWS}) g GROUP BY 1 ORDER BY 1"
    );
    let mut plain = superuser(&scratch_db().await).await;
    // Text results (simple protocol)...
    assert_eq!(rows(&mut c, fanout).await, rows(&mut plain, &direct).await);
    // ...and binary ones (sqlx's extended protocol decodes each type).
    let typed: Vec<BoolBitRow> = sqlx::query_as(fanout).fetch_all(&mut c).await.unwrap();
    let want: Vec<BoolBitRow> = sqlx::query_as(sqlx::AssertSqlSafe(direct.clone()))
        .fetch_all(&mut plain)
        .await
        .unwrap();
    assert_eq!(typed, want);
    // No input rows: NULL, as on one database.
    assert_eq!(
        rows(
            &mut c,
            "SELECT bool_and(id > 0), bit_or(id::int) FROM users WHERE id < 0"
        )
        .await,
        vec![vec!["NULL".to_string(), "NULL".to_string()]]
    );
}

/// A fan-out that waits for one shard's connection (both of the pool's held by
/// transactions that wrote there) ends at the client's cancel with 57014, gives back what it took of
/// the other shard, and the session's next fan-out is answered once the shard frees up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_ends_a_fan_out_waiting_for_a_shard() {
    let db = two_shard_db().await;
    let r = Router::start_with("query_wait_timeout = 20", &pool_toml_two_shards(&db, "")).await;
    // The pool's first fan-out also checks, once, that its shards are distinct
    // (`shard_identity.rs`); that check's own checkouts are not what is tested here.
    let mut w = r.raw(&db).await;
    assert_eq!(
        w.rows("SELECT count(*) FROM users").await,
        vec![ROWS.to_string()]
    );
    let holders = hold_shard_0(&r, &db).await;
    cancel_while_waiting(&r, &mut w, "SELECT count(*) FROM users").await;
    commit_all(holders).await;
    assert_eq!(
        w.rows("SELECT count(*) FROM users").await,
        vec![ROWS.to_string()]
    );
}

/// Both of shard 0's connections (the raw user's pool of 2), each held by a transaction
/// that wrote there.
async fn hold_shard_0(r: &Router, db: &str) -> Vec<common::raw::RawClient> {
    let mut holders = Vec::new();
    for id in (1..).filter(|&id| shard_of(id) == 0).take(2) {
        let mut h = r.raw(db).await;
        h.rows("BEGIN").await;
        h.rows(&format!("UPDATE users SET score = score WHERE id = {id}"))
            .await;
        holders.push(h);
    }
    holders
}

async fn commit_all(holders: Vec<common::raw::RawClient>) {
    for mut h in holders {
        h.rows("COMMIT").await;
    }
}

/// Sends `sql`, which waits for a connection of shard 0, cancels it, and expects 57014
/// within 5 s (the wait would last `query_wait_timeout`, 20 s) and a session still idle.
async fn cancel_while_waiting(r: &Router, w: &mut common::raw::RawClient, sql: &str) {
    w.send(&[orochi_wire::FrontendMessage::Query(sql.into())])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let asked = std::time::Instant::now();
    w.cancel(r.port).await;
    let ms = w.until_ready().await;
    let code = common::raw::first_error(&ms).map(|e| e.code.clone());
    assert_eq!(
        code.as_deref(),
        Some("57014"),
        "{sql}: {}",
        common::raw::tags(&ms)
    );
    assert!(asked.elapsed() < std::time::Duration::from_secs(5), "{sql}");
    assert_eq!(common::raw::ready_status(&ms), Some(b'I'), "{sql}");
}

/// The router's own questions to a shard wait for a connection as a statement does
/// (`aside_checkout.rs`): the pool's one-time checks before its first fan-out (distinct
/// shards, C collation for ORDER BY) and a gather's rows end at the client's cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_ends_the_routers_own_questions_waiting_for_a_shard() {
    let db = two_shard_db().await;
    let r = Router::start_with("query_wait_timeout = 20", &pool_toml_two_shards(&db, "")).await;
    let holders = hold_shard_0(&r, &db).await;
    let mut w = r.raw(&db).await;
    // Nothing asked yet: the collation check (ORDER BY), then the identity check.
    cancel_while_waiting(&r, &mut w, "SELECT id FROM users ORDER BY name LIMIT 1").await;
    cancel_while_waiting(&r, &mut w, "SELECT count(*) FROM users").await;
    commit_all(holders).await;
    assert_eq!(
        w.rows("SELECT count(*) FROM users").await,
        vec![ROWS.to_string()]
    );
    // Both checks known now: a gathered read waits for shard 0's rows.
    let holders = hold_shard_0(&r, &db).await;
    let gathered = "SELECT EXISTS (SELECT 1 FROM users WHERE score = 99)::text";
    cancel_while_waiting(&r, &mut w, gathered).await;
    commit_all(holders).await;
    assert_eq!(w.rows(gathered).await, vec!["false".to_string()]);
}

/// A client that closes its connection while the router reads a table's column order
/// for its INSERT without a column list leaves the queue: the INSERT never runs (before,
/// the lookup went on, and the INSERT then ran on a free connection of the other shard).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_whose_client_left_during_the_column_lookup_does_not_run() {
    let db = two_shard_db().await;
    let r = Router::start_with("query_wait_timeout = 20", &pool_toml_two_shards(&db, "")).await;
    let id = (ROWS + 1..).find(|&id| shard_of(id) == 1).unwrap();
    // Shard 1 has an idle connection to lend at once (a new one would be a wait, which
    // sees the client gone anyway).
    let mut c = r.raw(&db).await;
    let absent = format!("SELECT count(*) FROM users WHERE id = {id}");
    assert_eq!(c.rows(&absent).await, vec!["0".to_string()]);
    let holders = hold_shard_0(&r, &db).await;
    let mut w = r.raw(&db).await;
    w.send(&[orochi_wire::FrontendMessage::Query(format!(
        "INSERT INTO users VALUES ({id}, 'gone', 1, 'Tokyo')"
    ))])
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drop(w);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    commit_all(holders).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(c.rows(&absent).await, vec!["0".to_string()]);
    // The lookup itself still works for a client that stays.
    c.rows(&format!(
        "INSERT INTO users VALUES ({id}, 'stays', 1, 'Tokyo')"
    ))
    .await;
    assert_eq!(
        c.rows(&format!("SELECT name FROM users WHERE id = {id}"))
            .await,
        vec!["stays".to_string()]
    );
}
