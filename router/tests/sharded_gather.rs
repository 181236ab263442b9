//! Reads the fan-out merge cannot answer exactly are gathered and answered on one shard
//! (issue 20): each answer through the router equals the answer of one plain database
//! holding all the rows (also for a fan-out whose merge meets column types it cannot
//! combine, such as `interval`); inside a transaction that already ran on a shard they
//! stay refused with 0A000.

mod common;

use common::shards::*;
use common::*;

const QUERIES: &[&str] = &[
    "SELECT EXISTS (SELECT 1 FROM users WHERE score = 99)::text",
    "SELECT 1::text WHERE EXISTS (SELECT 1 FROM users WHERE score = 3.75)",
    "SELECT coalesce((SELECT name FROM users WHERE id = 5), 'none')",
    "SELECT ARRAY(SELECT id FROM users WHERE city = 'Tokyo' ORDER BY id)::text",
    "SELECT name FROM cities WHERE name IN (SELECT city FROM users) ORDER BY 1",
    "SELECT name FROM cities c WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.city = c.name AND u.id > 198) ORDER BY 1",
    "SELECT city, count(DISTINCT name)::text FROM users GROUP BY city HAVING sum(score) > 100 ORDER BY 1",
    "SELECT round(stddev(score), 6)::text, variance(id)::text, var_pop(score)::text FROM users",
    "SELECT string_agg(name, ',' ORDER BY id DESC) FROM users WHERE id < 20",
    "SELECT array_agg(id ORDER BY score DESC)::text FROM users WHERE city = 'Paris'",
    "SELECT id::text, rank() OVER (ORDER BY score DESC)::text FROM users ORDER BY id LIMIT 10",
    "SELECT count(*)::text FROM (SELECT DISTINCT city FROM users LIMIT 2) s",
    "SELECT id::text FROM users WHERE score = (SELECT max(score) FROM users)",
    "SELECT round(avg(score), 2)::text, avg(score)::numeric(12,1)::text FROM users",
    "WITH top AS (SELECT id FROM users ORDER BY score DESC LIMIT 3) SELECT u.name FROM users u JOIN top USING (id) ORDER BY 1",
    "SELECT city FROM users WHERE id < 10 UNION SELECT name FROM cities ORDER BY 1",
    "SELECT c.name, l.n::text FROM cities c, LATERAL (SELECT count(*) AS n FROM users u WHERE u.city = c.name) l ORDER BY 1",
    // Merged fan-outs whose column types the merge cannot combine or order (known only
    // from the shards' answer): gathered instead.
    "SELECT city, max(id * interval '1 minute')::text, avg(id * interval '1 second')::text FROM users GROUP BY city ORDER BY 1",
    "SELECT id::text FROM users ORDER BY id * interval '-1 hour' LIMIT 3",
    "SELECT min(score::money)::text FROM users",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmergeable_reads_are_answered_like_one_database() {
    let (r, db) = cluster("").await;
    let mut refdb = one_database(&db).await;
    let mut c = r.connect(&db).await;
    for sql in QUERIES {
        let want = answer(&mut refdb, sql).await.unwrap();
        assert!(!want.is_empty(), "{sql}: the reference has no rows");
        let got = answer(&mut c, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(got, want, "{sql}");
        // Inside a READ COMMITTED transaction that has not run on a shard yet (psycopg,
        // JDBC): the same answer.
        exec(&mut c, "BEGIN").await;
        assert_eq!(answer(&mut c, sql).await.unwrap(), want, "in BEGIN: {sql}");
        exec(&mut c, "COMMIT").await;
    }
    // Extended protocol, with a parameter.
    let got: String = sqlx::query_scalar(
        "SELECT count(DISTINCT city)::text || '/' || count(DISTINCT name)::text FROM users WHERE id > $1 HAVING count(*) > 0",
    )
    .bind(150i64)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(got, "3/50");
    // Two tables restricted to keys on different shards, not joined on them.
    let b = (2..ROWS).find(|&k| shard_of(k) != shard_of(1)).unwrap();
    let sql = format!(
        "SELECT u.id::text, v.name FROM users u CROSS JOIN users v WHERE u.id = 1 AND v.id = {b}"
    );
    let want = vec![vec!["1".to_string(), format!("user{b}")]];
    assert_eq!(answer(&mut c, &sql).await.unwrap(), want, "{sql}");
    // A transaction that wrote on a shard: rows gathered elsewhere would miss its write.
    // (Each refusal fails the transaction, as an error does on PostgreSQL: a savepoint
    // recovers it.)
    exec(&mut c, "BEGIN").await;
    exec(&mut c, "UPDATE users SET name = 'tx' WHERE id = 1").await;
    for sql in [QUERIES[6], QUERIES[QUERIES.len() - 3]] {
        exec(&mut c, "SAVEPOINT before").await;
        let e = answer(&mut c, sql).await.unwrap_err();
        assert_eq!(code(&e).as_deref(), Some("0A000"), "{sql}: {e}");
        exec(&mut c, "ROLLBACK TO SAVEPOINT before").await;
    }
    exec(&mut c, "ROLLBACK").await;
    // A locking read is never gathered.
    let e = answer(
        &mut c,
        "SELECT u.id FROM users u, users v WHERE u.name = v.city FOR UPDATE OF u",
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("unsupported cross-shard statement"),
        "{e}"
    );
}
