//! The bank test across a failover (issue 17 item 1): two shards, each a primary with a
//! streaming replica (roles `auto`), cross-shard transfers running through the router
//! while shard 0's primary — the coordinator of every transfer, where the decisions and
//! the sweeper's advisory lock live — is stopped and its replica promoted. Afterwards,
//! on the current primaries: money is conserved, every transfer is all-or-nothing (its
//! ledger rows on both shards or on neither), every transfer the client saw commit is
//! there, none that failed before COMMIT is, and nothing stays prepared once the router's
//! sweeper (not a restarted router) has run. Then `orochi-router setup` finds the new
//! primary too.

mod cluster;
mod common;

use cluster::*;
use common::shards::shard_of;
use common::*;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACCOUNTS_PER_SHARD: usize = 16;
const OPENING: i64 = 1000;
const WORKERS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// COMMIT answered: the transfer must be there.
    Committed,
    /// Failed before COMMIT was sent: it must not be there.
    Aborted,
    /// COMMIT failed: either way, but all-or-nothing.
    Unknown,
}

struct Done {
    tid: i64,
    outcome: Outcome,
    at: Instant,
}

/// xorshift64: enough randomness for picking accounts, no dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn run(c: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(c)
        .await
        .map(|_| ())
}

/// Transfers until `stop`, reconnecting after any lost connection. Locks are taken in
/// shard order (shard 0's account first), so transfers never deadlock across shards,
/// where no server could see the cycle.
async fn worker(
    opts: sqlx::postgres::PgConnectOptions,
    accounts: [Vec<i64>; 2],
    tids: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Vec<Done> {
    let mut rng = seed | 1;
    let mut done = Vec::new();
    let mut conn: Option<PgConnection> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            match tokio::time::timeout(Duration::from_secs(3), opts.connect()).await {
                Ok(Ok(c)) => conn = Some(c),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
            continue;
        };
        let tid = tids.fetch_add(1, Ordering::Relaxed);
        let a = accounts[0][next(&mut rng) as usize % accounts[0].len()];
        let b = accounts[1][next(&mut rng) as usize % accounts[1].len()];
        let amount = (next(&mut rng) % 50 + 1) as i64;
        let delta = if next(&mut rng).is_multiple_of(2) {
            amount
        } else {
            -amount
        };
        let body = [
            "BEGIN".to_string(),
            format!("UPDATE accounts SET balance = balance + {delta} WHERE id = {a}"),
            format!("INSERT INTO ledger VALUES ({a}, {tid}, {delta})"),
            format!(
                "UPDATE accounts SET balance = balance + {} WHERE id = {b}",
                -delta
            ),
            format!("INSERT INTO ledger VALUES ({b}, {tid}, {})", -delta),
        ];
        let mut failed = false;
        for sql in &body {
            if run(c, sql).await.is_err() {
                failed = true;
                break;
            }
        }
        let outcome = if failed {
            if tokio::time::timeout(Duration::from_secs(5), run(c, "ROLLBACK"))
                .await
                .map_or(true, |r| r.is_err())
            {
                conn = None;
            }
            Outcome::Aborted
        } else {
            match tokio::time::timeout(Duration::from_secs(10), run(c, "COMMIT")).await {
                Ok(Ok(())) => Outcome::Committed,
                _ => {
                    conn = None;
                    Outcome::Unknown
                }
            }
        };
        done.push(Done {
            tid,
            outcome,
            at: Instant::now(),
        });
    }
    done
}

