//! Prepared statements in transaction pooling: named extended-protocol statements and
//! SQL PREPARE/EXECUTE/DEALLOCATE work whichever server connection a client lands on.

mod common;

use common::raw::{bind, close, execute, first_column, first_error, parse, tags};
use common::*;
use orochi_wire::FrontendMessage;
use sqlx::{ConnectOptions, Row};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_cached_statements_with_many_clients_over_a_small_pool() {
    let (r, db) = setup("transaction", 2).await;
    let mut setup_conn = r.connect(&db).await;
    exec(
        &mut setup_conn,
        "CREATE TABLE kv (k int PRIMARY KEY, v text NOT NULL)",
    )
    .await;
    let mut tasks = Vec::new();
    for client in 0..8i32 {
        let opts = r.opts(APP_USER, APP_PASSWORD, &db);
        tasks.push(tokio::spawn(async move {
            let mut c = opts.connect().await.unwrap();
            for i in 0..25i32 {
                // Three statement texts, each prepared once per client and cached by sqlx.
                let row = sqlx::query("SELECT $1::int4 * 2 + $2::int4 AS x")
                    .bind(i)
                    .bind(client)
                    .fetch_one(&mut c)
                    .await
                    .unwrap_or_else(|e| panic!("client {client} round {i}: {e}"));
                assert_eq!(row.get::<i32, _>("x"), i * 2 + client);
                let k = client * 1000 + i;
                sqlx::query("INSERT INTO kv (k, v) VALUES ($1, $2)")
                    .bind(k)
                    .bind(format!("c{client}-{i}"))
                    .execute(&mut c)
                    .await
                    .unwrap_or_else(|e| panic!("insert {k}: {e}"));
                let v: String = sqlx::query_scalar("SELECT v FROM kv WHERE k = $1")
                    .bind(k)
                    .fetch_one(&mut c)
                    .await
                    .unwrap_or_else(|e| panic!("select {k}: {e}"));
                assert_eq!(v, format!("c{client}-{i}"));
                if i % 7 == 0 {
                    // A transaction with the same cached statements inside.
                    let mut tx = sqlx::Connection::begin(&mut c).await.unwrap();
                    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM kv WHERE k >= $1")
                        .bind(client * 1000)
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                    assert!(n >= 1);
                    tx.commit().await.unwrap();
                }
            }
        }));
    }
    within(40, "8 sqlx clients", async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM kv")
        .fetch_one(&mut setup_conn)
        .await
        .unwrap();
    assert_eq!(n, 8 * 25);
    // The pool really was small: at most 2 server connections for app on this database.
    let mut su = superuser(&db).await;
    let conns: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND usename = 'app'",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert!(conns <= 2, "{conns} server connections for a pool of 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_pool_prepared_statements_survive_server_churn() {
    // A sqlx PgPool of 6 clients over a router pool of 1: every statement runs on the one
    // server connection, which is also replaced (terminated) halfway.
    let (r, db) = setup("transaction", 1).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(6)
        .connect_with(r.opts(APP_USER, APP_PASSWORD, &db))
        .await
        .unwrap();
    for round in 0..2 {
        let mut tasks = Vec::new();
        for t in 0..6i64 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20i64 {
                    let v: i64 = sqlx::query_scalar("SELECT $1::int8 + $2::int8")
                        .bind(t)
                        .bind(i)
                        .fetch_one(&pool)
                        .await
                        .unwrap_or_else(|e| panic!("task {t} round {i}: {e}"));
                    assert_eq!(v, t + i);
                }
            }));
        }
        within(30, "pool round", async {
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await;
        if round == 0 {
            // Kill the server connection; the router must replace it and re-prepare.
            let mut su = superuser("postgres").await;
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = 'app'",
            )
            .bind(&db)
            .execute(&mut su)
            .await
            .unwrap();
            wait_no_backends(&mut su, &db).await;
        }
    }
}

