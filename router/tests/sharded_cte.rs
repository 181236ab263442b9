//! Writable CTEs on a sharded pool, against two real shards: a data-modifying statement
//! inside WITH runs on the one shard its keys name; one whose keys name several shards
//! (or none) is refused with 0A000 and changes nothing.

mod common;

use common::shards::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writable_ctes_run_on_the_shard_their_keys_name() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;
    let on = |shard: usize| (1..).find(|&id: &i64| shard_of(id) == shard).unwrap();
    let port = |id: i64| fleet().shards[shard_of(id)].1 as i32;
    for id in [on(0), on(1)] {
        let got: (i64, i32) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "WITH u AS (UPDATE users SET name = 'cte' WHERE id = {id} RETURNING id) \
             SELECT id, inet_server_port() FROM u"
        )))
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert_eq!(got, (id, port(id)));
        // Extended protocol: the key is a parameter.
        let got: (i64, String) = sqlx::query_as(
            "WITH i AS (INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (id) \
             DO UPDATE SET name = excluded.name RETURNING id, name) SELECT id, name FROM i",
        )
        .bind(id)
        .bind("cte again")
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, (id, "cte again".to_string()));
    }
    // Keys on both shards: refused, and nothing changed.
    let e = sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH d AS (DELETE FROM users WHERE id IN ({}, {}) RETURNING id) SELECT count(*) FROM d",
        on(0),
        on(1)
    )))
    .execute(&mut c)
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("0A000") || e.to_string().contains("shard"),
        "{e}"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE name = 'cte again'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 2);
}
