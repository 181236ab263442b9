//! A cross-shard COMMIT is answered at its commit point (the coordinator's COMMIT); the
//! other shards' COMMIT PREPAREDs finish off the client's path
//! (`client/pending_commits.rs`). Over two real shards:
//! - the client's next statement waits for them, so it always sees its own writes
//!   (the COMMIT PREPARED is held back by a fault hook: without the wait the read would
//!   find the old row);
//! - after a load of cross-shard transfers nothing is left prepared, with the sweeper
//!   too slow to have helped;
//! - a COMMIT PREPARED whose connection breaks is finished by the recovery sweeper.

mod common;

use common::faultproxy::{Fault, FaultProxy};
use common::shards::*;
use common::*;
use orochi_twopc::{FaultPoint, Faults};
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the hook holds a COMMIT PREPARED back.
const HOLD: Duration = Duration::from_millis(1500);

async fn prepared_on(k: usize, db: &str) -> i64 {
    let mut c = shard_opts(k, SUPERUSER, SUPERUSER_PASSWORD, db)
        .connect()
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'orochi\\_%' AND database = current_database()",
    )
    .fetch_one(&mut c)
    .await
    .unwrap()
}

async fn prepared(db: &str) -> i64 {
    prepared_on(0, db).await + prepared_on(1, db).await
}

fn key_on(shard: usize, nth: usize) -> i64 {
    (1..ROWS)
        .filter(|&i| shard_of(i) == shard)
        .nth(nth)
        .expect("a key")
}

/// Holds COMMIT PREPARED rounds back by `HOLD` (blocking the task that runs them, off
/// the client's path). `armed` counts the rounds still to hold.
fn holding_faults() -> (Faults, Arc<AtomicU64>) {
    let armed = Arc::new(AtomicU64::new(0));
    let a = armed.clone();
    let faults = Faults::with_hook(move |p| {
        if p == FaultPoint::BeforeCommitPrepared
            && a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            // The hook runs inside the task's poll: hand the worker's other tasks (the
            // client's session among them) to another thread while this one sleeps.
            tokio::task::block_in_place(|| std::thread::sleep(HOLD));
        }
    });
    (faults, armed)
}

