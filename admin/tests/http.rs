//! The metrics endpoint over TCP: exposition text parsed, values following a scripted
//! workload, gauges back to zero, probes.

mod common;

use common::fake::{client, node, pool, FakeView};
use orochi_admin::{serve_http, AdminView, ClientState, Metrics, NodeStatus, Role, TransactionRow};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

async fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (code, body)
}

/// `# TYPE` lines and samples (`name{labels}` → value) of an exposition text.
fn parse(text: &str) -> (HashMap<String, String>, HashMap<String, f64>) {
    let mut types = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            types.insert(name.to_string(), ty.to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            samples.insert(series.to_string(), value.parse().unwrap());
        }
    }
    (types, samples)
}

const POOL: &str = "pool=\"app\",role=\"primary\",shard=\"0\",user=\"app\"";

#[tokio::test]
async fn metrics_follow_workload_and_probes() {
    let view = FakeView::new();
    *view.pools.lock().unwrap() = vec![pool("app", "app", 0, 2, 3, 4)];
    *view.clients.lock().unwrap() = vec![
        client(1, "app", "app", ClientState::Active),
        client(2, "app", "app", ClientState::Waiting),
    ];
    *view.nodes.lock().unwrap() = vec![node("app", 0, 5432, NodeStatus::Banned)];
    *view.transactions.lock().unwrap() = vec![TransactionRow {
        gid: "g".into(),
        database: "app".into(),
        phase: "in_doubt".into(),
        age: Duration::from_secs(40),
        coordinator: 0,
        shards: vec![0, 1],
        in_doubt: true,
    }];
    let metrics = Arc::new(Metrics::new().unwrap());
    let q = metrics.query_metrics("app", 0, Some(Role::Primary), "app");
    for ms in [1, 1, 30] {
        q.observe(Duration::from_millis(ms));
    }
    q.waited(Duration::from_millis(5));
    metrics.error("app", "42P01");
    metrics.error("app", "42601");
    metrics.server_banned("app", 0, Role::Primary, "10.0.0.1:5432");
    metrics.cross_shard_query("app");
    metrics.twopc_committed("app");
    metrics.twopc_committed("app");
    metrics.twopc_rolled_back("app");
    metrics.twopc_recovered("app", true);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (draining, stop) = (CancellationToken::new(), CancellationToken::new());
    let dyn_view: Arc<dyn AdminView> = view.clone();
    let server = tokio::spawn(serve_http(
        listener,
        metrics.clone(),
        dyn_view,
        draining.clone(),
        stop.clone(),
    ));

    let (code, body) = get(port, "/metrics").await;
    assert_eq!(code, 200);
    let (types, s) = parse(&body);
    for (name, ty) in [
        ("connections_active", "gauge"),
        ("connections_idle", "gauge"),
        ("pool_size", "gauge"),
        ("pool_available", "gauge"),
        ("client_waiting", "gauge"),
        ("clients_connected", "gauge"),
        ("server_banned", "gauge"),
        ("server_up", "gauge"),
        ("2pc_in_doubt", "gauge"),
        ("queries_total", "counter"),
        ("query_duration_seconds", "histogram"),
        ("wait_duration_seconds", "histogram"),
        ("errors_total", "counter"),
        ("server_bans_total", "counter"),
        ("cross_shard_queries_total", "counter"),
        ("2pc_commits_total", "counter"),
        ("2pc_rollbacks_total", "counter"),
        ("2pc_recovered_total", "counter"),
    ] {
        assert_eq!(
            types
                .get(&format!("orochi_pgdog_{name}"))
                .map(String::as_str),
            Some(ty),
            "{name}"
        );
    }
    let v = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no sample {k}\n{body}"));
    assert_eq!(
        v(&format!("orochi_pgdog_connections_active{{{POOL}}}")),
        3.0
    );
    assert_eq!(v(&format!("orochi_pgdog_connections_idle{{{POOL}}}")), 4.0);
    assert_eq!(v(&format!("orochi_pgdog_pool_size{{{POOL}}}")), 10.0);
    assert_eq!(v(&format!("orochi_pgdog_pool_available{{{POOL}}}")), 7.0);
    assert_eq!(v(&format!("orochi_pgdog_client_waiting{{{POOL}}}")), 2.0);
    assert_eq!(
        v("orochi_pgdog_clients_connected{pool=\"app\",user=\"app\"}"),
        2.0
    );
    assert_eq!(v(&format!("orochi_pgdog_queries_total{{{POOL}}}")), 3.0);
    assert_eq!(
        v(&format!(
            "orochi_pgdog_query_duration_seconds_count{{{POOL}}}"
        )),
        3.0
    );
    assert_eq!(
        v(&format!(
            "orochi_pgdog_query_duration_seconds_bucket{{{POOL},le=\"0.00005\"}}"
        )),
        0.0
    );
    assert_eq!(
        v(&format!(
            "orochi_pgdog_query_duration_seconds_bucket{{{POOL},le=\"0.001\"}}"
        )),
        2.0
    );
    assert_eq!(
        v(&format!(
            "orochi_pgdog_query_duration_seconds_bucket{{{POOL},le=\"10\"}}"
        )),
        3.0
    );
    assert_eq!(
        v("orochi_pgdog_errors_total{class=\"42\",pool=\"app\"}"),
        2.0
    );
    assert_eq!(v("orochi_pgdog_server_banned{pool=\"app\",role=\"primary\",server=\"10.0.0.1:5432\",shard=\"0\"}"), 1.0);
    assert_eq!(v("orochi_pgdog_server_up{pool=\"app\",role=\"primary\",server=\"10.0.0.1:5432\",shard=\"0\"}"), 0.0);
    assert_eq!(v("orochi_pgdog_2pc_commits_total{pool=\"app\"}"), 2.0);
    assert_eq!(v("orochi_pgdog_2pc_rollbacks_total{pool=\"app\"}"), 1.0);
    assert_eq!(
        v("orochi_pgdog_2pc_recovered_total{outcome=\"commit\",pool=\"app\"}"),
        1.0
    );
    assert_eq!(v("orochi_pgdog_2pc_in_doubt{pool=\"app\"}"), 1.0);

    // Clients leave, the transaction is resolved: gauges fall back to zero, counters stay.
    {
        let mut pools = view.pools.lock().unwrap();
        pools[0].cl_waiting = 0;
        pools[0].sv_active = 0;
    }
    view.clients.lock().unwrap().clear();
    view.transactions.lock().unwrap().clear();
    q.observe(Duration::from_secs(20));
    let (_, body) = get(port, "/metrics").await;
    let (_, s) = parse(&body);
    let v = |k: &str| s.get(k).copied();
    assert_eq!(
        v(&format!("orochi_pgdog_connections_active{{{POOL}}}")),
        Some(0.0)
    );
    assert_eq!(
        v(&format!("orochi_pgdog_client_waiting{{{POOL}}}")),
        Some(0.0)
    );
    assert_eq!(
        v("orochi_pgdog_clients_connected{pool=\"app\",user=\"app\"}"),
        None
    );
    assert_eq!(v("orochi_pgdog_2pc_in_doubt{pool=\"app\"}"), Some(0.0));
    assert_eq!(
        v(&format!("orochi_pgdog_queries_total{{{POOL}}}")),
        Some(4.0)
    );
    assert_eq!(
        v(&format!(
            "orochi_pgdog_query_duration_seconds_bucket{{{POOL},le=\"10\"}}"
        )),
        Some(3.0)
    );
    assert_eq!(
        v(&format!(
            "orochi_pgdog_query_duration_seconds_bucket{{{POOL},le=\"+Inf\"}}"
        )),
        Some(4.0)
    );

    // Probes.
    assert_eq!(get(port, "/health").await.0, 200);
    assert_eq!(get(port, "/ready").await.0, 200);
    assert_eq!(get(port, "/nope").await.0, 404);
    view.unhealthy.store(true, Ordering::SeqCst);
    assert_eq!(get(port, "/health").await.0, 503);
    view.unhealthy.store(false, Ordering::SeqCst);
    draining.cancel();
    assert_eq!(get(port, "/health").await, (503, "shutting down\n".into()));
    assert_eq!(get(port, "/ready").await.0, 503);
    assert_eq!(get(port, "/metrics").await.0, 200);

    // Garbage and a slow-loris-sized head do not take the server down.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // More than the 8 KiB head limit, but all of it is read: no RST races the reply.
    s.write_all(&[b'x'; 9_000]).await.unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
}

