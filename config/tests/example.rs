//! The documented example in infrastructure/ loads and means what its comments say.

mod common;

use orochi_config::*;
use std::path::PathBuf;
use std::time::Duration;

#[test]
fn documented_example_loads() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infrastructure/orochi.example.toml");
    let loaded =
        Config::load_with_env(&path, None, &common::no_env).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(
        (c.general.port, c.general.admin_port, c.general.metrics_port),
        (5432, 6432, 9090)
    );
    assert_eq!(c.general.tls, None);
    let app = &c.pools["app"];
    assert_eq!(app.load_balancing_mode, LoadBalancingMode::LeastOutstanding);
    assert_eq!(app.users.len(), 2);
    assert_eq!(app.users[0].min_pool_size, 2);
    assert!(matches!(app.users[1].password, Secret::Scram(_)));
    assert_eq!(app.shards[0].servers[1].weight, 2);
    assert!(app.shards[1].servers.iter().all(|s| s.role == Role::Auto));
    let web = &c.pools["web"];
    assert_eq!(web.pool_mode, PoolMode::Session);
    assert!(matches!(web.users[0].password, Secret::Md5(_)));
    assert_eq!(web.shards.len(), 1);
    let names: Vec<(&str, &str)> = c
        .sharding
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.column.as_str()))
        .collect();
    assert_eq!(names, vec![("orders", "customer_id"), ("accounts", "aid")]);
    assert_eq!(c.sharding.two_phase_commit.timeout, Duration::from_secs(30));
    assert!(!c.sharding.two_phase_commit.best_effort);
}
