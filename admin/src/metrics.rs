//! Prometheus metrics (SPEC §6), in one typed struct with its own `Registry` (house
//! rule 11): no globals, so tests and several routers in one process don't collide.
//!
//! Two kinds of series. *Events* (queries, errors, bans, 2PC outcomes) are counted by
//! the router as they happen, through the methods here. *State* (connections, pool
//! sizes, waiting clients, bans in force, server health, replica lag, in-doubt
//! transactions) is read from the
//! [`AdminView`] at scrape time by [`Metrics::refresh`], which resets those gauges first:
//! a pool whose clients left shows 0, a pool that was removed disappears.
//! Label values are pool, shard, role, user, server address, SQLSTATE class: all
//! bounded by the configuration, never SQL text.

use crate::view::{AdminView, NodeStatus, Role};
use crate::AdminError;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// Prefix of every metric name: PgDog's names, so existing dashboards keep working.
pub const PREFIX: &str = "orochi_pgdog";

/// Latency buckets from 50 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

const POOL_LABELS: [&str; 4] = ["pool", "shard", "role", "user"];

pub struct Metrics {
    registry: Registry,
    connections_active: IntGaugeVec,
    connections_idle: IntGaugeVec,
    pool_size: IntGaugeVec,
    pool_available: IntGaugeVec,
    client_waiting: IntGaugeVec,
    clients_connected: IntGaugeVec,
    server_banned: IntGaugeVec,
    server_up: IntGaugeVec,
    replica_lag: GaugeVec,
    twopc_in_doubt: IntGaugeVec,
    queries_total: IntCounterVec,
    query_duration: HistogramVec,
    wait_duration: HistogramVec,
    errors_total: IntCounterVec,
    server_bans_total: IntCounterVec,
    cross_shard_queries_total: IntCounterVec,
    twopc_commits_total: IntCounterVec,
    twopc_rollbacks_total: IntCounterVec,
    twopc_recovered_total: IntCounterVec,
    logins_refused_total: IntCounterVec,
    gateway_logins_total: IntCounterVec,
    twopc_sweeper_lock_unavailable_total: IntCounterVec,
    otel_spans_dropped_total: IntCounter,
}

/// Why a client login was refused (the `reason` label of `logins_refused_total`).
pub const LOGIN_REFUSALS: [&str; 6] = [
    "auth_failed",
    "rate_limited",
    "max_client_conn",
    "max_db_client_connections",
    "max_user_client_connections",
    "login_timeout",
];

/// How a JWT gateway login ended (the `outcome` label of `gateway_logins_total`);
/// the router's `gateway::verify::Outcome` labels, in its order.
pub const GATEWAY_LOGIN_OUTCOMES: [&str; 12] = [
    "ok",
    "expired",
    "not_yet_valid",
    "bad_signature",
    "bad_algorithm",
    "unknown_kid",
    "bad_claims",
    "malformed",
    "wrong_user",
    "too_large",
    "no_tls",
    "tenant_limit",
];

/// Counter and histograms of one (pool, shard, role, user), resolved once so the hot
/// path does not hash label values per query (or per queued checkout: at 100 clients
/// over a pool of 20 most checkouts queue).
#[derive(Clone)]
pub struct QueryMetrics {
    queries: IntCounter,
    duration: Histogram,
    /// `wait_duration_seconds` of (pool, user).
    wait: Histogram,
}

impl QueryMetrics {
    pub fn observe(&self, elapsed: Duration) {
        self.queries.inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// A client got a server of this pool after waiting `waited`.
    pub fn waited(&self, waited: Duration) {
        self.wait.observe(waited.as_secs_f64());
    }
}

fn role_label(role: Option<Role>) -> &'static str {
    role.map(Role::as_str).unwrap_or("any")
}

