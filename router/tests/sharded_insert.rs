//! `INSERT INTO t VALUES (...)` without a column list on a distributed table, against two
//! real shards: the key's place comes from the table's column order (read from the
//! catalog, cached per pool and table), single-row and multi-row (split per shard), with
//! bind parameters, ON CONFLICT and RETURNING; the cached order follows DDL through the
//! router and DDL behind its back.

mod common;

use common::shards::*;
use common::*;
use sqlx::{ConnectOptions, Connection, PgConnection};

/// `items`: distributed by `id`, which is not its first column.
const EXTRA: &str =
    "[[sharding.tables]]\nname = \"items\"\ncolumn = \"id\"\ndata_type = \"bigint\"\n";

async fn on_shards(db: &str, sql: &str) {
    for k in 0..2 {
        let mut c = shard_opts(k, APP_USER, APP_PASSWORD, db)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// The shard (by port) that holds item `id`, and its note, read through the router.
async fn placed(c: &mut PgConnection, id: i64) -> (String, String) {
    let r: (i32, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT inet_server_port(), note FROM items WHERE id = {id}"
    )))
    .fetch_one(&mut *c)
    .await
    .unwrap_or_else(|e| panic!("item {id}: {e}"));
    (r.0.to_string(), r.1)
}

/// The shard (by port) that holds item `id`, and its qty.
async fn qty_at(c: &mut PgConnection, id: i64) -> (String, i64) {
    let r: (i32, i32) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT inet_server_port(), qty FROM items WHERE id = {id}"
    )))
    .fetch_one(&mut *c)
    .await
    .unwrap_or_else(|e| panic!("item {id}: {e}"));
    (r.0.to_string(), r.1 as i64)
}

fn port_of(id: i64) -> String {
    fleet().shards[shard_of(id)].1.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_without_column_list_finds_the_key_by_column_order() {
    let (r, db) = cluster(EXTRA).await;
    on_shards(
        &db,
        "CREATE TABLE items (note text, id bigint PRIMARY KEY, qty int, \
         twice int GENERATED ALWAYS AS (qty * 2) STORED)",
    )
    .await;
    let mut c = r.connect(&db).await;
    let on = |shard: usize, from: i64| (from..).find(|&id| shard_of(id) == shard).unwrap();
    // Single row, simple protocol: the key is the second value.
    for id in [on(0, 1), on(1, 1)] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO items VALUES ('one {id}', {id}, 1)"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        assert_eq!(placed(&mut c, id).await, (port_of(id), format!("one {id}")));
    }
    // Multi-row over both shards with RETURNING, split per shard.
    let (a, b) = (on(0, 100), on(1, 100));
    let mut got: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO items VALUES ('m', {a}, 2, DEFAULT), ('m', {b}, 3, DEFAULT) RETURNING id"
    )))
    .fetch_all(&mut c)
    .await
    .unwrap();
    got.sort();
    assert_eq!(got, {
        let mut w = vec![a, b];
        w.sort();
        w
    });
    for id in [a, b] {
        assert_eq!(placed(&mut c, id).await, (port_of(id), "m".into()));
    }
    // Bind parameters (extended protocol), and ON CONFLICT ... DO UPDATE ... RETURNING.
    let (a, b) = (on(0, 200), on(1, 200));
    let n = sqlx::query("INSERT INTO items VALUES ($1, $2, 1), ($3, $4, 1)")
        .bind("p")
        .bind(a)
        .bind("p")
        .bind(b)
        .execute(&mut c)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 2);
    for id in [a, b] {
        assert_eq!(placed(&mut c, id).await, (port_of(id), "p".into()));
        let (note, twice): (String, i32) = sqlx::query_as(
            "INSERT INTO items VALUES ($1, $2, 5) ON CONFLICT (id) DO UPDATE \
             SET note = excluded.note, qty = excluded.qty RETURNING note, twice",
        )
        .bind("upserted")
        .bind(id)
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert_eq!((note.as_str(), twice), ("upserted", 10));
        assert_eq!(placed(&mut c, id).await, (port_of(id), "upserted".into()));
    }
    // DDL behind the router's back: the column before the key dropped. The client's rows
    // follow the new order, narrower than the cached one: the order is read again.
    on_shards(&db, "ALTER TABLE items DROP COLUMN note").await;
    let (id, other) = (on(0, 300), on(1, 300));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO items VALUES ({id}, {other})"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    assert_eq!(qty_at(&mut c, id).await, (port_of(id), other));
    // DDL through the router: the key moves to the last place, rows as wide as before.
    sqlx::raw_sql("ALTER TABLE items DROP COLUMN id, ADD COLUMN id bigint")
        .execute(&mut c)
        .await
        .unwrap();
    let (id, other) = (on(1, 400), on(0, 400));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO items VALUES ({other}, DEFAULT, {id})"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    assert_eq!(qty_at(&mut c, id).await, (port_of(id), other));
    // A column added behind the router's back: rows wider than the cached order.
    on_shards(&db, "ALTER TABLE items ADD COLUMN note text").await;
    let (a, b) = (on(0, 500), on(1, 500));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO items VALUES (1, DEFAULT, {a}, 'wide'), (1, DEFAULT, {b}, 'wide')"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    for id in [a, b] {
        assert_eq!(placed(&mut c, id).await, (port_of(id), "wide".into()));
    }
    let e = sqlx::raw_sql("INSERT INTO items VALUES (1, DEFAULT, 5, 'x', 'too many')")
        .execute(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more expressions"), "{e}");
    c.close().await.unwrap();
}
