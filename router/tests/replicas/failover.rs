//! Servers that go away, get promoted or fall behind, each scenario on a cluster of its
//! own: a replica killed under read load; the primary stopped and a replica promoted
//! with roles `auto` (no config change); replay paused on a replica past
//! `max_replica_lag`.

use crate::cluster::*;
use crate::common::*;
use orochi_admin::{AdminView, NodeStatus, Role};
use orochi_router::admin_view::AppView;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

async fn stop_cluster(c: &Cluster) {
    for n in std::iter::once(&c.primary).chain(&c.replicas) {
        pg_sh(&["stop", &n.name]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_read_load_costs_only_in_flight_reads() {
    let c = Cluster::up("rt2", 53, 2, false).await;
    let db = c.scratch_db("kill").await;
    let (p, r1, r2) = (c.primary.port, c.r(1).port, c.r(2).port);
    let servers =
        Cluster::servers_line(&[(p, "primary", 1), (r1, "replica", 1), (r2, "replica", 1)]);
    let r = Router::start_with(
        &fast_health(200, 1),
        &router_config(
            &db,
            &servers,
            "load_balancing_mode = \"round_robin\"\nprimary_reads_enabled = false",
            "",
        ),
    )
    .await;
    const CLIENTS: usize = 8;
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    // Reads per server port, with the time they were served.
    let served = Arc::new(Mutex::new(Vec::<(Instant, u16)>::new()));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (stop, errors, served) = (stop.clone(), errors.clone(), served.clone());
        let opts = r.opts(APP_USER, APP_PASSWORD, &db);
        tasks.push(tokio::spawn(async move {
            let mut conn = sqlx::ConnectOptions::connect(&opts).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                match served_by(&mut conn, PORT_Q).await {
                    Ok(port) => served.lock().unwrap().push((Instant::now(), port)),
                    Err(e) => {
                        errors.lock().unwrap().push(e.to_string());
                        // The router ends a session whose server died mid-query.
                        conn = sqlx::ConnectOptions::connect(&opts).await.unwrap();
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    pg_sh(&["stop", &c.r(1).name]).await;
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let on_r1_after = |t: Instant| {
        served
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, port)| *at > t && *port == r1)
            .count()
    };
    assert_eq!(on_r1_after(stopped), 0, "no reads on a stopped replica");
    let errors_while_down = errors.lock().unwrap().len();
    pg_sh(&["start", &c.r(1).name]).await;
    let restarted = Instant::now();
    eventually(10, "the restarted replica takes reads again", || {
        on_r1_after(restarted) > 0
    })
    .await;
    println!(
        "replica back in rotation {} ms after its restart",
        restarted.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    let total = served.lock().unwrap().len();
    let mut kinds = errors.clone();
    kinds.sort();
    kinds.dedup();
    println!(
        "{total} reads, {} errors (all while the replica went down): {kinds:?}",
        errors.len()
    );
    assert!(
        errors.len() <= CLIENTS && errors.len() == errors_while_down,
        "only reads in flight on the killed replica may fail: {errors:?}"
    );
    assert!(
        served
            .lock()
            .unwrap()
            .iter()
            .any(|&(at, port)| at > stopped && port == r2),
        "the other replica served meanwhile"
    );
    stop_cluster(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_takes_writes_without_config_change() {
    let c = Cluster::up("rt3", 56, 2, true).await;
    let db = c.scratch_db("promote").await;
    let (p, r1, r2) = (c.primary.port, c.r(1).port, c.r(2).port);
    const DELAY_MS: u64 = 300;
    let servers = Cluster::servers_line(&[(p, "auto", 1), (r1, "auto", 1), (r2, "auto", 1)]);
    let r = Router::start_with(
        &fast_health(DELAY_MS, 1),
        &router_config(
            &db,
            &servers,
            "load_balancing_mode = \"round_robin\"\nprimary_reads_enabled = false",
            "",
        ),
    )
    .await;
    let view = AppView::new(r.app.clone());
    let mut a = r.connect(&db).await;
    exec(&mut a, "CREATE TABLE t (id int)").await;
    let ins = |id: i32| format!("INSERT INTO t VALUES ({id}) RETURNING inet_server_port()::text");
    assert_eq!(served_by(&mut a, &ins(1)).await.unwrap(), p);

    // The primary stops: writes fail fast with 08006, reads go on.
    pg_sh(&["stop", &c.primary.name]).await;
    let mut last = None;
    for _ in 0..20 {
        let t = Instant::now();
        let e = scalar(&mut a, &ins(2)).await.expect_err("no primary");
        assert_eq!(code(&e).as_deref(), Some("08006"), "{e}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "fails fast: {:?}",
            t.elapsed()
        );
        last = Some(message_and_hint(&e));
        if last
            .as_deref()
            .is_some_and(|m| m.contains("no primary available"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = last.unwrap();
    assert!(
        last.contains("no primary available") && last.contains("reads still go to replicas"),
        "a clear message: {last}"
    );
    for n in &c.replicas {
        c.wait_for(n, &db, "SELECT 1 FROM t WHERE id = 1").await;
    }
    for _ in 0..4 {
        assert_eq!(one(&mut a, "SELECT count(*)::text FROM t").await, "1");
    }
    // A router started now, primary down, still lets clients in and serves reads.
    let late = Router::start_with(
        &fast_health(DELAY_MS, 1),
        &router_config(&db, &servers, "primary_reads_enabled = false", ""),
    )
    .await;
    let mut l = late.connect(&db).await;
    assert_eq!(one(&mut l, "SELECT count(*)::text FROM t").await, "1");
    assert!(
        !AppView::new(late.app.clone()).healthy(),
        "/health: no primary"
    );
    drop(l);
    drop(late);

    // Promote r1; no config change.
    let asked = Instant::now();
    pg_sh(&["promote", &c.r(1).name]).await;
    let promoted = Instant::now();
    let port = loop {
        match served_by(&mut a, &ins(3)).await {
            Ok(port) => break port,
            Err(e) => {
                assert_eq!(code(&e).as_deref(), Some("08006"), "{e}");
                assert!(
                    promoted.elapsed() < Duration::from_secs(10),
                    "no write after promotion: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let took = promoted.elapsed();
    println!(
        "promote -> first successful write: {} ms after `pg_ctl promote` was run, {} ms after it returned (health checks every {DELAY_MS} ms)",
        asked.elapsed().as_millis(),
        took.as_millis()
    );
    assert_eq!(port, r1);
    assert!(
        took < Duration::from_millis(2 * DELAY_MS + 1000),
        "within two health-check periods (+ the probe): {took:?}"
    );

    // The other replica follows the new primary.
    pg_sh(&["repoint", &c.r(2).name, &c.r(1).name]).await;
    exec(&mut a, "INSERT INTO t VALUES (42)").await;
    c.wait_for(c.r(2), &db, "SELECT 1 FROM t WHERE id = 42")
        .await;
    eventually(5, "reads on the remaining replica", || {
        let view = AppView::new(r.app.clone());
        view.pool_nodes()
            .iter()
            .any(|n| n.port == r2 && n.load_balance_node)
    })
    .await;
    let mut b = r.connect(&db).await;
    assert_eq!(served_by(&mut b, PORT_Q).await.unwrap(), r2);

    // The old primary comes back as it was (not rewound): a primary on the old
    // timeline. It gets no writes.
    pg_sh(&["start", &c.primary.name]).await;
    eventually(5, "the old primary answers checks", || {
        view.pool_nodes()
            .iter()
            .any(|n| n.port == p && n.status == NodeStatus::Up && n.role == Role::Primary)
    })
    .await;
    for i in 0..10 {
        assert_eq!(served_by(&mut a, &ins(100 + i)).await.unwrap(), r1);
    }
    assert_eq!(view.shards()[0].primary, Some(format!("127.0.0.1:{r1}")));
    stop_cluster(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_past_max_replica_lag_gets_no_reads_until_it_catches_up() {
    let c = Cluster::up("rt4", 59, 2, false).await;
    let db = c.scratch_db("lag").await;
    let (p, r1, r2) = (c.primary.port, c.r(1).port, c.r(2).port);
    let servers =
        Cluster::servers_line(&[(p, "primary", 1), (r1, "replica", 1), (r2, "replica", 1)]);
    let r = Router::start_with(
        &fast_health(200, 1),
        &router_config(
            &db,
            &servers,
            "load_balancing_mode = \"round_robin\"\nprimary_reads_enabled = false",
            "max_replica_lag = 1000",
        ),
    )
    .await;
    let view = AppView::new(r.app.clone());
    let node = |port: u16| {
        AppView::new(r.app.clone())
            .pool_nodes()
            .into_iter()
            .find(|n| n.port == port)
            .unwrap()
    };
    let mut a = r.connect(&db).await;
    exec(
        &mut a,
        "CREATE TABLE t (id serial, at timestamptz DEFAULT now())",
    )
    .await;
    c.wait_for(c.r(1), &db, "SELECT 1 FROM pg_class WHERE relname = 't'")
        .await;
    c.wait_for(c.r(2), &db, "SELECT 1 FROM pg_class WHERE relname = 't'")
        .await;
    // Idle and caught up: zero lag, reads on both.
    eventually(5, "zero lag while idle", || {
        node(r1).replication_delay == Some(Duration::ZERO)
            && node(r2).replication_delay == Some(Duration::ZERO)
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, writes) = (stop.clone(), writes.clone());
        let opts = r.opts(APP_USER, APP_PASSWORD, &db);
        tokio::spawn(async move {
            let mut w = sqlx::ConnectOptions::connect(&opts).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                exec(&mut w, "INSERT INTO t DEFAULT VALUES").await;
                writes.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut su1 = c.su(c.r(1), "postgres").await;
    sqlx::raw_sql("SELECT pg_wal_replay_pause()")
        .execute(&mut su1)
        .await
        .unwrap();
    let paused = Instant::now();
    eventually(8, "the paused replica drops out of reads", || {
        !node(r1).load_balance_node
    })
    .await;
    let out_after = paused.elapsed();
    let n1 = node(r1);
    assert!(
        n1.replication_delay
            .is_some_and(|d| d > Duration::from_secs(1)),
        "{n1:?}"
    );
    assert!(node(r2)
        .replication_delay
        .is_some_and(|d| d <= Duration::from_secs(1)));
    for _ in 0..10 {
        assert_eq!(served_by(&mut a, PORT_Q).await.unwrap(), r2);
    }
    println!(
        "paused replica out of reads {} ms after the pause",
        out_after.as_millis()
    );
    // Not before max_replica_lag (less one health-check period of measurement slack).
    assert!(
        out_after >= Duration::from_millis(750),
        "not before max_replica_lag: {out_after:?}"
    );

    sqlx::raw_sql("SELECT pg_wal_replay_resume()")
        .execute(&mut su1)
        .await
        .unwrap();
    eventually(8, "the replica is back in reads after catching up", || {
        node(r1).load_balance_node
    })
    .await;
    let mut seen_r1 = false;
    for _ in 0..4 {
        seen_r1 |= served_by(&mut a, PORT_Q).await.unwrap() == r1;
    }
    assert!(seen_r1, "reads reach the resumed replica");
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(writes.load(Ordering::Relaxed) > 10);
    assert!(view.healthy());
    stop_cluster(&c).await;
}
