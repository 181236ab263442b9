//! A write refused with 25006 by a server taken for the primary: re-checked at once and,
//! when nothing can have changed, retried on the real primary. The "primary" is an
//! endpoint (a forwarder) that is switched to a standby behind the router's back, with
//! health checks too rare to notice on their own.

use crate::balancing::rt1;
use crate::cluster::*;
use crate::common::*;
use orochi_admin::{AdminView, Role};
use orochi_router::admin_view::AppView;
use std::time::Duration;

/// Health checks once a minute: only a 25006 can make the router look again.
async fn router(db: &str, servers: &str) -> Router {
    Router::start_with(
        &fast_health(60_000, 1),
        &router_config(db, servers, "primary_reads_enabled = false", ""),
    )
    .await
}

fn role_of(r: &Router, port: u16) -> Role {
    AppView::new(r.app.clone())
        .pool_nodes()
        .into_iter()
        .find(|n| n.port == port)
        .unwrap()
        .role
}

async fn count_on(c: &Cluster, db: &str, id: i32) -> i64 {
    let mut su = c.su(&c.primary, db).await;
    sqlx::query_scalar("SELECT count(*) FROM t WHERE id = $1")
        .bind(id)
        .fetch_one(&mut su)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_as_read_only_is_retried_on_the_primary() {
    let c = rt1().await;
    let db = c.scratch_db("retry").await;
    let (p, r1) = (c.primary.port, c.r(1).port);
    let fwd = Forwarder::start(p).await;
    let servers = Cluster::servers_line(&[(fwd.port, "auto", 1), (p, "auto", 1), (r1, "auto", 1)]);
    let ins = |id: i32| format!("INSERT INTO t VALUES ({id}) RETURNING inet_server_port()::text");

    // Autocommit: the endpoint taken for the primary now leads to a standby.
    let r = router(&db, &servers).await;
    let mut a = r.connect(&db).await;
    exec(&mut a, "CREATE TABLE t (id int)").await;
    c.wait_for(c.r(1), &db, "SELECT 1 FROM pg_class WHERE relname = 't'")
        .await;
    assert_eq!(role_of(&r, fwd.port), Role::Primary);
    fwd.set_upstream(r1);
    fwd.cut();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        served_by(&mut a, &ins(1))
            .await
            .expect("retried on the primary"),
        p
    );
    assert_eq!(count_on(&c, &db, 1).await, 1, "written once");
    assert_eq!(role_of(&r, fwd.port), Role::Replica, "re-checked at once");
    drop(r);

    // First statement after BEGIN: the BEGIN is replayed on the primary.
    fwd.set_upstream(p);
    fwd.cut();
    let r = router(&db, &servers).await;
    let mut a = r.connect(&db).await;
    assert_eq!(role_of(&r, fwd.port), Role::Primary);
    fwd.set_upstream(r1);
    fwd.cut();
    tokio::time::sleep(Duration::from_millis(100)).await;
    exec(&mut a, "BEGIN").await;
    assert_eq!(served_by(&mut a, &ins(2)).await.expect("retried"), p);
    assert_eq!(served_by(&mut a, &ins(3)).await.unwrap(), p);
    assert_eq!(one(&mut a, "SELECT count(*)::text FROM t").await, "3");
    exec(&mut a, "COMMIT").await;
    assert_eq!(count_on(&c, &db, 2).await, 1);
    assert_eq!(count_on(&c, &db, 3).await, 1);
    drop(r);

    // After other work in the transaction the refusal stands, but the server is
    // re-checked at once all the same.
    c.wait_for(c.r(1), &db, "SELECT 1 FROM t WHERE id = 3")
        .await;
    fwd.set_upstream(p);
    fwd.cut();
    let r = router(&db, &servers).await;
    let mut a = r.connect(&db).await;
    fwd.set_upstream(r1);
    fwd.cut();
    tokio::time::sleep(Duration::from_millis(100)).await;
    exec(&mut a, "BEGIN").await;
    assert_eq!(one(&mut a, "SELECT count(*)::text FROM t").await, "3");
    let e = scalar(&mut a, &ins(4)).await.expect_err("not retryable");
    assert_eq!(code(&e).as_deref(), Some("25006"), "{e}");
    exec(&mut a, "ROLLBACK").await;
    eventually(3, "the endpoint is found to be a standby", || {
        role_of(&r, fwd.port) == Role::Replica
    })
    .await;
    assert_eq!(served_by(&mut a, &ins(5)).await.unwrap(), p);
    assert_eq!(count_on(&c, &db, 4).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primarys_own_read_only_refusal_reaches_the_client() {
    let c = rt1().await;
    let db = c.scratch_db("ro").await;
    let (p, r1) = (c.primary.port, c.r(1).port);
    let servers = Cluster::servers_line(&[(p, "auto", 1), (r1, "auto", 1)]);
    let r = Router::start_with(
        &fast_health(200, 1),
        &router_config(&db, &servers, "primary_reads_enabled = false", ""),
    )
    .await;
    let mut a = r.connect(&db).await;
    exec(&mut a, "CREATE TABLE t (id int)").await;
    c.wait_for(c.r(1), &db, "SELECT 1 FROM pg_class WHERE relname = 't'")
        .await;
    exec(&mut a, "SET default_transaction_read_only = on").await;
    let e = scalar(&mut a, "INSERT INTO t VALUES (1) RETURNING id::text")
        .await
        .expect_err("read-only session");
    assert_eq!(code(&e).as_deref(), Some("25006"), "{e}");
    exec(&mut a, "SET default_transaction_read_only = off").await;
    exec(&mut a, "BEGIN READ ONLY").await;
    let e = scalar(&mut a, "INSERT INTO t VALUES (2) RETURNING id::text")
        .await
        .expect_err("read-only transaction");
    assert_eq!(code(&e).as_deref(), Some("25006"), "{e}");
    exec(&mut a, "ROLLBACK").await;
    assert_eq!(
        served_by(
            &mut a,
            "INSERT INTO t VALUES (3) RETURNING inet_server_port()::text"
        )
        .await
        .unwrap(),
        p
    );
    assert_eq!(count_on(&c, &db, 1).await + count_on(&c, &db, 2).await, 0);
    assert_eq!(role_of(&r, p), Role::Primary);
}

/// A router that takes the forwarder for the primary, with the forwarder then switched to
/// the standby behind its back (connections cut, so the next checkout reaches it).
async fn stale_primary(c: &Cluster, db: &str, fwd: &Forwarder, servers: &str) -> Router {
    fwd.set_upstream(c.primary.port);
    fwd.cut();
    let r = router(db, servers).await;
    eventually(5, "the endpoint is found to be the primary", || {
        role_of(&r, fwd.port) == Role::Primary
    })
    .await;
    fwd.set_upstream(c.r(1).port);
    fwd.cut();
    tokio::time::sleep(Duration::from_millis(100)).await;
    r
}

const INS_EXT: &str = "INSERT INTO t VALUES ($1) RETURNING inet_server_port()::text";

/// The extended protocol as a driver speaks it (sqlx: unnamed and named statements, a
/// transaction opened with a simple `BEGIN`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_protocol_write_refused_as_read_only_is_retried_on_the_primary() {
    let c = rt1().await;
    let db = c.scratch_db("retry_ext").await;
    let (p, r1) = (c.primary.port, c.r(1).port);
    let fwd = Forwarder::start(p).await;
    let servers = Cluster::servers_line(&[(fwd.port, "auto", 1), (p, "auto", 1), (r1, "auto", 1)]);
    {
        let r = router(&db, &servers).await;
        let mut a = r.connect(&db).await;
        exec(&mut a, "CREATE TABLE t (id int)").await;
    }
    c.wait_for(c.r(1), &db, "SELECT 1 FROM pg_class WHERE relname = 't'")
        .await;

    // Autocommit, the unnamed statement.
    let r = stale_primary(&c, &db, &fwd, &servers).await;
    let mut a = r.connect(&db).await;
    let port: String = sqlx::query_scalar(INS_EXT)
        .bind(1)
        .persistent(false)
        .fetch_one(&mut a)
        .await
        .expect("retried on the primary, no error for the client");
    assert_eq!(port, p.to_string());
    assert_eq!(count_on(&c, &db, 1).await, 1, "written once");
    assert_eq!(role_of(&r, fwd.port), Role::Replica, "re-checked at once");
    drop(a);
    drop(r);

    // Autocommit, a named (prepared) statement; used again afterwards.
    let r = stale_primary(&c, &db, &fwd, &servers).await;
    let mut a = r.connect(&db).await;
    for id in [2, 3] {
        let port: String = sqlx::query_scalar(INS_EXT)
            .bind(id)
            .fetch_one(&mut a)
            .await
            .expect("named statement retried on the primary");
        assert_eq!(port, p.to_string());
        assert_eq!(count_on(&c, &db, id).await, 1, "written once");
    }
    drop(a);
    drop(r);

    // First statement after the driver's BEGIN: the BEGIN is replayed on the primary.
    let r = stale_primary(&c, &db, &fwd, &servers).await;
    let mut a = r.connect(&db).await;
    let mut tx = sqlx::Connection::begin(&mut a).await.unwrap();
    let port: String = sqlx::query_scalar(INS_EXT)
        .bind(4)
        .fetch_one(&mut *tx)
        .await
        .expect("retried inside the transaction");
    assert_eq!(port, p.to_string());
    let port: String = sqlx::query_scalar(INS_EXT)
        .bind(5)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(port, p.to_string());
    tx.commit().await.unwrap();
    assert_eq!(count_on(&c, &db, 4).await, 1);
    assert_eq!(count_on(&c, &db, 5).await, 1);
    drop(a);
    drop(r);

    // In the middle of a transaction the refusal reaches the client.
    c.wait_for(c.r(1), &db, "SELECT 1 FROM t WHERE id = 5")
        .await;
    let r = stale_primary(&c, &db, &fwd, &servers).await;
    let mut a = r.connect(&db).await;
    let mut tx = sqlx::Connection::begin(&mut a).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t WHERE id > $1")
        .bind(0)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let e = sqlx::query_scalar::<_, String>(INS_EXT)
        .bind(6)
        .fetch_one(&mut *tx)
        .await
        .expect_err("not retryable mid-transaction");
    assert_eq!(code(&e).as_deref(), Some("25006"), "{e}");
    tx.rollback().await.unwrap();
    assert_eq!(count_on(&c, &db, 6).await, 0);
    eventually(3, "the endpoint is found to be a standby", || {
        role_of(&r, fwd.port) == Role::Replica
    })
    .await;
    let port: String = sqlx::query_scalar(INS_EXT)
        .bind(7)
        .fetch_one(&mut a)
        .await
        .expect("a write after the rollback");
    assert_eq!(port, p.to_string());
}