async fn tids_on(c: &mut PgConnection) -> BTreeSet<i64> {
    sqlx::query_scalar::<_, i64>("SELECT tid FROM ledger")
        .fetch_all(c)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn prepared_on(c: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'orochi\\_%' AND database = current_database()",
    )
    .fetch_one(c)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_stay_atomic_across_a_coordinator_failover() {
    let (c0, c1) = tokio::join!(
        Cluster::up("tb0", 64, 1, true),
        Cluster::up("tb1", 66, 1, true)
    );
    let (db, db1) = tokio::join!(c0.scratch_db("bank"), c1.scratch_db("bank"));
    assert_eq!(db, db1);
    let mut accounts: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
    for id in 1i64.. {
        let s = shard_of(id);
        if accounts[s].len() < ACCOUNTS_PER_SHARD {
            accounts[s].push(id);
        }
        if accounts.iter().all(|a| a.len() == ACCOUNTS_PER_SHARD) {
            break;
        }
    }
    for (c, ids) in [(&c0, &accounts[0]), (&c1, &accounts[1])] {
        let mut a = c
            .opts(&c.primary, APP_USER, APP_PASSWORD, &db)
            .connect()
            .await
            .unwrap();
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        run(
            &mut a,
            &format!(
                "CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);
                 CREATE TABLE ledger (account bigint NOT NULL, tid bigint NOT NULL, delta bigint NOT NULL, PRIMARY KEY (tid, account));
                 INSERT INTO accounts SELECT unnest(ARRAY[{}]::bigint[]), {OPENING}",
                list.join(",")
            ),
        )
        .await
        .unwrap();
        c.wait_for(c.r(1), &db, "SELECT 1 FROM accounts LIMIT 1")
            .await;
    }

    let shard = |c: &Cluster| {
        Cluster::servers_line(&[(c.primary.port, "auto", 1), (c.r(1).port, "auto", 1)])
    };
    let body = format!(
        r#"
[pools.{db}]
pool_mode = "transaction"

[pools.{db}.users.0]
username = "{APP_USER}"
password = "{APP_PASSWORD}"
pool_size = 8

[pools.{db}.shards.0]
database = "{db}"
{s0}

[pools.{db}.shards.1]
database = "{db}"
{s1}

[sharding]
enabled = true

[sharding.two_phase_commit]
timeout_seconds = 1
cleanup_interval_seconds = 1

[[sharding.tables]]
name = "accounts"
column = "id"
data_type = "bigint"

[[sharding.tables]]
name = "ledger"
column = "account"
data_type = "bigint"
"#,
        s0 = shard(&c0),
        s1 = shard(&c1),
    );
    let general = fast_health(300, 1);
    let r = Router::start_with(&general, &body).await;

    let tids = Arc::new(AtomicI64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            tokio::spawn(worker(
                r.opts(APP_USER, APP_PASSWORD, &db),
                accounts.clone(),
                tids.clone(),
                stop.clone(),
                0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = tids.load(Ordering::Relaxed);
    assert!(before > 10, "transfers run before the failover ({before})");
    // Failover of the coordinator shard: a clean stop sends the replica all WAL (every
    // decision and PREPARE), then the replica is promoted; the health checks find it.
    pg_sh(&["stop", &c0.primary.name]).await;
    pg_sh(&["promote", &c0.r(1).name]).await;
    let promoted = Instant::now();
    // Transfers must commit on the new primary; give them some time to.
    let deadline = promoted + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = tids.load(Ordering::Relaxed) - before;
        if (after > 100 && promoted.elapsed() > Duration::from_secs(3)) || Instant::now() > deadline
        {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut done = Vec::new();
    for w in workers {
        done.extend(within(30, "workers stop", w).await.unwrap());
    }
    let committed_after = done
        .iter()
        .filter(|d| d.outcome == Outcome::Committed && d.at > promoted)
        .count();
    assert!(
        committed_after > 10,
        "transfers commit after the promotion: {committed_after}"
    );

    // The router's sweeper settles whatever the failover left prepared.
    let mut p0 = c0.su(c0.r(1), &db).await;
    let mut p1 = c1.su(&c1.primary, &db).await;
    within(
        30,
        "nothing stays prepared on the current primaries",
        async {
            while prepared_on(&mut p0).await + prepared_on(&mut p1).await > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    )
    .await;

    let total: i64 = {
        let mut t = 0;
        for c in [&mut p0, &mut p1] {
            t += sqlx::query_scalar::<_, i64>("SELECT sum(balance)::bigint FROM accounts")
                .fetch_one(c)
                .await
                .unwrap();
        }
        t
    };
    assert_eq!(
        total,
        OPENING * 2 * ACCOUNTS_PER_SHARD as i64,
        "money conserved"
    );
    let (t0, t1) = (tids_on(&mut p0).await, tids_on(&mut p1).await);
    let half: Vec<_> = t0.symmetric_difference(&t1).collect();
    assert!(half.is_empty(), "transfers on one shard only: {half:?}");
    for d in &done {
        match d.outcome {
            Outcome::Committed => assert!(t0.contains(&d.tid), "committed {} lost", d.tid),
            Outcome::Aborted => assert!(!t0.contains(&d.tid), "aborted {} applied", d.tid),
            Outcome::Unknown => {}
        }
    }
    for c in [&mut p0, &mut p1] {
        let off: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM accounts a WHERE a.balance <> {OPENING} + coalesce((SELECT sum(delta) FROM ledger l WHERE l.account = a.id), 0)"
        )))
        .fetch_one(c)
        .await
        .unwrap();
        assert_eq!(off, 0, "every balance matches its ledger");
    }
    let unknown = done
        .iter()
        .filter(|d| d.outcome == Outcome::Unknown)
        .count();
    eprintln!(
        "{} transfers, {} committed ({committed_after} after the promotion), {} aborted, {unknown} unknown, {} applied",
        done.len(),
        done.iter().filter(|d| d.outcome == Outcome::Committed).count(),
        done.iter().filter(|d| d.outcome == Outcome::Aborted).count(),
        t0.len()
    );
    drop(r);

    // `orochi-router setup` probes the roles: the first server listed is down, the
    // objects go to the promoted one.
    let cfg =
        std::env::temp_dir().join(format!("orochi_bank_failover_{}.toml", std::process::id()));
    std::fs::write(
        &cfg,
        format!("[general]\nhost = \"127.0.0.1\"\nport = 0\nadmin_port = 0\nmetrics_port = 0\n{general}\n{body}"),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orochi-router"))
        .args(["setup", "-c"])
        .arg(&cfg)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&cfg);
    assert!(
        out.status.success(),
        "setup after the failover: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let _ = p0.close().await;
    let _ = p1.close().await;
    for n in [&c0.primary, c0.r(1), &c1.primary, c1.r(1)] {
        pg_sh(&["destroy", &n.name]).await;
    }
}
