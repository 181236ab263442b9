//! `UNION ALL` (and `UNION`) of fan-outs (issue 20): each branch runs shard by shard, the
//! shards' rows are concatenated (made distinct for `UNION`), ORDER BY/LIMIT/OFFSET over
//! the whole union merged by the router. Every answer equals one plain database's, also
//! inside a transaction that already wrote on a shard (no gathering needed there, so the
//! transaction's own writes are seen).

mod common;

use common::shards::*;
use common::*;

const QUERIES: &[&str] = &[
    "SELECT id::text, name FROM users WHERE id < 20 UNION ALL SELECT id::text, city FROM users WHERE id > 190 ORDER BY 1, 2",
    "SELECT id::text AS id, 'low' AS src FROM users WHERE id <= 30 UNION ALL SELECT id::text, 'high' FROM users WHERE id >= 170 ORDER BY src DESC, id DESC LIMIT 7 OFFSET 3",
    "SELECT city FROM users UNION SELECT name FROM users WHERE id < 5 ORDER BY 1",
    "SELECT u.id::text FROM users u WHERE EXISTS (SELECT 1 FROM users v WHERE v.id = u.id AND v.score > 240) UNION ALL SELECT id::text FROM users WHERE id = 7 ORDER BY 1",
    "SELECT score::text FROM users WHERE id < 4 UNION ALL SELECT score::text FROM users WHERE id < 4",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unions_of_fanouts_are_answered_like_one_database() {
    let (r, db) = cluster("").await;
    let mut refdb = one_database(&db).await;
    let mut c = r.connect(&db).await;
    for sql in QUERIES {
        let mut want = answer(&mut refdb, sql).await.unwrap();
        assert!(!want.is_empty(), "{sql}: the reference has no rows");
        let mut got = answer(&mut c, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        if !sql.contains("ORDER BY") {
            want.sort();
            got.sort();
        }
        assert_eq!(got, want, "{sql}");
    }
    // Extended protocol: parameters in both branches and in the LIMIT.
    let got: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM users WHERE id < $1 UNION ALL SELECT id FROM users WHERE id > $2 ORDER BY 1 DESC LIMIT $3",
    )
    .bind(4i64)
    .bind(197i64)
    .bind(5i64)
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(got, vec![200, 199, 198, 3, 2]);
    // Inside a transaction that wrote on one shard: the union runs in the transaction on
    // every shard and sees the write.
    exec(&mut c, "BEGIN").await;
    exec(&mut c, "UPDATE users SET name = 'tx' WHERE id = 1").await;
    let got = answer(
        &mut c,
        "SELECT name FROM users WHERE id = 1 UNION ALL SELECT name FROM users WHERE id = 200 ORDER BY 1",
    )
    .await
    .unwrap();
    assert_eq!(
        got,
        vec![vec!["tx".to_string()], vec!["user200".to_string()]]
    );
    exec(&mut c, "ROLLBACK").await;
}
