//! A primary with two streaming replicas (cluster `rt1`, shared with the retry tests,
//! left untouched): reads land on the replicas in the proportions of the balancing mode,
//! writes on the primary; with roles `auto` the router finds out which is which.

use crate::cluster::*;
use crate::common::*;
use orochi_admin::{AdminView, NodeStatus, Role};
use orochi_router::admin_view::AppView;
use std::collections::HashMap;

pub async fn rt1() -> Cluster {
    Cluster::up("rt1", 50, 2, false).await
}

async fn reads(c: &mut sqlx::PgConnection, n: usize) -> HashMap<u16, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        *seen
            .entry(served_by(c, PORT_Q).await.expect("read"))
            .or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_follow_the_balancing_mode_over_two_replicas() {
    let c = rt1().await;
    let db = c.scratch_db("balance").await;
    let (p, r1, r2) = (c.primary.port, c.r(1).port, c.r(2).port);
    let start = |lb: &'static str, primary_reads: bool, weights: (u32, u32)| {
        let servers = Cluster::servers_line(&[
            (p, "primary", 1),
            (r1, "replica", weights.0),
            (r2, "replica", weights.1),
        ]);
        let db = db.clone();
        async move {
            Router::start_with(
                &fast_health(200, 1),
                &router_config(
                    &db,
                    &servers,
                    &format!(
                        "load_balancing_mode = \"{lb}\"\nprimary_reads_enabled = {primary_reads}"
                    ),
                    "",
                ),
            )
            .await
        }
    };

    // round_robin: the replicas in turn, the primary never.
    let r = start("round_robin", false, (1, 1)).await;
    let mut a = r.connect(&db).await;
    let mut last = 0;
    for i in 0..20 {
        let port = served_by(&mut a, PORT_Q).await.unwrap();
        assert!(port == r1 || port == r2, "read {i} on {port}");
        assert_ne!(port, last, "round robin alternates");
        last = port;
    }
    // Writes, locking reads and transactions that write: the primary.
    exec(&mut a, "CREATE TABLE t (id int)").await;
    let ins = "INSERT INTO t VALUES (1) RETURNING inet_server_port()::text";
    assert_eq!(served_by(&mut a, ins).await.unwrap(), p);
    exec(&mut a, "BEGIN").await;
    assert_eq!(served_by(&mut a, ins).await.unwrap(), p);
    assert_eq!(served_by(&mut a, PORT_Q).await.unwrap(), p);
    exec(&mut a, "COMMIT").await;
    drop(r);

    // round_robin with primary reads: all three in turn.
    let r = start("round_robin", true, (1, 1)).await;
    let mut a = r.connect(&db).await;
    let seen = reads(&mut a, 30).await;
    assert_eq!(
        (seen.get(&p), seen.get(&r1), seen.get(&r2)),
        (Some(&10), Some(&10), Some(&10)),
        "{seen:?}"
    );
    drop(r);

    // random, weights 1:3.
    let r = start("random", false, (1, 3)).await;
    let mut a = r.connect(&db).await;
    let seen = reads(&mut a, 400).await;
    let heavy = *seen.get(&r2).unwrap_or(&0) as f64 / 400.0;
    assert!(
        (0.62..0.88).contains(&heavy),
        "weight 3 of 4 should get about 75% of reads: {seen:?}"
    );
    assert_eq!(seen.get(&p), None);
    drop(r);

    // loc: the replica with fewer connections in use (a held read-only transaction
    // keeps one busy), else the first.
    let r = start("loc", false, (1, 1)).await;
    let mut a = r.connect(&db).await;
    let mut b = r.connect(&db).await;
    exec(&mut a, "BEGIN READ ONLY").await;
    let held = served_by(&mut a, PORT_Q).await.unwrap();
    assert_eq!(held, r1, "both idle: the first replica");
    let seen = reads(&mut b, 10).await;
    assert_eq!(
        seen.get(&r2),
        Some(&10),
        "r1 is busy, reads go to r2: {seen:?}"
    );
    exec(&mut a, "COMMIT").await;
    let seen = reads(&mut b, 5).await;
    assert_eq!(seen.get(&r1), Some(&5), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_roles_are_found_by_health_checks() {
    let c = rt1().await;
    let db = c.scratch_db("auto").await;
    let (p, r1, r2) = (c.primary.port, c.r(1).port, c.r(2).port);
    // The primary listed last: its position says nothing.
    let servers = Cluster::servers_line(&[(r1, "auto", 1), (r2, "auto", 1), (p, "auto", 1)]);
    let r = Router::start_with(
        &fast_health(200, 1),
        &router_config(&db, &servers, "primary_reads_enabled = false", ""),
    )
    .await;
    let mut a = r.connect(&db).await;
    let seen = reads(&mut a, 30).await;
    assert_eq!(seen.get(&p), None, "{seen:?}");
    assert!(seen.contains_key(&r1) && seen.contains_key(&r2), "{seen:?}");
    exec(&mut a, "CREATE TABLE t (id int)").await;
    assert_eq!(
        served_by(
            &mut a,
            "INSERT INTO t VALUES (1) RETURNING inet_server_port()::text"
        )
        .await
        .unwrap(),
        p
    );

    // The console shows actual roles, health and lag.
    let view = AppView::new(r.app.clone());
    let nodes = view.pool_nodes();
    let node = |port: u16| nodes.iter().find(|n| n.port == port).unwrap();
    assert_eq!(node(p).role, Role::Primary);
    assert_eq!(node(r1).role, Role::Replica);
    assert_eq!(node(r2).role, Role::Replica);
    assert!(nodes.iter().all(|n| n.status == NodeStatus::Up));
    assert!(!node(p).load_balance_node && node(r1).load_balance_node);
    assert!(node(r1).replication_delay.is_some(), "lag is measured");
    assert!(node(p).replication_delay.is_none());
    let servers = view.servers();
    assert!(
        servers.iter().any(|s| s.port == r1
            && s.role == Role::Replica
            && s.health == NodeStatus::Up
            && s.replication_delay.is_some()),
        "SHOW SERVERS shows role, health and lag: {servers:?}"
    );
    assert!(servers
        .iter()
        .any(|s| s.port == p && s.role == Role::Primary && s.replication_delay.is_none()));
    let shards = view.shards();
    assert_eq!(shards[0].primary, Some(format!("127.0.0.1:{p}")));
    assert_eq!(shards[0].replicas.len(), 2);
    assert_eq!(shards[0].servers_up, 3);
    let metrics = r.app.metrics.scrape(&view);
    let up = format!(
        "orochi_pgdog_server_up{{pool=\"{db}\",role=\"replica\",server=\"127.0.0.1:{r1}\",shard=\"0\"}} 1"
    );
    assert!(metrics.contains(&up), "{up} missing in\n{metrics}");
    assert!(
        metrics.contains("orochi_pgdog_replica_lag_seconds{"),
        "{metrics}"
    );
    assert!(view.healthy());
}
