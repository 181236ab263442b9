//! The PgCat configurations from the seeds and a full PgCat-style config load and mean
//! what they mean in PgCat.

mod common;

use common::load_fixture;
use orochi_config::*;
use std::time::Duration;

fn server(host: &str, port: u16, role: Role) -> Server {
    Server {
        host: host.into(),
        port,
        role,
        weight: 1,
    }
}

#[test]
fn seed_000_role_shards_become_one_primary_replica_shard() {
    let loaded = load_fixture("seed000_consul_template.toml");
    let c = &loaded.config;
    assert_eq!(c.general.host, "0.0.0.0");
    assert_eq!(c.general.port, 5432);
    let pool = &c.pools["proposalsapp"];
    // pool_mode and the parser switches were written in [general]: they apply to the pool.
    assert_eq!(pool.pool_mode, PoolMode::Transaction);
    assert!(pool.query_parser_enabled);
    assert!(pool.query_parser_read_write_splitting);
    // Two "role shards" on the same database are one cluster: primary + replica.
    assert_eq!(pool.shards.len(), 1);
    assert_eq!(pool.shards[0].database, "proposalsapp");
    assert_eq!(
        pool.shards[0].servers,
        vec![
            server("10.1.1.10", 5432, Role::Primary),
            server("10.1.1.20", 5432, Role::Replica)
        ]
    );
    assert_eq!(pool.users.len(), 1);
    assert_eq!(pool.users[0].username, "proposalsapp");
    assert_eq!(pool.users[0].password, Secret::Plain("password".into()));
    assert_eq!(pool.users[0].pool_size, 20);
    // The reinterpretation is announced, with the position of the first shard.
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let w = loaded.warnings[0].to_string();
    assert!(w.contains("seed000_consul_template.toml:15:1"), "{w}");
    assert!(w.contains("treated as one shard"), "{w}");
}

#[test]
fn seed_001_three_single_primary_shards_and_failover_keys() {
    let loaded = load_fixture("seed001_dns_resiliency.toml");
    let c = &loaded.config;
    assert_eq!(c.general.port, 6432);
    // PgCat serves admin on the client port; ours moves off the collision.
    assert_eq!(c.general.admin_port, 6433);
    assert_eq!(c.general.metrics_port, 9930);
    assert_eq!(c.general.healthcheck_delay, Duration::from_secs(30));
    assert_eq!(c.general.connect_timeout, Duration::from_millis(5000));
    assert_eq!(c.general.idle_timeout, Duration::from_millis(30000));
    let pool = &c.pools["primary"];
    assert_eq!(pool.pool_mode, PoolMode::Transaction);
    assert_eq!(pool.load_balancing_mode, LoadBalancingMode::Random);
    let hosts: Vec<(&str, &str)> = pool
        .shards
        .iter()
        .map(|s| (s.database.as_str(), s.servers[0].host.as_str()))
        .collect();
    assert_eq!(
        hosts,
        vec![
            ("your-database-name", "your-postgres-primary.example.com"),
            ("your-database-name", "your-postgres-secondary.example.com"),
            ("your-database-name", "your-postgres-tertiary.example.com"),
        ]
    );
    assert!(pool
        .shards
        .iter()
        .all(|s| s.servers.len() == 1 && s.servers[0].role == Role::Primary));
    let u = &pool.users[0];
    assert_eq!((u.pool_size, u.min_pool_size), (25, 5));
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.message.contains("admin_port 6432 is taken")));
}

#[test]
fn seed_004_settings_after_the_shard_apply_to_the_pool() {
    let loaded = load_fixture("seed004_confd_loc.toml");
    let pool = &loaded.config.pools["proposalsapp"];
    assert_eq!(
        pool.load_balancing_mode,
        LoadBalancingMode::LeastOutstanding
    );
    assert!(pool.query_parser_enabled);
    assert!(pool.query_parser_read_write_splitting);
    assert!(pool.primary_reads_enabled);
    assert_eq!(pool.shards.len(), 1);
    // Order is kept: the local replica first.
    assert_eq!(
        pool.shards[0].servers,
        vec![
            server("100.84.130.3", 5432, Role::Replica),
            server("100.66.57.51", 5432, Role::Primary),
            server("100.125.126.113", 5432, Role::Replica),
        ]
    );
    // No database key: the pool name is the database.
    assert_eq!(pool.shards[0].database, "proposalsapp");
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0]
        .to_string()
        .contains("seed004_confd_loc.toml:11:1: warning: [pools.proposalsapp.shards.0]: query_parser_enabled, query_parser_read_write_splitting, primary_reads_enabled, load_balancing_mode are pool settings"));
}

