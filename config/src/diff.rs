//! What changed between two snapshots, for `RELOAD`/SIGHUP: which pools to build,
//! drop or rebuild, and which settings only take effect after a restart.

use crate::model::{Config, Pool};
use std::fmt;

/// Changes between two configs. Empty means the reload is a no-op.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Names of `[general]` fields that changed.
    pub general_changed: Vec<&'static str>,
    /// The subset of `general_changed` that a reload cannot apply (listeners, threads).
    /// TLS settings are not among them: a reload re-reads certificates and keys.
    pub restart_required: Vec<&'static str>,
    pub pools_added: Vec<String>,
    pub pools_removed: Vec<String>,
    pub pools_changed: Vec<PoolDiff>,
    pub query_routing_changed: bool,
    pub sharding_changed: bool,
    /// `[gateway]` changed (keys, claims, limits apply at once; see `restart_required`).
    pub gateway_changed: bool,
}

/// How one pool present in both snapshots changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolDiff {
    pub name: String,
    /// Pool-level settings that changed (`pool_mode`, `load_balancing_mode`, ...).
    pub settings_changed: Vec<&'static str>,
    pub users_added: Vec<String>,
    pub users_removed: Vec<String>,
    /// Users whose password, sizes, mode or server credentials changed.
    pub users_changed: Vec<String>,
    /// Shard count, databases, servers, roles or weights changed: server connections
    /// of this pool must be re-established.
    pub topology_changed: bool,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        *self == ConfigDiff::default()
    }
}

macro_rules! changed_fields {
    ($old:expr, $new:expr, $($field:ident),* $(,)?) => {{
        let mut v: Vec<&'static str> = Vec::new();
        $( if $old.$field != $new.$field { v.push(stringify!($field)); } )*
        v
    }};
}

/// Compares two snapshots.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let general_changed = changed_fields!(
        old.general,
        new.general,
        host,
        port,
        admin_port,
        metrics_port,
        admin_username,
        admin_password,
        connect_timeout,
        idle_timeout,
        server_lifetime,
        healthcheck_delay,
        healthcheck_timeout,
        ban_time,
        shutdown_timeout,
        worker_threads,
        log_level,
        log_format,
        tls,
        client_tls_sslmode,
        server_tls,
        otel_endpoint,
        log_queries,
        log_parameters,
        instance_id,
        server_reset_query_always,
        client_login_timeout,
        max_client_conn,
        max_message_size,
        client_auth_failure_limit,
        metrics_host,
        metrics_token,
        allow_server_cleartext_password,
        max_prepared_statements,
        bounds,
    );
    const RESTART: &[&str] = &[
        "host",
        "port",
        "admin_port",
        "metrics_port",
        "worker_threads",
        "otel_endpoint",
        "instance_id",
        "log_format",
    ];
    let mut restart_required: Vec<&'static str> = general_changed
        .iter()
        .copied()
        .filter(|f| RESTART.contains(f))
        .collect();
    // The gateway's listener is bound at start: adding, removing or moving it waits
    // for a restart; everything else in `[gateway]` applies to the next login.
    if old.gateway.as_ref().map(|g| g.port) != new.gateway.as_ref().map(|g| g.port) {
        restart_required.push("gateway.port");
    }
    let pools_added = new
        .pools
        .keys()
        .filter(|k| !old.pools.contains_key(*k))
        .cloned()
        .collect();
    let pools_removed = old
        .pools
        .keys()
        .filter(|k| !new.pools.contains_key(*k))
        .cloned()
        .collect();
    let pools_changed = old
        .pools
        .iter()
        .filter_map(|(name, o)| new.pools.get(name).map(|n| pool_diff(o, n)))
        .filter(|d| {
            !d.settings_changed.is_empty()
                || !d.users_added.is_empty()
                || !d.users_removed.is_empty()
                || !d.users_changed.is_empty()
                || d.topology_changed
        })
        .collect();
    ConfigDiff {
        general_changed,
        restart_required,
        pools_added,
        pools_removed,
        pools_changed,
        query_routing_changed: old.query_routing != new.query_routing,
        sharding_changed: old.sharding != new.sharding,
        gateway_changed: old.gateway != new.gateway,
    }
}

fn pool_diff(old: &Pool, new: &Pool) -> PoolDiff {
    let settings_changed = changed_fields!(
        old,
        new,
        pool_mode,
        load_balancing_mode,
        default_role,
        query_parser_enabled,
        query_parser_read_write_splitting,
        primary_reads_enabled,
        sharding_function,
        connect_timeout,
        idle_timeout,
        server_lifetime,
        server_tls_sslmode,
    );
    let find = |p: &Pool, name: &str| p.users.iter().find(|u| u.username == name).cloned();
    PoolDiff {
        name: new.name.clone(),
        settings_changed,
        users_added: new
            .users
            .iter()
            .filter(|u| find(old, &u.username).is_none())
            .map(|u| u.username.clone())
            .collect(),
        users_removed: old
            .users
            .iter()
            .filter(|u| find(new, &u.username).is_none())
            .map(|u| u.username.clone())
            .collect(),
        users_changed: new
            .users
            .iter()
            .filter(|u| matches!(find(old, &u.username), Some(o) if o != **u))
            .map(|u| u.username.clone())
            .collect(),
        topology_changed: old.shards != new.shards,
    }
}

impl fmt::Display for ConfigDiff {
    /// One change per line, e.g. `pool app: users added: bob`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "no changes");
        }
        let mut lines: Vec<String> = Vec::new();
        if !self.general_changed.is_empty() {
            lines.push(format!("general: {}", self.general_changed.join(", ")));
        }
        if !self.restart_required.is_empty() {
            lines.push(format!(
                "restart required for: {}",
                self.restart_required.join(", ")
            ));
        }
        for p in &self.pools_added {
            lines.push(format!("pool {p}: added"));
        }
        for p in &self.pools_removed {
            lines.push(format!("pool {p}: removed"));
        }
        for p in &self.pools_changed {
            if !p.settings_changed.is_empty() {
                lines.push(format!(
                    "pool {}: {}",
                    p.name,
                    p.settings_changed.join(", ")
                ));
            }
            for (what, list) in [
                ("users added", &p.users_added),
                ("users removed", &p.users_removed),
                ("users changed", &p.users_changed),
            ] {
                if !list.is_empty() {
                    lines.push(format!("pool {}: {what}: {}", p.name, list.join(", ")));
                }
            }
            if p.topology_changed {
                lines.push(format!("pool {}: shards/servers changed", p.name));
            }
        }
        if self.query_routing_changed {
            lines.push("query_routing changed".to_string());
        }
        if self.sharding_changed {
            lines.push("sharding changed".to_string());
        }
        write!(f, "{}", lines.join("\n"))
    }
}
