//! PREPAREs pipelined behind an autocommit statement that writes on two shards (issue 16:
//! "PREPAREs pipelined with the last statement where the protocol allows"), over two
//! real shards:
//! - the shard that finished its part first is prepared while the other still runs it
//!   (without pipelining, nothing is prepared before every shard has answered);
//! - the statement commits on both, with nothing left prepared;
//! - a write that reaches every shard for want of keys is not pipelined;
//! - a statement that fails on one shard leaves nothing changed and nothing prepared
//!   (the other shard's PREPARE is rolled back with `ROLLBACK PREPARED`).

mod common;

use common::shards::*;
use common::*;
use sqlx::{ConnectOptions, PgConnection};
use std::time::Duration;

async fn on(k: usize, db: &str, sql: &str) -> i64 {
    let mut c = shard_opts(k, SUPERUSER, SUPERUSER_PASSWORD, db)
        .connect()
        .await
        .unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut c)
        .await
        .unwrap()
}

async fn prepared_on(k: usize, db: &str) -> i64 {
    on(
        k,
        db,
        "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'orochi\\_%' AND database = current_database()",
    )
    .await
}

/// Runs `sql` on `c` in a task of its own: its rows affected, and the connection back.
fn in_background(
    mut c: PgConnection,
    sql: String,
) -> tokio::task::JoinHandle<(Result<u64, sqlx::Error>, PgConnection)> {
    tokio::spawn(async move {
        let n = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .map(|d| d.rows_affected());
        (n, c)
    })
}

fn key_on(shard: usize) -> i64 {
    (1..).find(|&i| shard_of(i) == shard).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepares_go_out_with_the_last_statement() {
    let (r, db) = cluster("").await;
    let mut c: PgConnection = r.connect(&db).await;
    // The first multi-shard commit sets two-phase commit up on the shards; from then on
    // the PREPAREs can go out with the statement.
    exec(&mut c, "UPDATE users SET name = name WHERE city = 'Tokyo'").await;
    let (a, b) = (key_on(0), key_on(1));

    // Shard 0 (the coordinator) sleeps inside the statement; shard 1 does not.
    let sql = format!(
        "UPDATE users SET name = 'piped' || pg_sleep(CASE WHEN id = {a} THEN 3 ELSE 0 END)::text \
         WHERE id IN ({a}, {b})"
    );
    let started = std::time::Instant::now();
    let run = in_background(c, sql);
    within(
        10,
        "shard 1 prepared while shard 0 still runs the statement",
        async {
            while prepared_on(1, &db).await == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    )
    .await;
    // Without pipelining shard 1 would prepare only after shard 0's 3 s.
    let seen = started.elapsed();
    assert!(
        seen < Duration::from_millis(2500),
        "prepared after {seen:?}"
    );
    assert_eq!(
        prepared_on(0, &db).await,
        0,
        "the coordinator commits, never prepares"
    );
    let (n, mut c) = run.await.unwrap();
    assert_eq!(n.unwrap(), 2);
    settle(&mut c).await;
    for k in 0..2 {
        assert_eq!(
            prepared_on(k, &db).await,
            0,
            "shard {k}: nothing left prepared"
        );
        let piped = on(k, &db, "SELECT count(*) FROM users WHERE name = 'piped'").await;
        assert_eq!(piped, 1, "shard {k}: committed");
    }

    // A write that reaches every shard for want of keys is not pipelined: its parts can
    // take long, and an early PREPARE would age meanwhile.
    let bulk = format!(
        "UPDATE users SET name = name || pg_sleep(CASE WHEN id = {a} THEN 2 ELSE 0 END)::text \
         WHERE name IS NOT NULL"
    );
    let run = in_background(c, bulk);
    let watched = std::time::Instant::now();
    while watched.elapsed() < Duration::from_millis(1500) {
        assert_eq!(prepared_on(1, &db).await, 0, "a bulk write prepared early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (n, mut c) = run.await.unwrap();
    assert_eq!(n.unwrap(), ROWS as u64);

    // Fails on one shard only (division by zero): on the coordinator, while shard 1
    // prepared (rolled back with ROLLBACK PREPARED); then on shard 1, whose PREPARE
    // PostgreSQL answers with ROLLBACK. Nothing changes and nothing stays prepared.
    for bad in [a, b] {
        let e = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "UPDATE users SET name = 'half', score = score / (CASE WHEN id = {bad} THEN 0 ELSE 1 END) \
             WHERE id IN ({a}, {b})"
        )))
        .execute(&mut c)
        .await
        .expect_err("division by zero on one shard");
        assert_eq!(code(&e).as_deref(), Some("22012"), "{e}");
    }
    // Extended protocol: the same, and then a good one.
    let e = sqlx::query("UPDATE users SET name = 'half', score = score / $3 WHERE id IN ($1, $2)")
        .bind(a)
        .bind(b)
        .bind(0i32)
        .execute(&mut c)
        .await
        .expect_err("division by zero on both shards");
    assert_eq!(code(&e).as_deref(), Some("22012"), "{e}");
    let ok = sqlx::query("UPDATE users SET name = 'ext' WHERE id IN ($1, $2)")
        .bind(a)
        .bind(b)
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(ok.rows_affected(), 2);
    settle(&mut c).await;
    for k in 0..2 {
        assert_eq!(
            prepared_on(k, &db).await,
            0,
            "shard {k}: nothing left prepared"
        );
        let half = on(k, &db, "SELECT count(*) FROM users WHERE name = 'half'").await;
        assert_eq!(half, 0, "shard {k}: the failed statements changed nothing");
        let ext = on(k, &db, "SELECT count(*) FROM users WHERE name = 'ext'").await;
        assert_eq!(ext, 1, "shard {k}: the extended statement committed");
    }
}