impl Metrics {
    pub fn new() -> Result<Self, AdminError> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, AdminError> {
            let g = IntGaugeVec::new(Opts::new(format!("{PREFIX}_{name}"), help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, AdminError> {
                let c = IntCounterVec::new(Opts::new(format!("{PREFIX}_{name}"), help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let histogram =
            |name: &str, help: &str, labels: &[&str]| -> Result<HistogramVec, AdminError> {
                let h = HistogramVec::new(
                    HistogramOpts::new(format!("{PREFIX}_{name}"), help)
                        .buckets(LATENCY_BUCKETS.to_vec()),
                    labels,
                )?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let server = ["pool", "shard", "role", "server"];
        Ok(Metrics {
            connections_active: gauge(
                "connections_active",
                "Server connections linked to a client.",
                &POOL_LABELS,
            )?,
            connections_idle: gauge(
                "connections_idle",
                "Server connections idle in the pool.",
                &POOL_LABELS,
            )?,
            pool_size: gauge(
                "pool_size",
                "Configured maximum server connections of the pool.",
                &POOL_LABELS,
            )?,
            pool_available: gauge(
                "pool_available",
                "Checkouts possible now without waiting.",
                &POOL_LABELS,
            )?,
            client_waiting: gauge(
                "client_waiting",
                "Clients waiting for a server connection.",
                &POOL_LABELS,
            )?,
            clients_connected: gauge(
                "clients_connected",
                "Client connections.",
                &["pool", "user"],
            )?,
            server_banned: gauge(
                "server_banned",
                "1 while the server is banned from rotation.",
                &server,
            )?,
            server_up: gauge(
                "server_up",
                "1 while the server's latest health check (or connection attempt) passed.",
                &server,
            )?,
            replica_lag: {
                let g = GaugeVec::new(
                    Opts::new(
                        format!("{PREFIX}_replica_lag_seconds"),
                        "How far the replica is behind its primary (absent when unknown).",
                    ),
                    &server,
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            twopc_in_doubt: gauge(
                "2pc_in_doubt",
                "Prepared two-phase transactions waiting for recovery.",
                &["pool"],
            )?,
            queries_total: counter("queries_total", "Queries run.", &POOL_LABELS)?,
            query_duration: histogram(
                "query_duration_seconds",
                "Query latency as the client sees it.",
                &POOL_LABELS,
            )?,
            wait_duration: histogram(
                "wait_duration_seconds",
                "Time clients waited for a server connection.",
                &["pool", "user"],
            )?,
            errors_total: counter(
                "errors_total",
                "Errors sent to clients, by SQLSTATE class.",
                &["pool", "class"],
            )?,
            server_bans_total: counter("server_bans_total", "Times a server was banned.", &server)?,
            cross_shard_queries_total: counter(
                "cross_shard_queries_total",
                "Statements sent to more than one shard.",
                &["pool"],
            )?,
            twopc_commits_total: counter(
                "2pc_commits_total",
                "Two-phase transactions committed.",
                &["pool"],
            )?,
            twopc_rollbacks_total: counter(
                "2pc_rollbacks_total",
                "Two-phase transactions rolled back.",
                &["pool"],
            )?,
            twopc_recovered_total: counter(
                "2pc_recovered_total",
                "Prepared transactions resolved by the recovery sweeper.",
                &["pool", "outcome"],
            )?,
            logins_refused_total: {
                let c = counter(
                    "logins_refused_total",
                    "Client logins refused, by reason (failed authentication, rate limit, connection limits, login timeout).",
                    &["reason"],
                )?;
                for r in LOGIN_REFUSALS {
                    c.with_label_values(&[r]);
                }
                c
            },
            gateway_logins_total: {
                let c = counter(
                    "gateway_logins_total",
                    "JWT gateway logins by outcome (ok, or why the token or login was refused).",
                    &["outcome"],
                )?;
                for o in GATEWAY_LOGIN_OUTCOMES {
                    c.with_label_values(&[o]);
                }
                c
            },
            twopc_sweeper_lock_unavailable_total: counter(
                "2pc_sweeper_lock_unavailable_total",
                "Recovery sweeps skipped because another session had held the sweeper's advisory lock for 3 or more sweeps in a row.",
                &["pool"],
            )?,
            otel_spans_dropped_total: {
                let c = IntCounter::new(
                    format!("{PREFIX}_otel_spans_dropped_total"),
                    "Trace spans dropped because the OTLP export queue was full (the collector is slow or down); clients never wait for export.",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            registry,
        })
    }

    /// A finished span found the OTLP export queue full and was dropped.
    pub fn otel_span_dropped(&self) {
        self.otel_spans_dropped_total.inc();
    }

    /// A client login was refused; `reason` is one of [`LOGIN_REFUSALS`].
    pub fn login_refused(&self, reason: &str) {
        self.logins_refused_total.with_label_values(&[reason]).inc();
    }

    /// A JWT gateway login ended; `outcome` is one of [`GATEWAY_LOGIN_OUTCOMES`].
    pub fn gateway_login(&self, outcome: &str) {
        self.gateway_logins_total
            .with_label_values(&[outcome])
            .inc();
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The per-query handle of one pool; keep it with the pool and call `observe`.
    pub fn query_metrics(
        &self,
        pool: &str,
        shard: usize,
        role: Option<Role>,
        user: &str,
    ) -> QueryMetrics {
        let shard = shard.to_string();
        let labels = [pool, shard.as_str(), role_label(role), user];
        QueryMetrics {
            queries: self.queries_total.with_label_values(&labels),
            duration: self.query_duration.with_label_values(&labels),
            wait: self.wait_duration.with_label_values(&[pool, user]),
        }
    }

    /// An ErrorResponse went to a client of `pool`.
    pub fn error(&self, pool: &str, sqlstate: &str) {
        let class = sqlstate.get(..2).unwrap_or("??");
        self.errors_total.with_label_values(&[pool, class]).inc();
    }

    /// `server` (`host:port`) was taken out of rotation.
    pub fn server_banned(&self, pool: &str, shard: usize, role: Role, server: &str) {
        let shard = shard.to_string();
        self.server_bans_total
            .with_label_values(&[pool, &shard, role.as_str(), server])
            .inc();
    }

    pub fn cross_shard_query(&self, pool: &str) {
        self.cross_shard_queries_total
            .with_label_values(&[pool])
            .inc();
    }

    pub fn twopc_committed(&self, pool: &str) {
        self.twopc_commits_total.with_label_values(&[pool]).inc();
    }

    pub fn twopc_rolled_back(&self, pool: &str) {
        self.twopc_rollbacks_total.with_label_values(&[pool]).inc();
    }

    /// The sweeper resolved a prepared transaction; `committed` tells which way.
    pub fn twopc_recovered(&self, pool: &str, committed: bool) {
        let outcome = if committed { "commit" } else { "rollback" };
        self.twopc_recovered_total
            .with_label_values(&[pool, outcome])
            .inc();
    }

    /// The sweeper found its advisory lock taken again, for the 3rd sweep in a row or more.
    pub fn twopc_sweeper_lock_unavailable(&self, pool: &str) {
        self.twopc_sweeper_lock_unavailable_total
            .with_label_values(&[pool])
            .inc();
    }

    /// Creates every per-pool counter and histogram series at 0 (a no-op for series that
    /// exist), so dashboards and alerts see 0 rather than "no data" before first use.
    fn touch_counters(&self, view: &dyn AdminView) {
        for p in view.pools() {
            let shard = p.shard.to_string();
            let labels = [
                p.database.as_str(),
                shard.as_str(),
                role_label(p.role),
                p.user.as_str(),
            ];
            self.queries_total.with_label_values(&labels);
            self.query_duration.with_label_values(&labels);
            self.wait_duration
                .with_label_values(&[p.database.as_str(), p.user.as_str()]);
        }
        for n in view.pool_nodes() {
            let shard = n.shard.to_string();
            let server = format!("{}:{}", n.host, n.port);
            self.server_bans_total.with_label_values(&[
                n.database.as_str(),
                &shard,
                n.role.as_str(),
                &server,
            ]);
        }
        for db in view.databases().into_iter().map(|d| d.name) {
            let pool = [db.as_str()];
            // The router's own error classes: 08 (shard unreachable), 53 (pool exhausted).
            for class in ["08", "53"] {
                self.errors_total.with_label_values(&[db.as_str(), class]);
            }
            self.cross_shard_queries_total.with_label_values(&pool);
            self.twopc_commits_total.with_label_values(&pool);
            self.twopc_rollbacks_total.with_label_values(&pool);
            self.twopc_sweeper_lock_unavailable_total
                .with_label_values(&pool);
            for outcome in ["commit", "rollback"] {
                self.twopc_recovered_total
                    .with_label_values(&[db.as_str(), outcome]);
            }
        }
    }

    /// Sets the state gauges from a fresh snapshot of the router.
    pub fn refresh(&self, view: &dyn AdminView) {
        for g in [
            &self.connections_active,
            &self.connections_idle,
            &self.pool_size,
            &self.pool_available,
            &self.client_waiting,
            &self.clients_connected,
            &self.server_banned,
            &self.server_up,
            &self.twopc_in_doubt,
        ] {
            g.reset();
        }
        self.replica_lag.reset();
        self.touch_counters(view);
        for p in view.pools() {
            let shard = p.shard.to_string();
            let labels = [
                p.database.as_str(),
                shard.as_str(),
                role_label(p.role),
                p.user.as_str(),
            ];
            self.connections_active
                .with_label_values(&labels)
                .add(i64::from(p.sv_active));
            self.connections_idle
                .with_label_values(&labels)
                .add(i64::from(p.sv_idle));
            self.pool_size
                .with_label_values(&labels)
                .add(i64::from(p.pool_size));
            self.pool_available
                .with_label_values(&labels)
                .add(i64::from(p.available()));
            self.client_waiting
                .with_label_values(&labels)
                .add(i64::from(p.cl_waiting));
        }
        let mut clients: BTreeMap<(String, String), i64> = BTreeMap::new();
        for c in view.clients() {
            *clients.entry((c.database, c.user)).or_default() += 1;
        }
        for ((pool, user), n) in clients {
            self.clients_connected
                .with_label_values(&[&pool, &user])
                .set(n);
        }
        for n in view.pool_nodes() {
            let shard = n.shard.to_string();
            let server = format!("{}:{}", n.host, n.port);
            let labels = [n.database.as_str(), &shard, n.role.as_str(), &server];
            self.server_banned
                .with_label_values(&labels)
                .set(i64::from(n.status == NodeStatus::Banned));
            self.server_up
                .with_label_values(&labels)
                .set(i64::from(n.status == NodeStatus::Up));
            if let Some(lag) = n.replication_delay {
                self.replica_lag
                    .with_label_values(&labels)
                    .set(lag.as_secs_f64());
            }
        }
        for db in view.databases().into_iter().map(|d| d.name) {
            // Every pool gets a series, so "no transaction in doubt" reads 0, not absent.
            self.twopc_in_doubt.with_label_values(&[&db]).set(0);
        }
        for t in view.transactions().into_iter().filter(|t| t.in_doubt) {
            self.twopc_in_doubt.with_label_values(&[&t.database]).inc();
        }
    }

    /// Refreshes from `view` and encodes everything in the text exposition format.
    pub fn scrape(&self, view: &dyn AdminView) -> String {
        self.refresh(view);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
