//! Seed 001: one database behind three endpoints (DNS names there, forwarders here),
//! written as three servers with role `auto`. One endpoint, then two, stop answering:
//! traffic moves to the ones left without client errors, and comes back when they return.

use crate::cluster::*;
use crate::common::*;
use orochi_admin::{AdminView, NodeStatus};
use orochi_router::admin_view::AppView;
use std::time::Duration;

/// Statements sent through each endpoint so far.
fn sent(view: &AppView) -> Vec<u64> {
    view.pool_nodes().iter().map(|n| n.select_cnt).collect()
}

/// Runs `n` inserts (each must succeed) and returns the endpoint that took them all.
async fn writes_land_on(view: &AppView, c: &mut sqlx::PgConnection, n: usize) -> usize {
    let before = sent(view);
    for _ in 0..n {
        exec(c, "INSERT INTO t VALUES (1)").await;
    }
    let after = sent(view);
    let grew: Vec<usize> = (0..after.len()).filter(|&i| after[i] > before[i]).collect();
    assert_eq!(
        grew.len(),
        1,
        "writes on one endpoint: {before:?} -> {after:?}"
    );
    assert_eq!(after[grew[0]] - before[grew[0]], n as u64);
    grew[0]
}

async fn reads(c: &mut sqlx::PgConnection) {
    for _ in 0..20 {
        one(c, "SELECT count(*)::text FROM t").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_moves_between_endpoints_of_one_server_and_comes_back() {
    let db = scratch_db().await;
    let single = fleet().port;
    let eps = [
        Forwarder::start(single).await,
        Forwarder::start(single).await,
        Forwarder::start(single).await,
    ];
    let servers = Cluster::servers_line(&[
        (eps[0].port, "auto", 1),
        (eps[1].port, "auto", 1),
        (eps[2].port, "auto", 1),
    ]);
    let r = Router::start_with(
        &fast_health(200, 1),
        &router_config(&db, &servers, "load_balancing_mode = \"random\"", ""),
    )
    .await;
    let view = AppView::new(r.app.clone());
    let mut c = r.connect(&db).await;
    exec(&mut c, "CREATE TABLE t (id int)").await;
    assert_eq!(
        writes_land_on(&view, &mut c, 10).await,
        0,
        "the first endpoint"
    );
    reads(&mut c).await;

    // Scenario 1: the first endpoint stops answering.
    eps[0].close();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(writes_land_on(&view, &mut c, 10).await, 1);
    reads(&mut c).await;
    assert_ne!(view.pool_nodes()[0].status, NodeStatus::Up);

    // Scenario 4 of the seed: two of three endpoints down.
    eps[1].close();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(writes_land_on(&view, &mut c, 10).await, 2);
    reads(&mut c).await;
    assert!(view.healthy(), "one endpoint is enough");
    let metrics = r.app.metrics.scrape(&view);
    for ep in &eps[..2] {
        let banned = format!(
            "orochi_pgdog_server_bans_total{{pool=\"{db}\",role=\"primary\",server=\"127.0.0.1:{}\",shard=\"0\"}} 1",
            ep.port
        );
        assert!(metrics.contains(&banned), "{banned} missing in\n{metrics}");
    }

    // Both come back: after ban_time and a passing check, the first takes writes again.
    eps[0].reopen().await;
    eps[1].reopen().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let before = sent(&view)[0];
        exec(&mut c, "INSERT INTO t VALUES (2)").await;
        if sent(&view)[0] > before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes never came back to the first endpoint"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(5, "every endpoint up", || {
        view.pool_nodes().iter().all(|n| n.status == NodeStatus::Up)
    })
    .await;
    let n: i64 = one(&mut c, "SELECT count(*)::text FROM t WHERE id = 1")
        .await
        .parse()
        .unwrap();
    assert_eq!(n, 30, "every acknowledged write is there");
}
