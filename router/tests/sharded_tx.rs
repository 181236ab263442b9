//! Multi-shard statements inside an explicit transaction, as psycopg (DB-API), JDBC with
//! autocommit off, Rails, Django and SQLAlchemy send them: each joins the transaction on
//! every shard it needs, the transaction's later statements see its writes, COMMIT is
//! atomic (two-phase commit) and ROLLBACK, or a failed statement, undoes everything.

mod common;

use common::shards::*;
use common::*;
use sqlx::{ConnectOptions, Connection, PgConnection};

fn code(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// (users rows, sum of scores, cities rows) on shard `k`, read directly.
async fn on_shard(db: &str, k: usize) -> String {
    let mut c = shard_opts(k, APP_USER, APP_PASSWORD, db)
        .connect()
        .await
        .unwrap();
    one(
        &mut c,
        "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT coalesce(sum(score), 0) FROM users)
            || ' ' || (SELECT count(*) FROM cities)
            || ' ' || (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database())",
    )
    .await
}

async fn both(db: &str) -> (String, String) {
    (on_shard(db, 0).await, on_shard(db, 1).await)
}

async fn raw(c: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(c)
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_shard_writes_join_the_transaction_and_commit_atomically() {
    let (r, db) = cluster("").await;
    let before = both(&db).await;
    let mut c = r.connect(&db).await;
    raw(&mut c, "BEGIN").await.unwrap();
    // A one-shard write first: the transaction then spans shards.
    raw(&mut c, "UPDATE users SET score = 0 WHERE id = 1")
        .await
        .unwrap();
    // No key: every shard.
    raw(&mut c, "UPDATE users SET score = score + 1")
        .await
        .unwrap();
    // Rows on both shards.
    raw(
        &mut c,
        "INSERT INTO users (id, name) VALUES (9001, 'a'), (9002, 'b'), (9003, 'c'), (9004, 'd')",
    )
    .await
    .unwrap();
    raw(&mut c, "DELETE FROM users WHERE id IN (2, 3, 4, 5)")
        .await
        .unwrap();
    // A replicated table: every shard.
    raw(&mut c, "INSERT INTO cities VALUES ('Lyon', 'FR')")
        .await
        .unwrap();
    // The transaction's own writes are visible to its fan-out reads.
    assert_eq!(
        one(&mut c, "SELECT count(*)::text FROM users").await,
        (ROWS + 4 - 4).to_string()
    );
    assert_eq!(one(&mut c, "SELECT count(*)::text FROM cities").await, "4");
    // ...and not yet to anyone else.
    assert_eq!(both(&db).await, before);
    raw(&mut c, "COMMIT").await.unwrap();
    settle(&mut c).await;
    let mut check = r.connect(&db).await;
    assert_eq!(
        one(&mut check, "SELECT count(*)::text FROM users").await,
        ROWS.to_string()
    );
    assert_eq!(
        one(
            &mut check,
            "SELECT count(*)::text FROM users WHERE id > 9000"
        )
        .await,
        "4"
    );
    assert_eq!(
        one(&mut check, "SELECT score::text FROM users WHERE id = 1").await,
        "1.00"
    );
    let (a, b) = both(&db).await;
    assert!(a.ends_with(" 4 0") && b.ends_with(" 4 0"), "{a} / {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_failed_statements_undo_every_shard() {
    let (r, db) = cluster("").await;
    let before = both(&db).await;
    let mut c = r.connect(&db).await;
    raw(&mut c, "BEGIN").await.unwrap();
    raw(&mut c, "UPDATE users SET score = score + 100")
        .await
        .unwrap();
    raw(&mut c, "INSERT INTO cities VALUES ('Nice', 'FR')")
        .await
        .unwrap();
    raw(&mut c, "ROLLBACK").await.unwrap();
    assert_eq!(both(&db).await, before);

    // A statement failing on one shard fails the whole transaction.
    raw(&mut c, "BEGIN").await.unwrap();
    raw(&mut c, "UPDATE users SET score = score + 100")
        .await
        .unwrap();
    let e = raw(
        &mut c,
        "INSERT INTO users (id, name) VALUES (9101, 'new'), (1, 'duplicate')",
    )
    .await
    .unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("23505"), "{e}");
    for sql in [
        "SELECT count(*) FROM users",
        "SELECT * FROM users WHERE id = 1",
        "SELECT * FROM users WHERE id = 2",
    ] {
        let e = raw(&mut c, sql).await.unwrap_err();
        assert_eq!(code(&e).as_deref(), Some("25P02"), "{sql}: {e}");
    }
    // COMMIT of a failed transaction rolls back, as PostgreSQL does.
    raw(&mut c, "COMMIT").await.unwrap();
    assert_eq!(both(&db).await, before);
    assert_eq!(
        one(&mut c, "SELECT count(*)::text FROM users").await,
        ROWS.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_transactions_with_bind_parameters() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;
    // sqlx: BEGIN, extended-protocol statements with parameters, COMMIT.
    let mut tx = c.begin().await.unwrap();
    sqlx::query("UPDATE users SET score = score + $1")
        .bind(2i32)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4)")
        .bind(9201i64)
        .bind("x")
        .bind(9202i64)
        .bind("y")
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id > $1")
        .bind(9200i64)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 2);
    tx.commit().await.unwrap();
    assert_eq!(
        one(&mut c, "SELECT count(*)::text FROM users WHERE id > 9200").await,
        "2"
    );
    assert_eq!(
        one(&mut c, "SELECT score::text FROM users WHERE id = 7").await,
        "10.75"
    );
    let (a, b) = both(&db).await;
    assert!(a.ends_with(" 0") && b.ends_with(" 0"), "{a} / {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_inside_a_transaction() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;
    raw(&mut c, "BEGIN").await.unwrap();
    raw(&mut c, "DELETE FROM users WHERE id <= 10")
        .await
        .unwrap();
    let mut cp = c
        .copy_in_raw("COPY users (id, name) FROM STDIN")
        .await
        .unwrap();
    cp.send(b"9301\ta\n9302\tb\n9303\tc\n9304\td\n".as_slice())
        .await
        .unwrap();
    assert_eq!(cp.finish().await.unwrap(), 4);
    assert_eq!(
        one(&mut c, "SELECT count(*)::text FROM users").await,
        (ROWS - 10 + 4).to_string()
    );
    raw(&mut c, "COMMIT").await.unwrap();
    settle(&mut c).await;
    let mut check = r.connect(&db).await;
    assert_eq!(
        one(&mut check, "SELECT count(*)::text FROM users").await,
        (ROWS - 10 + 4).to_string()
    );
    // Every row on the shard its key hashes to.
    for id in 9301..=9304 {
        let k = shard_of(id);
        let mut s = shard_opts(k, APP_USER, APP_PASSWORD, &db)
            .connect()
            .await
            .unwrap();
        assert_eq!(
            one(
                &mut s,
                &format!("SELECT count(*)::text FROM users WHERE id = {id}")
            )
            .await,
            "1"
        );
    }
    // A COPY rolled back with its transaction loads nothing.
    raw(&mut c, "BEGIN").await.unwrap();
    let mut cp = c
        .copy_in_raw("COPY users (id, name) FROM STDIN")
        .await
        .unwrap();
    cp.send(b"9401\ta\n9402\tb\n".as_slice()).await.unwrap();
    cp.finish().await.unwrap();
    raw(&mut c, "ROLLBACK").await.unwrap();
    assert_eq!(
        one(&mut c, "SELECT count(*)::text FROM users WHERE id > 9400").await,
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_cannot_join_fails_the_whole_transaction() {
    // One server connection per shard, and a short wait for one.
    let (r, db) = cluster("").await;
    let body = pool_toml_two_shards(&db, "").replace("pool_size = 4", "pool_size = 1");
    drop(r);
    let r = Router::start_with("connect_timeout = 500", &body).await;
    let before = both(&db).await;
    let (k0, k1) = {
        let mut ids = (1..=ROWS).map(|i| (i, shard_of(i)));
        let a = ids.find(|(_, s)| *s == 0).unwrap().0;
        let b = (1..=ROWS).find(|i| shard_of(*i) == 1).unwrap();
        (a, b)
    };
    // B holds shard 1's only connection in a transaction.
    let mut b = r.connect(&db).await;
    raw(&mut b, "BEGIN").await.unwrap();
    raw(
        &mut b,
        &format!("UPDATE users SET name = 'b' WHERE id = {k1}"),
    )
    .await
    .unwrap();
    // A writes on shard 0, then a statement needs shard 1 too: it cannot get there.
    let mut a = r.connect(&db).await;
    raw(&mut a, "BEGIN").await.unwrap();
    raw(
        &mut a,
        &format!("UPDATE users SET name = 'a' WHERE id = {k0}"),
    )
    .await
    .unwrap();
    let e = raw(&mut a, "UPDATE users SET score = score + 1")
        .await
        .unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("53300"), "{e}");
    let e = raw(&mut a, &format!("SELECT * FROM users WHERE id = {k0}"))
        .await
        .unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("25P02"), "{e}");
    // COMMIT of the failed transaction commits nothing anywhere.
    raw(&mut a, "COMMIT").await.unwrap();
    raw(&mut b, "ROLLBACK").await.unwrap();
    assert_eq!(both(&db).await, before);
    assert_eq!(
        one(&mut a, &format!("SELECT name FROM users WHERE id = {k0}")).await,
        format!("user{k0}")
    );
}

/// A statement refused (0A000) inside a transaction no shard has seen yet fails the
/// transaction as an error in PostgreSQL does, and the ReadyForQuery after the refusal
/// already says so (`E`): a driver that reads the status (libpq's
/// `PQtransactionStatus`, psycopg) must not think its transaction still good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_in_a_held_back_transaction_reports_it_failed() {
    use common::raw::{first_error, ready_status};
    let (r, db) = cluster("[sharding.two_phase_commit]\nenabled = false").await;
    let mut c = r.raw(&db).await;
    let ms = c.query("BEGIN").await;
    assert_eq!(ready_status(&ms), Some(b'T'));
    let ms = c.query("UPDATE users SET id = 1000 WHERE id = 1").await;
    assert_eq!(first_error(&ms).map(|e| e.code.as_str()), Some("0A000"));
    assert_eq!(ready_status(&ms), Some(b'E'), "after the refusal");
    // A SAVEPOINT too, as PostgreSQL refuses it in a failed transaction.
    for sql in ["SELECT 1", "SAVEPOINT late"] {
        let ms = c.query(sql).await;
        assert_eq!(
            first_error(&ms).map(|e| e.code.as_str()),
            Some("25P02"),
            "{sql}"
        );
        assert_eq!(ready_status(&ms), Some(b'E'), "{sql}");
    }
    let ms = c.query("ROLLBACK").await;
    assert_eq!(ready_status(&ms), Some(b'I'));
    assert_eq!(
        c.rows("SELECT name FROM users WHERE id = 1").await,
        vec!["user1"]
    );
}

/// The same in a transaction that already runs on a shard: the refused statement never
/// reached the shard, but the transaction is failed as PostgreSQL's would be (`E`,
/// 25P02 until its end), and its COMMIT rolls back: what it wrote before the error is
/// not committed behind the application's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_in_a_transaction_on_a_shard_fails_it() {
    use common::raw::{first_error, ready_status, tags};
    let (r, db) = cluster("[sharding.two_phase_commit]\nenabled = false").await;
    let mut c = r.raw(&db).await;
    c.rows("BEGIN").await;
    c.rows("UPDATE users SET name = 'changed' WHERE id = 1")
        .await;
    let ms = c.query("UPDATE users SET id = 1000 WHERE id = 1").await;
    assert_eq!(first_error(&ms).map(|e| e.code.as_str()), Some("0A000"));
    assert_eq!(ready_status(&ms), Some(b'E'), "after the refusal");
    let ms = c.query("SELECT 1").await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("25P02"),
        "{}",
        tags(&ms)
    );
    let ms = c.query("COMMIT").await;
    assert_eq!(ready_status(&ms), Some(b'I'));
    assert_eq!(
        c.rows("SELECT name FROM users WHERE id = 1").await,
        vec!["user1"]
    );
}