async fn wait_no_backends(su: &mut sqlx::PgConnection, db: &str) {
    for _ in 0..100 {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = 'app'",
        )
        .bind(db)
        .fetch_one(&mut *su)
        .await
        .unwrap();
        if n == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("backends of {db} did not exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_prepare_execute_deallocate_across_transactions() {
    let (r, db) = setup("transaction", 2).await;
    let mut a = r.connect(&db).await;
    let mut b = r.connect(&db).await;
    exec(&mut a, "PREPARE p(int) AS SELECT ($1 * 2)::text").await;
    let pa1 = one(&mut a, "SELECT pg_backend_pid()::text").await;
    // B holds A's last connection; A's next EXECUTE runs elsewhere.
    exec(&mut b, "BEGIN").await;
    assert_eq!(one(&mut b, "SELECT pg_backend_pid()::text").await, pa1);
    // Same name, other text, other client: independent.
    exec(&mut b, "PREPARE p(int) AS SELECT ($1 * 3)::text").await;
    assert_eq!(one(&mut b, "EXECUTE p(5)").await, "15");
    assert_eq!(one(&mut a, "EXECUTE p(21)").await, "42");
    assert_ne!(one(&mut a, "SELECT pg_backend_pid()::text").await, pa1);
    exec(&mut b, "COMMIT").await;
    // A client that never prepared "p" must not run someone else's "p".
    let mut c = r.connect(&db).await;
    for _ in 0..3 {
        let e = scalar(&mut c, "EXECUTE p(1)")
            .await
            .expect_err("C never prepared p");
        assert_eq!(code(&e).as_deref(), Some("26000"), "{e}");
    }
    for i in 0..6 {
        assert_eq!(
            one(&mut a, &format!("EXECUTE p({i})")).await,
            (i * 2).to_string()
        );
        assert_eq!(
            one(&mut b, &format!("EXECUTE p({i})")).await,
            (i * 3).to_string()
        );
        if i == 3 {
            exec(&mut a, "BEGIN").await;
            assert_eq!(one(&mut a, "EXECUTE p(100)").await, "200");
            exec(&mut a, "COMMIT").await;
        }
    }
    exec(&mut a, "DEALLOCATE p").await;
    for _ in 0..3 {
        let e = scalar(&mut a, "EXECUTE p(1)")
            .await
            .expect_err("deallocated");
        assert_eq!(code(&e).as_deref(), Some("26000"), "{e}");
        assert_eq!(one(&mut b, "EXECUTE p(2)").await, "6");
    }
    // Re-PREPARE under the same name with new text.
    exec(&mut a, "PREPARE p AS SELECT 'again'::text").await;
    exec(&mut b, "BEGIN").await;
    assert_eq!(one(&mut b, "EXECUTE p(1)").await, "3");
    assert_eq!(one(&mut a, "EXECUTE p").await, "again");
    exec(&mut b, "COMMIT").await;
    assert_eq!(one(&mut a, "EXECUTE p").await, "again");
    // DEALLOCATE ALL.
    exec(&mut b, "DEALLOCATE ALL").await;
    let e = scalar(&mut b, "EXECUTE p(1)")
        .await
        .expect_err("deallocated all");
    assert_eq!(code(&e).as_deref(), Some("26000"), "{e}");
    assert_eq!(one(&mut a, "EXECUTE p").await, "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_then_reprepare_same_name() {
    let (r, db) = setup("transaction", 2).await;
    let mut c = r.raw(&db).await;
    c.send(&[parse("s1", "SELECT 'first'::text"), FrontendMessage::Sync])
        .await;
    assert_eq!(tags(&c.until_ready().await), "1Z");
    c.send(&[bind("", "s1", &[]), execute("", 0), FrontendMessage::Sync])
        .await;
    assert_eq!(first_column(&c.until_ready().await), ["first"]);
    c.send(&[close(b'S', "s1"), FrontendMessage::Sync]).await;
    assert_eq!(tags(&c.until_ready().await), "3Z");
    // Using it after Close: 26000, until Sync.
    c.send(&[bind("", "s1", &[]), execute("", 0), FrontendMessage::Sync])
        .await;
    let ms = c.until_ready().await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("26000"),
        "{ms:?}"
    );
    // The same name with another text.
    c.send(&[
        parse("s1", "SELECT 'second'::text"),
        bind("", "s1", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "12DCZ");
    assert_eq!(first_column(&ms), ["second"]);
    // Another client using both texts under the same name is unaffected.
    let mut d = r.raw(&db).await;
    d.send(&[
        parse("s1", "SELECT 'first'::text"),
        bind("", "s1", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    assert_eq!(first_column(&d.until_ready().await), ["first"]);
    c.send(&[bind("", "s1", &[]), execute("", 0), FrontendMessage::Sync])
        .await;
    assert_eq!(first_column(&c.until_ready().await), ["second"]);
    // Parse of an existing name without Close is an error (42P05), like PostgreSQL.
    c.send(&[parse("s1", "SELECT 3"), FrontendMessage::Sync])
        .await;
    let ms = c.until_ready().await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("42P05"),
        "{ms:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_parse_then_good_statement() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    c.send(&[parse("st", "SELEC 1"), FrontendMessage::Sync])
        .await;
    let ms = c.until_ready().await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("42601"),
        "{ms:?}"
    );
    assert_eq!(tags(&ms), "EZ");
    // The name is free: the failed statement was not kept.
    c.send(&[
        parse("st", "SELECT 7::text"),
        bind("", "st", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(first_column(&ms), ["7"], "{ms:?}");
    // The bad text again, from another client, still fails (no stale "validated" entry).
    let mut d = r.raw(&db).await;
    d.send(&[parse("other", "SELEC 1"), FrontendMessage::Sync])
        .await;
    let ms = d.until_ready().await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("42601"),
        "{ms:?}"
    );

    // sqlx: a failing statement then a good one on the same connection.
    let mut s = r.connect(&db).await;
    let e = sqlx::query("SELEC $1::int")
        .bind(1)
        .fetch_one(&mut s)
        .await
        .expect_err("syntax error");
    assert_eq!(code(&e).as_deref(), Some("42601"), "{e}");
    let v: i32 = sqlx::query_scalar("SELECT $1::int4 + 1")
        .bind(1)
        .fetch_one(&mut s)
        .await
        .unwrap();
    assert_eq!(v, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_parsed_while_idle_is_prepared_on_a_fresh_connection() {
    // Client A validates a text; client B then parses the same text while idle (the
    // router answers ParseComplete itself) and uses it on a connection that never saw it.
    let (r, db) = setup("transaction", 2).await;
    let mut a = r.raw(&db).await;
    let text = "SELECT $1::int4 * 10";
    a.send(&[parse("sa", text), FrontendMessage::Sync]).await;
    assert_eq!(tags(&a.until_ready().await), "1Z");
    // Occupy A's connection so B must open another.
    a.send(&[FrontendMessage::Query("BEGIN".into())]).await;
    a.until_ready().await;
    let mut b = r.raw(&db).await;
    b.send(&[parse("sb", text), FrontendMessage::Sync]).await;
    assert_eq!(tags(&b.until_ready().await), "1Z");
    b.send(&[
        common::raw::describe(b'S', "sb"),
        bind("", "sb", &["4"]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = b.until_ready().await;
    assert_eq!(tags(&ms), "tT2DCZ", "{ms:?}");
    assert_eq!(first_column(&ms), ["40"]);
    a.send(&[FrontendMessage::Query("COMMIT".into())]).await;
    a.until_ready().await;
}

/// A statement the router replays (PREPARE on a fresh connection) is not the client's:
/// when the client's own multi-statement query then fails, its SET is rolled back with it
/// and must not follow the client to later connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_query_after_a_replayed_prepare_keeps_settings_unchanged() {
    let (r, db) = setup("transaction", 2).await;
    let mut a = r.connect(&db).await;
    let mut b = r.connect(&db).await;
    exec(&mut a, "PREPARE p AS SELECT 1").await;
    let a_pid = one(&mut a, "SELECT pg_backend_pid()::text").await;
    // B holds A's last connection, so A's next request runs on the other one,
    // where the router must replay PREPARE p first. (The router hands A its answer
    // before it returns the connection to the pool: B may have to ask again.)
    let mut b_pid = String::new();
    for _ in 0..50 {
        exec(&mut b, "BEGIN").await;
        b_pid = one(&mut b, "SELECT pg_backend_pid()::text").await;
        if b_pid == a_pid {
            break;
        }
        exec(&mut b, "ROLLBACK").await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(b_pid, a_pid);
    let e = sqlx::raw_sql("SET work_mem = '9MB'; EXECUTE p; SELECT 1/0")
        .execute(&mut a)
        .await
        .expect_err("division by zero");
    assert_eq!(code(&e).as_deref(), Some("22012"), "{e}");
    assert_eq!(one(&mut a, "SHOW work_mem").await, "4MB");
    exec(&mut b, "COMMIT").await;
    for _ in 0..3 {
        assert_eq!(one(&mut a, "SHOW work_mem").await, "4MB");
        exec(&mut b, "SELECT 1").await;
    }
}
