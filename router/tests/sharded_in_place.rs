//! Autocommit Queries on a sharded pool whose literal keys name one shard are planned in
//! place and take a ready connection without the full path (`client/query_now.rs`,
//! issue 16). They must land where the full path sends them (each shard holds only its
//! own rows, so a wrong shard answers nothing), keep each client's settings, and leave
//! transactions to the full path: a BEGIN held back until its shard is known, and a
//! failed transaction that refuses everything until ROLLBACK. A pool of four connections
//! for two shards, three clients.

mod common;

use common::raw::{first_column, first_error, ready_status, RawClient};
use common::shards::*;
use common::*;

async fn ok(c: &mut RawClient, sql: &str) -> Vec<String> {
    let ms = c.query(sql).await;
    assert!(first_error(&ms).is_none(), "{sql}: {ms:?}");
    first_column(&ms)
}

async fn code(c: &mut RawClient, sql: &str) -> (String, u8) {
    let ms = c.query(sql).await;
    let e = first_error(&ms).unwrap_or_else(|| panic!("{sql}: no error in {ms:?}"));
    (e.code.clone(), ready_status(&ms).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shard_autocommit_queries_land_on_their_shard_with_their_settings() {
    let (r, db) = cluster("").await;
    let mut a = r.raw(&db).await;
    let mut b = r.raw(&db).await;
    let mut c = r.raw(&db).await;
    ok(&mut a, "SET application_name = 'a_sh'").await;
    ok(&mut b, "SET application_name = 'b_sh'").await;
    for id in 1..=24 {
        ok(
            &mut a,
            &format!("UPDATE users SET name = 'in_place_{id}' WHERE id = {id}"),
        )
        .await;
        let sql = format!("SELECT name FROM users WHERE id = {id}");
        assert_eq!(ok(&mut a, &sql).await, [format!("in_place_{id}")]);
        assert_eq!(ok(&mut c, &sql).await, [format!("in_place_{id}")]);
        let app = format!("SELECT current_setting('application_name') FROM users WHERE id = {id}");
        assert_eq!(ok(&mut b, &app).await, ["b_sh"]);
        assert_eq!(ok(&mut a, &app).await, ["a_sh"]);
    }
    // The writes are on the shards the hash names, and nowhere else.
    for k in 0..2 {
        let mut direct = sqlx::ConnectOptions::connect(&shard_opts(k, APP_USER, APP_PASSWORD, &db))
            .await
            .unwrap();
        let ids = one(
            &mut direct,
            "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM users WHERE name LIKE 'in_place_%'",
        )
        .await;
        let want: Vec<String> = (1..=24i64)
            .filter(|id| shard_of(*id) == k)
            .map(|id| id.to_string())
            .collect();
        assert_eq!(ids, want.join(","), "shard {k}");
    }

    // A transaction: its BEGIN is held back and its statements take the full path; a
    // rolled-back write is gone for the next autocommit statement.
    ok(&mut a, "BEGIN").await;
    ok(&mut a, "UPDATE users SET name = 'rolled_back' WHERE id = 3").await;
    assert_eq!(
        ok(&mut a, "SELECT name FROM users WHERE id = 3").await,
        ["rolled_back"]
    );
    ok(&mut a, "ROLLBACK").await;
    assert_eq!(
        ok(&mut a, "SELECT name FROM users WHERE id = 3").await,
        ["in_place_3"]
    );

    // A failed transaction refuses a one-shard statement until ROLLBACK.
    ok(&mut b, "BEGIN").await;
    assert_eq!(code(&mut b, "SELECT 1/0").await, ("22012".into(), b'E'));
    assert_eq!(
        code(&mut b, "SELECT name FROM users WHERE id = 5").await,
        ("25P02".into(), b'E')
    );
    ok(&mut b, "ROLLBACK").await;
    assert_eq!(
        ok(&mut b, "SELECT name FROM users WHERE id = 5").await,
        ["in_place_5"]
    );
}
