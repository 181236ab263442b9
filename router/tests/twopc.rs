//! Atomic multi-shard writes over two real shards: single statements that write on
//! both shards commit with two-phase commit (nothing left prepared, the decision row on
//! the coordinator shard), and a router killed at a protocol step (fault injection,
//! `OROCHI_2PC_FAULT`) leaves every transaction all-or-nothing once a restarted router's
//! recovery sweeper has run.

mod common;

use common::procs::*;
use common::shards::*;
use common::*;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::time::Duration;

async fn direct(k: usize, db: &str) -> PgConnection {
    shard_opts(k, SUPERUSER, SUPERUSER_PASSWORD, db)
        .connect()
        .await
        .unwrap()
}

async fn prepared_of(db: &str) -> i64 {
    let mut n = 0;
    for k in 0..2 {
        let mut c = direct(k, db).await;
        n += sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'orochi\\_%' AND database = current_database()",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
    }
    n
}

/// Waits (30 s at most) until no shard holds a prepared transaction of `db`.
async fn until_nothing_prepared(db: &str, what: &str) {
    within(30, what, async {
        while prepared_of(db).await > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
}

/// Rows with `name = 'marked'` on each shard.
async fn marked(db: &str) -> [i64; 2] {
    let mut out = [0; 2];
    for (k, o) in out.iter_mut().enumerate() {
        let mut c = direct(k, db).await;
        *o = sqlx::query_scalar("SELECT count(*) FROM users WHERE name = 'marked'")
            .fetch_one(&mut c)
            .await
            .unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_shard_writes_commit_with_two_phase_commit() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;
    let up = sqlx::raw_sql("UPDATE users SET name = 'marked' WHERE city = 'Tokyo'")
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(up.rows_affected(), 66);
    let m = marked(&db).await;
    assert!(m[0] > 0 && m[1] > 0 && m[0] + m[1] == 66, "{m:?}");
    exec(&mut c, "CREATE TABLE audit (id bigint, note text)").await;
    let ins = sqlx::raw_sql(
        "INSERT INTO users (id, name) VALUES (1001, 'a'), (1002, 'b'), (1003, 'c'), (1004, 'd')",
    )
    .execute(&mut c)
    .await
    .unwrap();
    assert_eq!(ins.rows_affected(), 4);
    // Extended protocol, a parameter that matches rows on both shards.
    let del = sqlx::query("DELETE FROM users WHERE id > $1")
        .bind(1000i64)
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(del.rows_affected(), 4);
    settle(&mut c).await;
    assert_eq!(prepared_of(&db).await, 0, "nothing left prepared");
    let mut coord = direct(0, &db).await;
    let decisions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orochi.twopc_decisions WHERE decision = 'commit'")
            .fetch_one(&mut coord)
            .await
            .unwrap();
    assert_eq!(
        decisions, 4,
        "one decision row per two-phase commit, on the coordinator"
    );
    for k in 0..2 {
        let mut d = direct(k, &db).await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit")
            .fetch_one(&mut d)
            .await
            .unwrap();
        assert_eq!(n, 0, "the table exists on shard {k}");
    }
    // A shard's error rolls every shard back.
    let e = sqlx::raw_sql("UPDATE users SET score = score / (id - 7) WHERE city = 'Osaka'")
        .execute(&mut c)
        .await
        .expect_err("division by zero on one shard");
    assert_eq!(code(&e).as_deref(), Some("22012"), "{e}");
    let _ = c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_mid_commit_leaves_all_or_nothing() {
    // (fault point, whether the commit point was passed, whether the client may have
    // been answered: the COMMIT PREPAREDs run after the client got its COMMIT)
    let cases = [
        ("before_prepare", false, false),
        ("after_prepare", false, false),
        ("before_decision", false, false),
        ("after_decision", true, false),
        ("after_coordinator_commit", true, false),
        ("before_commit_prepared", true, true),
        ("after_commit_prepared", true, true),
    ];
    for (point, committed, off_path) in cases {
        let db = two_shard_db().await;
        let dir = std::env::temp_dir().join(format!("orochi-2pc-{}-{point}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Two router instances on the same shards: A dies at the fault point, B (its own
        // random instance id) resolves A's transactions with its sweeper.
        let (port_a, port_b) = (free_port(), free_port());
        let config_a = router_config(&dir, &db, "a.toml", port_a);
        let config_b = router_config(&dir, &db, "b.toml", port_b);
        let _b = spawn_router(&config_b, None);
        let _cb = connect_router(port_b, &db).await;
        let mut a = spawn_router(&config_a, Some(point));
        let mut c = connect_router(port_a, &db).await;
        let r = sqlx::raw_sql("UPDATE users SET name = 'marked' WHERE city = 'Paris'")
            .execute(&mut c)
            .await;
        assert!(
            off_path || r.is_err(),
            "{point}: router A must have died mid-commit"
        );
        let status = within(10, "router A exits", a.wait()).await.unwrap();
        assert!(!status.success(), "{point}: killed by the fault point");
        until_nothing_prepared(&db, "router B's sweeper resolves A's prepared transactions").await;
        let m = marked(&db).await;
        if committed {
            assert!(
                m[0] > 0 && m[1] > 0 && m[0] + m[1] == 67,
                "{point}: committed on every shard: {m:?}"
            );
        } else {
            assert_eq!(m, [0, 0], "{point}: rolled back on every shard");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_spanning_shards_commit_atomically() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;
    let a = 1i64;
    let b = (2..).find(|&i| shard_of(i) != shard_of(a)).unwrap();
    // Extended protocol (sqlx), a transfer between two shards.
    let mut tx = c.begin().await.unwrap();
    for (id, delta) in [(a, -5), (b, 5)] {
        sqlx::query("UPDATE users SET score = score + $2 WHERE id = $1")
            .bind(id)
            .bind(delta)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    // Reads inside the transaction see its own writes, on either shard.
    let s: String = sqlx::query_scalar("SELECT score::text FROM users WHERE id = $1")
        .bind(a)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(s, format!("{:.2}", a as f64 * 1.25 - 5.0));
    tx.commit().await.unwrap();
    settle(&mut c).await;
    assert_eq!(prepared_of(&db).await, 0);
    let mut d0 = direct(shard_of(a), &db).await;
    let sa: String = sqlx::query_scalar("SELECT score::text FROM users WHERE id = $1")
        .bind(a)
        .fetch_one(&mut d0)
        .await
        .unwrap();
    let mut d1 = direct(shard_of(b), &db).await;
    let sb: String = sqlx::query_scalar("SELECT score::text FROM users WHERE id = $1")
        .bind(b)
        .fetch_one(&mut d1)
        .await
        .unwrap();
    assert_eq!(sa, format!("{:.2}", a as f64 * 1.25 - 5.0));
    assert_eq!(sb, format!("{:.2}", b as f64 * 1.25 + 5.0));
    // Simple protocol, rolled back on both shards.
    exec(&mut c, "BEGIN").await;
    exec(
        &mut c,
        &format!("UPDATE users SET name = 'gone' WHERE id = {a}"),
    )
    .await;
    exec(
        &mut c,
        &format!("UPDATE users SET name = 'gone' WHERE id = {b}"),
    )
    .await;
    exec(&mut c, "ROLLBACK").await;
    assert_eq!(marked_as(&db, "gone").await, 0);
    // An error on the second shard: the whole transaction rolls back.
    exec(&mut c, "BEGIN").await;
    exec(
        &mut c,
        &format!("UPDATE users SET name = 'half' WHERE id = {a}"),
    )
    .await;
    let e = scalar(
        &mut c,
        &format!("UPDATE users SET score = score / 0 WHERE id = {b} RETURNING 'x'"),
    )
    .await
    .expect_err("division by zero");
    assert_eq!(code(&e).as_deref(), Some("22012"));
    exec(&mut c, "COMMIT").await;
    assert_eq!(
        marked_as(&db, "half").await,
        0,
        "a failed transaction commits nothing"
    );
    assert_eq!(one(&mut c, "SELECT 'usable'::text").await, "usable");
}

async fn marked_as(db: &str, name: &str) -> i64 {
    let mut n = 0;
    for k in 0..2 {
        let mut c = direct(k, db).await;
        n += sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users WHERE name = $1")
            .bind(name)
            .fetch_one(&mut c)
            .await
            .unwrap();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweeper_killed_mid_recovery_is_finished_by_the_next() {
    let db = two_shard_db().await;
    let dir = std::env::temp_dir().join(format!("orochi-2pc-{}-sweep", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A dies right after preparing: a prepared transaction and no decision.
    let port_a = free_port();
    let config_a = router_config(&dir, &db, "a.toml", port_a);
    let mut a = spawn_router(&config_a, Some("after_prepare"));
    let mut c = connect_router(port_a, &db).await;
    let _ = sqlx::raw_sql("UPDATE users SET name = 'marked' WHERE city = 'Paris'")
        .execute(&mut c)
        .await;
    within(10, "router A exits", a.wait()).await.unwrap();
    assert!(prepared_of(&db).await > 0, "A left a prepared transaction");
    // B's sweeper dies after writing its abort decision, before rolling back.
    let port_b = free_port();
    let config_b = router_config(&dir, &db, "b.toml", port_b);
    let mut b = spawn_router(&config_b, Some("sweep_after_decision"));
    let status = within(20, "router B dies in its sweep", b.wait())
        .await
        .unwrap();
    assert!(!status.success(), "B was killed by its fault point");
    // C finishes the recovery from the decision row B left.
    let port_c = free_port();
    let config_c = router_config(&dir, &db, "c.toml", port_c);
    let _c = spawn_router(&config_c, None);
    until_nothing_prepared(&db, "router C resolves").await;
    assert_eq!(marked(&db).await, [0, 0], "rolled back on every shard");
}

/// A pool added by RELOAD gets its recovery sweeper without a restart: B runs with
/// another pool, A dies after its coordinator committed (the commit point is passed),
/// and B's configuration gains A's pool only afterwards. Before the reload nothing
/// sweeps A's databases; after it, B's new sweeper finishes the commit on every shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_added_by_reload_gets_its_sweeper() {
    let (db, other) = (two_shard_db().await, two_shard_db().await);
    let dir = std::env::temp_dir().join(format!("orochi-2pc-{}-reload", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let config_b = router_config(&dir, &other, "b.toml", port_b);
    let b = spawn_router(&config_b, None);
    let _cb = connect_router(port_b, &other).await;
    let config_a = router_config(&dir, &db, "a.toml", port_a);
    let mut a = spawn_router(&config_a, Some("after_coordinator_commit"));
    let mut c = connect_router(port_a, &db).await;
    let r = sqlx::raw_sql("UPDATE users SET name = 'marked' WHERE city = 'Paris'")
        .execute(&mut c)
        .await;
    assert!(r.is_err(), "router A must have died mid-commit");
    within(10, "router A exits", a.wait()).await.unwrap();
    // Three of B's 1 s sweeps: A's pool is not B's yet, so its transaction stays prepared.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        prepared_of(&db).await > 0,
        "nothing sweeps a pool not configured"
    );
    // B's configuration gains A's pool (the pool sections only: `[sharding]` is shared).
    let pool_of_a = pool_toml_two_shards(&db, "");
    let pool_of_a = &pool_of_a[..pool_of_a.find("\n[sharding]").unwrap()];
    let text = std::fs::read_to_string(&config_b).unwrap();
    std::fs::write(&config_b, format!("{text}\n{pool_of_a}\n")).unwrap();
    let pid = b.id().unwrap().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(hup.success());
    until_nothing_prepared(&db, "router B's new sweeper resolves A's transaction").await;
    let m = marked(&db).await;
    assert!(
        m[0] > 0 && m[1] > 0 && m[0] + m[1] == 67,
        "committed on every shard: {m:?}"
    );
}