/// Savepoints of a transaction no shard has seen yet follow PostgreSQL's rules: RELEASE
/// or ROLLBACK TO a savepoint never taken (names compared as the server compares them:
/// folded unless quoted) is 3B001 and fails the transaction; ROLLBACK TO one taken
/// before the failure recovers it; RELEASE and ROLLBACK TO end the later savepoints.
/// What was accepted is replayed on the shard the transaction lands on, so the
/// transaction goes on there with the same savepoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_back_savepoints_follow_postgres_rules() {
    use common::raw::{bind, execute, first_error, parse, ready_status, tags};
    use orochi_wire::FrontendMessage;
    let (r, db) = cluster("[sharding.two_phase_commit]\nenabled = false").await;
    let mut c = r.raw(&db).await;
    let code = |ms: &[orochi_wire::BackendMessage]| first_error(ms).map(|e| e.code.clone());
    for (sql, error, status) in [
        ("BEGIN", None, b'T'),
        ("SAVEPOINT a", None, b'T'),
        ("SAVEPOINT \"B\"", None, b'T'),
        ("RELEASE b", Some("3B001"), b'E'),
        ("ROLLBACK TO a", None, b'T'),
        // Rolling back to `a` ended "B", taken after it.
        ("RELEASE SAVEPOINT \"B\"", Some("3B001"), b'E'),
        ("ROLLBACK TO SAVEPOINT nowhere", Some("3B001"), b'E'),
        ("SELECT 1", Some("25P02"), b'E'),
        ("ROLLBACK WORK TO A", None, b'T'),
        ("SAVEPOINT c", None, b'T'),
        ("RELEASE a", None, b'T'),
        // Releasing `a` released `c` too.
        ("ROLLBACK TO c", Some("3B001"), b'E'),
    ] {
        let ms = c.query(sql).await;
        assert_eq!(code(&ms).as_deref(), error, "{sql}: {}", tags(&ms));
        assert_eq!(ready_status(&ms), Some(status), "{sql}");
    }
    assert_eq!(ready_status(&c.query("ROLLBACK").await), Some(b'I'));

    // Replayed on the shard: the transaction lands there with its savepoint.
    for sql in [
        "BEGIN",
        "SAVEPOINT a",
        "SAVEPOINT b",
        "ROLLBACK TO a",
        "UPDATE users SET name = 'changed' WHERE id = 1",
        "ROLLBACK TO a",
        "COMMIT",
    ] {
        let ms = c.query(sql).await;
        assert_eq!(code(&ms), None, "{sql}: {}", tags(&ms));
    }
    assert_eq!(
        c.rows("SELECT name FROM users WHERE id = 1").await,
        vec!["user1"],
        "the UPDATE was rolled back to the replayed savepoint"
    );

    // The extended protocol: the same error, the batch skipped to its Sync.
    c.rows("BEGIN").await;
    let run = |sql: &str| {
        vec![
            parse("", sql),
            bind("", "", &[]),
            execute("", 0),
            FrontendMessage::Sync,
        ]
    };
    c.send(&run("RELEASE nowhere")).await;
    let ms = c.until_ready().await;
    assert_eq!(code(&ms).as_deref(), Some("3B001"), "{}", tags(&ms));
    assert_eq!(ready_status(&ms), Some(b'E'));
    c.send(&run("ROLLBACK")).await;
    assert_eq!(ready_status(&c.until_ready().await), Some(b'I'));
}