#[test]
fn full_pgcat_config_keeps_pgcat_meaning() {
    let loaded = load_fixture("pgcat_full.toml");
    let c = &loaded.config;
    let g = &c.general;
    assert_eq!(g.port, 6432);
    assert_eq!(
        g.metrics_port, 9930,
        "prometheus_exporter_port is metrics_port"
    );
    assert_eq!(g.connect_timeout, Duration::from_millis(5000));
    assert_eq!(g.idle_timeout, Duration::from_millis(30000));
    assert_eq!(g.server_lifetime, Duration::from_millis(86_400_000));
    assert_eq!(g.healthcheck_timeout, Duration::from_millis(1000));
    assert_eq!(g.ban_time, Duration::from_secs(60));
    assert_eq!(g.worker_threads, Some(5));
    assert_eq!(
        g.max_prepared_statements, 500,
        "prepared_statements_cache_size is max_prepared_statements (the pool's is accepted)"
    );
    assert_eq!(
        (g.admin_username.as_str(), g.admin_password.as_str()),
        ("admin_user", "admin_pass")
    );
    let tls = g
        .tls
        .as_ref()
        .expect("tls_certificate + tls_private_key enable TLS");
    assert_eq!(tls.cert_path, std::path::PathBuf::from("certs/server.cert"));
    assert_eq!(tls.key_path, std::path::PathBuf::from("certs/server.key"));

    let sharded = &c.pools["sharded_db"];
    assert_eq!(sharded.pool_mode, PoolMode::Transaction);
    assert_eq!(sharded.default_role, DefaultRole::Any);
    assert_eq!(sharded.sharding_function, ShardingFunction::PostgresHash);
    assert_eq!(sharded.connect_timeout, Duration::from_millis(3000));
    assert_eq!(sharded.idle_timeout, Duration::from_millis(40000));
    assert_eq!(sharded.shards.len(), 3);
    for (i, s) in sharded.shards.iter().enumerate() {
        assert_eq!(s.database, format!("shard{i}"));
        assert_eq!(
            s.servers,
            vec![
                server("127.0.0.1", 5432, Role::Primary),
                server("localhost", 5432, Role::Replica)
            ]
        );
    }
    let other = &sharded.users[1];
    assert_eq!(other.username, "other_user");
    assert_eq!(other.pool_size, 21);
    assert_eq!(other.statement_timeout, Some(Duration::from_millis(15000)));
    assert_eq!(other.server_username, "other_server_user");
    assert_eq!(other.server_password.as_deref(), Some("other_server_pass"));
    assert_eq!(other.pool_mode, Some(PoolMode::Session));
    assert_eq!(sharded.users[0].statement_timeout, None, "0 disables it");
    // automatic_sharding_key = "data.id" is a bigint sharded table of this pool.
    assert_eq!(
        c.sharding.tables,
        vec![ShardedTable {
            name: "data".into(),
            column: "id".into(),
            data_type: KeyType::BigInt,
            pool: Some("sharded_db".into()),
        }]
    );

    let simple = &c.pools["simple_db"];
    assert_eq!(simple.pool_mode, PoolMode::Session);
    assert_eq!(simple.default_role, DefaultRole::Primary);
    assert_eq!(simple.shards.len(), 1);
    assert_eq!(simple.shards[0].database, "some_db");
    assert_eq!(simple.users[0].pool_size, 5);
    // Pool timeouts not overridden come from [general].
    assert_eq!(simple.connect_timeout, Duration::from_millis(5000));
}

#[test]
fn spec_example_with_users_file() {
    let loaded = Config::load_with_env(
        &common::fixture("spec_app.toml"),
        Some(&common::fixture("users.toml")),
        &common::no_env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;
    assert_eq!(c.sources.len(), 2);
    assert_eq!(
        (c.general.port, c.general.admin_port, c.general.metrics_port),
        (5432, 6432, 9090)
    );
    let app = &c.pools["app"];
    assert_eq!(app.shards.len(), 2);
    assert_eq!(app.shards[1].database, "app_s1");
    let names: Vec<&str> = app.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "reporting"]);
    let alice = &app.users[0];
    assert_eq!(
        alice.password,
        Secret::Md5("md5a1b2c3d4e5f60718293a4b5c6d7e8f90".into())
    );
    assert_eq!(alice.pool_size, 15);
    assert_eq!(alice.server_password, None, "no clear text to log in with");
    let bob = &app.users[1];
    assert!(matches!(&bob.password, Secret::Scram(v) if v.starts_with("SCRAM-SHA-256$4096:")));
    assert_eq!(bob.pool_size, 12, "the pool's max_pool_size is the default");
    assert_eq!(bob.min_pool_size, 3);
    assert_eq!(bob.server_username, "bob_server");
    assert_eq!(bob.server_password.as_deref(), Some("bob-on-the-server"));
    assert_eq!(bob.pool_mode, Some(PoolMode::Session));
    let reporting = &app.users[2];
    assert_eq!(reporting.password, Secret::None, "no password: trust");
    assert_eq!(reporting.statement_timeout, Some(Duration::from_secs(30)));
    assert_eq!(c.sharding.tables.len(), 3);
    assert!(c.sharding.tables.contains(&ShardedTable {
        name: "public.events".into(),
        column: "tenant".into(),
        data_type: KeyType::Uuid,
        pool: Some("app".into()),
    }));
    let tpc = &c.sharding.two_phase_commit;
    assert!(tpc.enabled && !tpc.best_effort);
    assert_eq!(
        (tpc.timeout, tpc.cleanup_interval),
        (Duration::from_secs(30), Duration::from_secs(60))
    );
    assert_eq!(c.query_routing.max_replica_lag, Duration::from_millis(1000));
}
