//! A reshard cutover played on an in-process router the way `reshard cutover` drives
//! one (PAUSE, `RESHARD SWITCH`, RESUME): an old map of two shards (`two_shard_db`) and
//! a new one of three (`<db>_n` on the fleet's servers 0, 1 and 2, the same rows of
//! `users` where three shards put them, as a copy leaves them). The old databases keep
//! their rows, so switching back to them is a reverse.

use super::shards::*;
use super::*;
use orochi_router::backend::Checkout;
use sqlx::ConnectOptions;

/// The old map `db` and the new `<db>_n`, with a router on the old one. Every user of the
/// pool gets one connection per shard, so one open transaction (or [`hold_shard`])
/// holds a shard.
pub async fn old_and_new() -> (Router, String, String) {
    let db = two_shard_db().await;
    let new = format!("{db}_n");
    for k in 0..3 {
        let mut su = shard_opts(k, SUPERUSER, SUPERUSER_PASSWORD, "postgres")
            .connect()
            .await
            .unwrap();
        for sql in [
            format!("DROP DATABASE IF EXISTS \"{new}\" WITH (FORCE)"),
            format!("CREATE DATABASE \"{new}\" OWNER app"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut su)
                .await
                .unwrap();
        }
        let mut c = shard_opts(k, APP_USER, APP_PASSWORD, &new)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE users (id bigint PRIMARY KEY, name text, score numeric(10,2), city text);
             CREATE TEMP TABLE ks (id bigint) PARTITION BY HASH (id);
             INSERT INTO users SELECT g, 'user' || g, g * 1.25, (ARRAY['Tokyo','Osaka','Paris'])[1 + g % 3]
               FROM generate_series(1, {ROWS}) g
              WHERE satisfies_hash_partition('ks'::regclass, 3, {k}, g::bigint);"
        )))
        .execute(&mut c)
        .await
        .unwrap();
    }
    let config = pool_toml_two_shards(&db, "")
        .replace("pool_size = 4", "pool_size = 1")
        .replace("pool_size = 2", "pool_size = 1");
    (Router::start(&config).await, db, new)
}

/// `RESHARD SWITCH`'s map: database `db` on the fleet's first `n` servers.
pub fn map_of(db: &str, n: usize) -> String {
    let servers: Vec<String> = fleet().shards[..n]
        .iter()
        .map(|(h, p)| format!(r#"{{"database": "{db}", "servers": [["{h}", {p}, "primary"]]}}"#))
        .collect();
    format!("[{}]", servers.join(", "))
}

/// The new map of [`old_and_new`].
pub fn new_map(new: &str) -> String {
    map_of(new, 3)
}

/// The end of a cutover to the new map: the switch, then RESUME.
pub async fn cutover(router: &Router, db: &str, new: &str) {
    switch(router, db, new, 3);
    router.app.resume(db);
}

/// `RESHARD SWITCH` of pool `db` to database `to` on `n` servers (the pool stays paused).
pub fn switch(router: &Router, db: &str, to: &str, n: usize) {
    let now = router.app.switch_shard_map(db, &map_of(to, n)).unwrap();
    assert_eq!(now.len(), n);
}

/// How many rows with `id` the database `db` holds on server `k`.
pub async fn count_on(k: usize, db: &str, id: i64) -> i64 {
    let mut c = shard_opts(k, APP_USER, APP_PASSWORD, db)
        .connect()
        .await
        .unwrap();
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(&mut c)
        .await
        .unwrap()
}

/// The shard of `id` in a map of `shards`.
pub fn shard_in(id: i64, shards: usize) -> usize {
    orochi_sharding::shard_for(&orochi_sharding::ShardKey::Int(id), shards).unwrap()
}

/// Until no connection of pool `db` is lent (what PAUSE waits for), then a little more
/// for the sessions to reach the pause gate.
pub async fn all_back(router: &Router, db: &str) {
    within(10, "every connection of the pool back", async {
        loop {
            let busy: usize = router
                .app
                .registry
                .load()
                .all_server_pools()
                .filter(|p| p.pool_name == db)
                .map(|p| p.stats.in_use.load(std::sync::atomic::Ordering::Relaxed))
                .sum();
            if busy == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Takes the only connection of the raw clients' user (the trust user) to shard `k` of
/// pool `db`'s current map: a session that needs it waits until it is dropped.
pub async fn hold_shard(router: &Router, db: &str, k: usize) -> Checkout {
    let pool = router
        .app
        .registry
        .load()
        .all_server_pools()
        .find(|p| p.pool_name == db && p.user_name == TRUST_USER && p.shard == k)
        .cloned()
        .expect("the trust user's pool of that shard");
    pool.checkout().await.unwrap().0
}
