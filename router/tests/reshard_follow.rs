//! Reshard followers follow the pool set: a sharded pool added by RELOAD gets its
//! follower (the session on its shard 0 that `reshard cutover` waits for), and a pool
//! removed by RELOAD loses it.

mod common;

use common::certs::{scratch_dir, write};
use common::shards::*;
use common::*;
use sqlx::ConnectOptions;
use std::time::Duration;

/// Follower sessions connected to `db` on server 0.
async fn followers_on(db: &str) -> i64 {
    let mut c = shard_opts(0, SUPERUSER, SUPERUSER_PASSWORD, "postgres")
        .connect()
        .await
        .unwrap();
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
    )
    .bind(db)
    .bind(orochi_reshard::follow::APPLICATION_NAME)
    .fetch_one(&mut c)
    .await
    .unwrap()
}

async fn until_followers(db: &str, want: i64, what: &str) {
    within(15, what, async {
        while followers_on(db).await != want {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// The pool sections of `db` only (`[sharding]` and its tables are shared).
fn pool_of(db: &str) -> String {
    let t = pool_toml_two_shards(db, "");
    t[..t.find("\n[sharding]").unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_added_by_reload_gets_its_follower_and_a_removed_one_loses_it() {
    let (a, b) = (two_shard_db().await, two_shard_db().await);
    let dir = scratch_dir("reshard-follow");
    let general = "[general]\nhost = \"127.0.0.1\"\nport = 0\nadmin_port = 0\nmetrics_port = 0\n";
    let only_a = format!("{general}{}", pool_toml_two_shards(&a, ""));
    let path = write(&dir, "orochi.toml", &only_a);
    let router = Router::start_file(&path).await;
    until_followers(&a, 1, "the start-up pool's follower").await;
    // Three supervisor rounds: B is not configured, nothing follows it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        followers_on(&b).await,
        0,
        "nothing follows a pool not configured"
    );

    std::fs::write(&path, format!("{only_a}\n{}\n", pool_of(&b))).unwrap();
    router.app.reload().unwrap();
    until_followers(&b, 1, "the follower of the pool RELOAD added").await;
    assert_eq!(followers_on(&a).await, 1, "A's follower stays, alone");

    std::fs::write(&path, &only_a).unwrap();
    router.app.reload().unwrap();
    until_followers(&b, 0, "the removed pool's follower gone").await;
    assert_eq!(followers_on(&a).await, 1);
}