async fn transfer(c: &mut PgConnection, from: i64, to: i64, name: &str) {
    exec(c, "BEGIN").await;
    exec(
        c,
        &format!("UPDATE users SET score = score - 1, name = '{name}' WHERE id = {from}"),
    )
    .await;
    exec(
        c,
        &format!("UPDATE users SET score = score + 1, name = '{name}' WHERE id = {to}"),
    )
    .await;
    exec(c, "COMMIT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_client_reads_its_own_writes_right_after_a_cross_shard_commit() {
    let db = two_shard_db().await;
    let (faults, armed) = holding_faults();
    let r = Router::start_with_twopc_faults(
        "",
        &pool_toml_two_shards(&db, "[sharding.two_phase_commit]\nenabled = true"),
        faults,
    )
    .await;
    let mut c = r.connect(&db).await;
    // Shard 0 coordinates (the lowest written shard); shard 1 is prepared.
    let (a, b) = (key_on(0, 0), key_on(1, 0));
    armed.store(1, Ordering::SeqCst);
    let t0 = Instant::now();
    transfer(&mut c, a, b, "ryw").await;
    let commit_took = t0.elapsed();
    assert!(
        commit_took < HOLD,
        "COMMIT was answered at the commit point, not after COMMIT PREPARED ({commit_took:?})"
    );
    // The participant is still prepared: its COMMIT PREPARED is being held back.
    assert_eq!(
        prepared_on(1, &db).await,
        1,
        "COMMIT PREPARED is off the path"
    );
    // Simple protocol, then extended: the same client sees both writes at once.
    assert_eq!(
        one(&mut c, &format!("SELECT name FROM users WHERE id = {b}")).await,
        "ryw",
        "the prepared shard's write, read right after COMMIT"
    );
    assert!(
        t0.elapsed() >= HOLD,
        "the read waited for the COMMIT PREPARED"
    );
    assert_eq!(prepared(&db).await, 0);

    // Again with the extended protocol and a read of both rows in one statement.
    armed.store(1, Ordering::SeqCst);
    transfer(&mut c, a, b, "ryw2").await;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM users WHERE id = ANY($1) ORDER BY id")
            .bind(vec![a, b])
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(names, vec!["ryw2".to_string(), "ryw2".to_string()]);

    // A new transaction that writes the prepared row itself: not blocked on its lock
    // forever, and it builds on the committed value.
    armed.store(1, Ordering::SeqCst);
    transfer(&mut c, a, b, "ryw3").await;
    let mut tx = c.begin().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET name = name || '+' WHERE id = {b}"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        one(&mut c, &format!("SELECT name FROM users WHERE id = {b}")).await,
        "ryw3+"
    );
    let _ = c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_left_prepared_after_a_load_of_cross_shard_transfers() {
    let db = two_shard_db().await;
    // The sweeper would only act an hour from now: whatever is committed, the
    // COMMIT PREPAREDs off the clients' path committed.
    let r = Router::start(&pool_toml_two_shards(
        &db,
        "[sharding.two_phase_commit]\nenabled = true\ntimeout_seconds = 3600\ncleanup_interval_seconds = 3600",
    ))
    .await;
    let before = one(
        &mut r.connect(&db).await,
        "SELECT sum(score)::text FROM users",
    )
    .await;
    let mut clients = Vec::new();
    for i in 0..8usize {
        let mut c = r.connect(&db).await;
        clients.push(tokio::spawn(async move {
            for n in 0..25usize {
                let a = key_on(0, (i * 7 + n) % 20);
                let b = key_on(1, (i * 3 + n) % 20);
                // Always shard 0's row first: shards cannot see a deadlock that spans
                // them, so the clients take their locks in one order.
                transfer(&mut c, a, b, &format!("c{i}")).await;
            }
            // Gone right after its last COMMIT: its COMMIT PREPAREDs still finish.
            let _ = c.close().await;
        }));
    }
    for c in clients {
        within(120, "a client's transfers", c).await.unwrap();
    }
    within(10, "the last COMMIT PREPAREDs", async {
        while prepared(&db).await > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let mut c = r.connect(&db).await;
    assert_eq!(
        one(&mut c, "SELECT sum(score)::text FROM users").await,
        before,
        "every transfer is whole"
    );
    let mut coord = shard_opts(0, SUPERUSER, SUPERUSER_PASSWORD, &db)
        .connect()
        .await
        .unwrap();
    assert_eq!(
        one(
            &mut coord,
            "SELECT count(*)::text FROM orochi.twopc_decisions WHERE decision = 'commit'"
        )
        .await,
        "200",
        "one two-phase commit per transfer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_prepared_that_fails_off_the_path_is_finished_by_the_sweeper() {
    let db = two_shard_db().await;
    let s1 = fleet().shards[1].clone();
    let proxy = FaultProxy::start(s1.clone()).await;
    let toml = pool_toml_two_shards(
        &db,
        "[sharding.two_phase_commit]\nenabled = true\ntimeout_seconds = 1\ncleanup_interval_seconds = 1",
    )
    .replace(
        &format!("[[\"{}\", {}, \"primary\"]]", s1.0, s1.1),
        &format!("[[\"127.0.0.1\", {}, \"primary\"]]", proxy.port),
    );
    assert!(toml.contains(&proxy.port.to_string()));
    let (faults, armed) = holding_faults();
    let r = Router::start_with_twopc_faults("", &toml, faults).await;
    let mut c = r.connect(&db).await;
    let (a, b) = (key_on(0, 1), key_on(1, 1));
    armed.store(1, Ordering::SeqCst);
    transfer(&mut c, a, b, "swept").await;
    // While the COMMIT PREPARED is held back, shard 1's connections die (as when the
    // server is killed): it is sent on a dead connection and fails.
    proxy.set(Fault::Reset);
    assert_eq!(prepared_on(1, &db).await, 1);
    tokio::time::sleep(HOLD + Duration::from_millis(300)).await;
    proxy.set(Fault::None);
    // The client's COMMIT stands: the sweeper commits the participant.
    within(30, "the sweeper commits the prepared participant", async {
        while prepared(&db).await > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let mut d1 = shard_opts(1, SUPERUSER, SUPERUSER_PASSWORD, &db)
        .connect()
        .await
        .unwrap();
    assert_eq!(
        one(&mut d1, &format!("SELECT name FROM users WHERE id = {b}")).await,
        "swept"
    );
    // The client's connection is still good.
    assert_eq!(
        one(&mut c, &format!("SELECT name FROM users WHERE id = {a}")).await,
        "swept"
    );
}
