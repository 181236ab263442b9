//! Recovery follows failover (issue 17 item 1): a router started while shard 1's old
//! primary was in charge resolves a transaction left prepared on the replica promoted
//! after it, without a restart. Shard 0 is the fleet's s0; shard 1 is a cluster of its
//! own (primary and one replica, roles `auto`).

mod cluster;
mod common;

use cluster::*;
use common::shards::shard_opts;
use common::*;
use sqlx::ConnectOptions;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_reaches_a_promoted_primary() {
    let c = Cluster::up("tf", 62, 1, true).await;
    let db = c.scratch_db("failover").await;
    let (p, r1) = (c.primary.port, c.r(1).port);
    // The same database on shard 0, with the 2PC objects (as a first commit leaves them).
    let mut s0 = shard_opts(0, SUPERUSER, SUPERUSER_PASSWORD, "postgres")
        .connect()
        .await
        .unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"),
        format!("CREATE DATABASE \"{db}\" OWNER app"),
    ] {
        exec(&mut s0, &sql).await;
    }
    let mut a0 = shard_opts(0, APP_USER, APP_PASSWORD, &db)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(orochi_twopc::setup::setup()))
        .execute(&mut a0)
        .await
        .unwrap();
    let table = "CREATE TABLE users (id bigint PRIMARY KEY, name text)";
    exec(&mut a0, table).await;
    let mut a1 = c
        .opts(&c.primary, APP_USER, APP_PASSWORD, &db)
        .connect()
        .await
        .unwrap();
    exec(&mut a1, table).await;
    let id = (1..).find(|&i| common::shards::shard_of(i) == 1).unwrap();
    exec(
        &mut a1,
        &format!("INSERT INTO users VALUES ({id}, 'before')"),
    )
    .await;
    drop(a1);
    c.wait_for(c.r(1), &db, &format!("SELECT 1 FROM users WHERE id = {id}"))
        .await;

    let f = fleet();
    let body = format!(
        r#"
[pools.{db}]
pool_mode = "transaction"

[pools.{db}.users.0]
username = "{APP_USER}"
password = "{APP_PASSWORD}"
pool_size = 4

[pools.{db}.shards.0]
database = "{db}"
servers = [["{h0}", {p0}, "primary"]]

[pools.{db}.shards.1]
database = "{db}"
{servers}

[sharding]
enabled = true

[sharding.two_phase_commit]
timeout_seconds = 1
cleanup_interval_seconds = 1

[[sharding.tables]]
name = "users"
column = "id"
data_type = "bigint"
"#,
        h0 = f.shards[0].0,
        p0 = f.shards[0].1,
        servers = Cluster::servers_line(&[(p, "auto", 1), (r1, "auto", 1)]),
    );
    let r = Router::start_with(&fast_health(300, 1), &body).await;
    let mut client = r.connect(&db).await;
    assert_eq!(
        one(
            &mut client,
            &format!("SELECT name FROM users WHERE id = {id}")
        )
        .await,
        "before"
    );

    // Failover: the old primary stops, the replica is promoted; the router's health
    // checks find it.
    pg_sh(&["stop", &c.primary.name]).await;
    pg_sh(&["promote", &c.r(1).name]).await;
    within(20, "writes reach the promoted primary", async {
        while scalar(
            &mut client,
            &format!("UPDATE users SET name = 'after' WHERE id = {id} RETURNING name"),
        )
        .await
        .is_err()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    // A transaction a crashed router left behind: committed on the coordinator (shard
    // 0), prepared on the new primary of shard 1.
    let base = "orochi_gone_1r00000000000000ab_c0";
    let mut n1 = c
        .opts(c.r(1), APP_USER, APP_PASSWORD, &db)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN; UPDATE users SET name = 'recovered' WHERE id = {id}; PREPARE TRANSACTION '{base}_s1'"
    )))
    .execute(&mut n1)
    .await
    .unwrap();
    exec(
        &mut a0,
        &format!("SELECT orochi.record_decision('{base}', 'commit')"),
    )
    .await;
    within(
        20,
        "the sweeper commits it on the promoted primary",
        async {
            loop {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()",
                )
                .fetch_one(&mut n1)
                .await
                .unwrap();
                if n == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    )
    .await;
    assert_eq!(
        one(
            &mut client,
            &format!("SELECT name FROM users WHERE id = {id}")
        )
        .await,
        "recovered"
    );
    drop(client);
    drop(r);
    pg_sh(&["destroy", &c.primary.name]).await;
    pg_sh(&["destroy", &c.r(1).name]).await;
}