/// Every metric the Grafana dashboard queries is one we export, with the right type.
#[test]
fn dashboard_uses_only_exported_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infrastructure/grafana/orochi-dashboard.json"
    );
    let dashboard = std::fs::read_to_string(path).unwrap();
    let metrics = Metrics::new().unwrap();
    // Create one series of each vector so every family is exported.
    let q = metrics.query_metrics("p", 0, None, "u");
    q.observe(Duration::ZERO);
    q.waited(Duration::ZERO);
    metrics.error("p", "08006");
    metrics.server_banned("p", 0, Role::Replica, "h:1");
    metrics.cross_shard_query("p");
    metrics.twopc_committed("p");
    metrics.twopc_rolled_back("p");
    metrics.twopc_recovered("p", false);
    let view = FakeView::new();
    *view.pools.lock().unwrap() = vec![pool("p", "u", 0, 0, 0, 0)];
    *view.clients.lock().unwrap() = vec![client(1, "p", "u", ClientState::Active)];
    *view.nodes.lock().unwrap() = vec![node("p", 0, 1, NodeStatus::Up)];
    let (types, _) = parse(&metrics.scrape(view.as_ref()));
    let mut used = 0;
    for (i, _) in dashboard.match_indices("orochi_pgdog_") {
        let name: String = dashboard[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let family = name.strip_suffix("_bucket").unwrap_or(&name);
        let ty = types
            .get(family)
            .unwrap_or_else(|| panic!("dashboard uses unknown {name}"));
        if name.ends_with("_bucket") {
            assert_eq!(ty, "histogram", "{name}");
        }
        used += 1;
    }
    assert!(used >= 17, "{used}");
}
