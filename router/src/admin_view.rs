//! The router as the admin console and metrics see it: `AdminView` over `App`.
//! Every method takes a snapshot from live state (pool counters, the client registry,
//! idle lists, server health); nothing here is on the query path. Roles shown are the
//! *actual* ones (what health checks found: `unknown` for an `auto` server not checked
//! yet), not the configured ones.

use crate::app::App;
use crate::backend::registry::ServerSlot;
use crate::clients::ClientState as Cs;
use orochi_admin::{
    AdminError, AdminView, BoxFuture, ClientRow, ClientState, ConfigRow, DatabaseRow, NodeStatus,
    PoolNodeRow, PoolRow, Role as ViewRole, ServerRow, ServerState, ShardRow, StatsRow,
    TransactionRow,
};
use orochi_config::{PoolMode, Role};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub struct AppView {
    pub app: Arc<App>,
    /// When the router started (uptime-based wall clock conversions).
    started: (Instant, SystemTime),
}

impl AppView {
    pub fn new(app: Arc<App>) -> Self {
        AppView {
            app,
            started: (Instant::now(), SystemTime::now()),
        }
    }

    fn wall(&self, t: Instant) -> SystemTime {
        let (i0, s0) = self.started;
        if t >= i0 {
            s0 + (t - i0)
        } else {
            s0.checked_sub(i0 - t).unwrap_or(s0)
        }
    }

    fn databases_matching(&self, db: &Option<String>) -> Result<Vec<String>, AdminError> {
        let reg = self.app.registry.load();
        match db {
            None => Ok(reg.dbs.keys().cloned().collect()),
            Some(d) if reg.dbs.contains_key(d) => Ok(vec![d.clone()]),
            Some(d) => Err(AdminError::NoSuchDatabase(d.clone())),
        }
    }
}

fn mode_name(m: PoolMode) -> &'static str {
    match m {
        PoolMode::Transaction => "transaction",
        PoolMode::Session => "session",
        PoolMode::Statement => "statement",
    }
}

fn view_role(r: Role) -> ViewRole {
    match r {
        Role::Primary => ViewRole::Primary,
        Role::Replica => ViewRole::Replica,
        Role::Auto => ViewRole::Unknown,
    }
}

/// The health of shard `shard` of pool `name`.
fn shard_health<'a>(
    reg: &'a crate::backend::Registry,
    name: &str,
    shard: usize,
) -> Option<&'a Arc<crate::backend::health::ShardHealth>> {
    reg.health
        .iter()
        .find(|h| h.pool_name == name && h.shard == shard)
}

/// The health of server `server` of that shard.
fn server_health<'a>(
    reg: &'a crate::backend::Registry,
    name: &str,
    shard: usize,
    server: usize,
) -> Option<&'a Arc<crate::backend::health::ServerHealth>> {
    shard_health(reg, name, shard).and_then(|h| h.servers.get(server))
}

fn split_addr(a: Option<std::net::SocketAddr>) -> (String, u16) {
    a.map(|a| (a.ip().to_string(), a.port()))
        .unwrap_or_default()
}

impl AdminView for AppView {
    fn pools(&self) -> Vec<PoolRow> {
        let reg = self.app.registry.load();
        let clients = self.app.clients.list();
        let mut rows = Vec::new();
        for (db, users) in &reg.dbs {
            for (user, up) in users {
                let mine: Vec<_> = clients
                    .iter()
                    .filter(|c| &c.database == db && &c.user == user)
                    .collect();
                let idle_clients = mine.iter().filter(|c| c.state() == Cs::Idle).count();
                let mut first = true;
                for (shard, servers) in up.shards.iter().enumerate() {
                    for ServerSlot { pool, .. } in servers {
                        let linked = mine
                            .iter()
                            .filter(|c| {
                                c.link
                                    .lock()
                                    .ok()
                                    .and_then(|l| l.as_ref().map(|l| Arc::ptr_eq(&l.pool, pool)))
                                    .unwrap_or(false)
                            })
                            .count();
                        let waiting = pool.stats.waiting.load(Ordering::Relaxed);
                        let maxwait = mine
                            .iter()
                            .filter_map(|c| c.wait_since.lock().ok().and_then(|w| *w))
                            .map(|w| w.elapsed())
                            .max()
                            .filter(|_| waiting > 0)
                            .unwrap_or_default();
                        let extra = if first { idle_clients } else { 0 };
                        first = false;
                        rows.push(PoolRow {
                            database: db.clone(),
                            user: user.clone(),
                            cl_active: (linked + extra) as u32,
                            cl_waiting: waiting as u32,
                            sv_active: pool.stats.in_use.load(Ordering::Relaxed) as u32,
                            sv_idle: pool.idle_count() as u32,
                            maxwait,
                            pool_mode: mode_name(up.mode).into(),
                            shard,
                            role: Some(pool.health.role().view()),
                            pool_size: pool.settings.pool_size as u32,
                            paused: self.app.is_paused(db),
                            ..Default::default()
                        });
                    }
                }
            }
        }
        rows.sort_by(|a, b| (&a.database, &a.user, a.shard).cmp(&(&b.database, &b.user, b.shard)));
        rows
    }

    fn clients(&self) -> Vec<ClientRow> {
        self.app
            .clients
            .list()
            .into_iter()
            .map(|c| {
                let link = c.link.lock().ok().and_then(|l| l.clone());
                let (addr, port) = split_addr(c.addr);
                let wait = c
                    .wait_since
                    .lock()
                    .ok()
                    .and_then(|w| *w)
                    .map(|w| w.elapsed())
                    .unwrap_or_default();
                ClientRow {
                    id: c.id,
                    user: c.user.clone(),
                    database: c.database.clone(),
                    state: match c.state() {
                        Cs::Waiting => ClientState::Waiting,
                        _ => ClientState::Active,
                    },
                    addr,
                    port,
                    local_addr: String::new(),
                    local_port: 0,
                    connect_time: c.connected_at,
                    request_time: link
                        .as_ref()
                        .map(|l| self.wall(l.since))
                        .unwrap_or(c.connected_at),
                    wait,
                    close_needed: false,
                    link: link.as_ref().map(|l| l.server_id),
                    tls: c.tls.clone(),
                    application_name: c.application_name.clone(),
                    in_transaction: link.is_some(),
                }
            })
            .collect()
    }

    fn servers(&self) -> Vec<ServerRow> {
        let mut rows = Vec::new();
        let reg = self.app.registry.load();
        let now = Instant::now();
        for c in self.app.clients.list() {
            let Some(l) = c.link.lock().ok().and_then(|l| l.clone()) else {
                continue;
            };
            let (local_addr, local_port) = split_addr(l.local);
            rows.push(ServerRow {
                id: l.server_id,
                user: l.pool.user_name.clone(),
                database: l.pool.pool_name.clone(),
                state: ServerState::Active,
                addr: l.pool.target.host.clone(),
                port: l.pool.target.port,
                local_addr,
                local_port,
                connect_time: self.wall(l.connected),
                request_time: self.wall(l.since),
                wait: Duration::ZERO,
                close_needed: false,
                link: Some(c.id),
                remote_pid: l.process_id,
                tls: l.tls.clone(),
                application_name: String::new(),
                shard: l.pool.shard,
                role: l.pool.health.role().view(),
                health: l.pool.health.status(now),
                replication_delay: l.pool.health.lag(),
            });
        }
        for users in reg.dbs.values() {
            for up in users.values() {
                for slot in up.shards.iter().flatten() {
                    let p = &slot.pool;
                    for i in p.idle_snapshot() {
                        let (local_addr, local_port) = split_addr(i.local);
                        rows.push(ServerRow {
                            id: i.id,
                            user: p.user_name.clone(),
                            database: p.pool_name.clone(),
                            state: ServerState::Idle,
                            addr: p.target.host.clone(),
                            port: p.target.port,
                            local_addr,
                            local_port,
                            connect_time: self.wall(i.created),
                            request_time: self.wall(i.last_used),
                            wait: Duration::ZERO,
                            close_needed: false,
                            link: None,
                            remote_pid: i.process_id,
                            tls: i.tls.clone(),
                            application_name: String::new(),
                            shard: p.shard,
                            role: p.health.role().view(),
                            health: p.health.status(now),
                            replication_delay: p.health.lag(),
                        });
                    }
                }
            }
        }
        rows.sort_by_key(|r| r.id);
        rows
    }

    fn stats(&self) -> Vec<StatsRow> {
        let reg = self.app.registry.load();
        let mut by_db: HashMap<String, StatsRow> = HashMap::new();
        for p in reg.all_server_pools() {
            let s = &p.stats;
            let row = by_db
                .entry(p.pool_name.clone())
                .or_insert_with(|| StatsRow {
                    database: p.pool_name.clone(),
                    ..Default::default()
                });
            row.total_xact_count += s.xacts.load(Ordering::Relaxed);
            row.total_query_count += s.queries.load(Ordering::Relaxed);
            row.total_received += s.bytes_to_server.load(Ordering::Relaxed);
            row.total_sent += s.bytes_from_server.load(Ordering::Relaxed);
            row.total_xact_time += s.xact_us.load(Ordering::Relaxed);
            row.total_wait_time += s.wait_us.load(Ordering::Relaxed);
            row.total_errors += s.connect_errors.load(Ordering::Relaxed);
        }
        let mut rows: Vec<_> = by_db.into_values().collect();
        rows.sort_by(|a, b| a.database.cmp(&b.database));
        rows
    }

    fn databases(&self) -> Vec<DatabaseRow> {
        let reg = self.app.registry.load();
        let mut rows = Vec::new();
        for (name, pool) in &reg.config.pools {
            let size: usize = pool.users.iter().map(|u| u.pool_size).sum();
            let min: usize = pool.users.iter().map(|u| u.min_pool_size).sum();
            for (i, shard) in pool.shards.iter().enumerate() {
                for (j, s) in shard.servers.iter().enumerate() {
                    let current: usize = reg
                        .all_server_pools()
                        .filter(|p| {
                            &p.pool_name == name
                                && p.shard == i
                                && p.target.host == s.host
                                && p.target.port == s.port
                        })
                        .map(|p| p.stats.open.load(Ordering::Relaxed))
                        .sum();
                    rows.push(DatabaseRow {
                        name: name.clone(),
                        host: s.host.clone(),
                        port: s.port,
                        database: shard.database.clone(),
                        force_user: None,
                        pool_size: size as u32,
                        min_pool_size: min as u32,
                        reserve_pool: 0,
                        pool_mode: mode_name(pool.pool_mode).into(),
                        max_connections: size as u32,
                        current_connections: current as u32,
                        paused: self.app.is_paused(name),
                        disabled: false,
                        shard: i,
                        role: Some(
                            server_health(&reg, name, i, j)
                                .map_or(view_role(s.role), |h| h.role().view()),
                        ),
                    });
                }
            }
        }
        rows
    }

    fn config(&self) -> Vec<ConfigRow> {
        let c = self.app.config();
        let g = &c.general;
        let ms = |d: Duration| d.as_millis().to_string();
        let b = &g.bounds;
        let secs = |d: Option<Duration>| d.map_or("0".into(), |d| d.as_secs_f64().to_string());
        let row = |k: &str, v: String, d: &str, ch: bool| ConfigRow {
            key: k.into(),
            value: v,
            default: d.into(),
            changeable: ch,
        };
        vec![
            row("host", g.host.clone(), "0.0.0.0", false),
            row("port", g.port.to_string(), "5432", false),
            row("admin_port", g.admin_port.to_string(), "6432", false),
            row("metrics_port", g.metrics_port.to_string(), "9090", false),
            row("admin_username", g.admin_username.clone(), "admin", true),
            row("connect_timeout", ms(g.connect_timeout), "5000", true),
            row("idle_timeout", ms(g.idle_timeout), "600000", true),
            row("server_lifetime", ms(g.server_lifetime), "3600000", true),
            row("healthcheck_delay", ms(g.healthcheck_delay), "30000", true),
            row(
                "healthcheck_timeout",
                ms(g.healthcheck_timeout),
                "1000",
                true,
            ),
            row("ban_time", g.ban_time.as_secs().to_string(), "60", true),
            row("shutdown_timeout", ms(g.shutdown_timeout), "60000", true),
            row(
                "worker_threads",
                g.worker_threads
                    .map_or_else(|| "auto".to_string(), |n| n.to_string()),
                "auto",
                false,
            ),
            row("log_level", g.log_level.clone(), "info", false),
            row("log_queries", g.log_queries.to_string(), "false", true),
            row(
                "log_parameters",
                g.log_parameters.to_string(),
                "false",
                true,
            ),
            row(
                "otel_endpoint",
                g.otel_endpoint.clone().unwrap_or_default(),
                "",
                false,
            ),
            row("query_timeout", secs(b.query_timeout), "0", true),
            row(
                "query_wait_timeout",
                secs(b.query_wait_timeout.or(Some(g.connect_timeout))),
                "connect_timeout",
                true,
            ),
            row(
                "idle_transaction_timeout",
                secs(b.idle_transaction_timeout),
                "0",
                true,
            ),
            row("tcp_keepalive", b.tcp.enabled.to_string(), "true", true),
            row(
                "tcp_user_timeout",
                ms(b.tcp.user_timeout.unwrap_or_default()),
                "0",
                true,
            ),
        ]
    }

    fn shards(&self) -> Vec<ShardRow> {
        let reg = self.app.registry.load();
        let now = Instant::now();
        let mut rows = Vec::new();
        for (name, pool) in &reg.config.pools {
            let tables: Vec<String> = reg
                .config
                .sharding
                .tables
                .iter()
                .filter(|t| match &t.pool {
                    Some(p) => p == name,
                    None => pool.shards.len() > 1,
                })
                .map(|t| format!("{}.{}", t.name, t.column))
                .collect();
            for (i, shard) in pool.shards.iter().enumerate() {
                let addr = |s: &orochi_config::Server| format!("{}:{}", s.host, s.port);
                let health = shard_health(&reg, name, i);
                let primary = match health {
                    Some(h) => h
                        .write_target()
                        .and_then(|j| shard.servers.get(j))
                        .map(addr),
                    None => shard
                        .servers
                        .iter()
                        .find(|s| s.role == Role::Primary)
                        .map(addr),
                };
                let (replicas, up) = match health {
                    Some(h) => (
                        shard
                            .servers
                            .iter()
                            .zip(&h.servers)
                            .filter(|(_, sh)| {
                                sh.role() == crate::backend::health::ActualRole::Replica
                            })
                            .map(|(s, _)| addr(s))
                            .collect(),
                        h.servers.iter().filter(|s| s.in_rotation(now)).count(),
                    ),
                    None => (
                        shard
                            .servers
                            .iter()
                            .filter(|s| s.role == Role::Replica)
                            .map(addr)
                            .collect(),
                        shard.servers.len(),
                    ),
                };
                rows.push(ShardRow {
                    database: name.clone(),
                    shard: i,
                    server_database: shard.database.clone(),
                    primary,
                    replicas,
                    servers_up: up as u32,
                    sharded_tables: tables.clone(),
                });
            }
        }
        rows
    }

    fn transactions(&self) -> Vec<TransactionRow> {
        use orochi_twopc::Phase;
        self.app
            .twopc
            .registry()
            .snapshot()
            .into_iter()
            .map(|t| TransactionRow {
                phase: t.phase.as_str().to_string(),
                in_doubt: matches!(t.phase, Phase::InDoubt) || !t.pending.is_empty(),
                age: t.age(),
                gid: t.gid,
                database: t.pool,
                coordinator: t.coordinator,
                shards: t.shards,
            })
            .collect()
    }

    fn pool_nodes(&self) -> Vec<PoolNodeRow> {
        let reg = self.app.registry.load();
        let now = Instant::now();
        let mut rows = Vec::new();
        for (name, pool) in &reg.config.pools {
            let mut node = 0;
            for (i, shard) in pool.shards.iter().enumerate() {
                let health = shard_health(&reg, name, i);
                let write_target = health.and_then(|h| h.write_target());
                for (j, s) in shard.servers.iter().enumerate() {
                    // Every (user) pool of this server: statements summed over them.
                    let pools: Vec<_> = reg
                        .all_server_pools()
                        .filter(|p| {
                            &p.pool_name == name
                                && p.shard == i
                                && p.target.host == s.host
                                && p.target.port == s.port
                        })
                        .collect();
                    let (status, role, lb, delay, changed) = match health {
                        Some(h) => {
                            let sh = &h.servers[j];
                            let reads = if !h.checked {
                                true
                            } else {
                                h.readable_replica(j, now)
                                    || (pool.primary_reads_enabled && h.readable_primary(j, now))
                                    || (write_target == Some(j)
                                        && !(0..h.servers.len())
                                            .any(|k| h.readable_replica(k, now)))
                            };
                            (
                                sh.status(now),
                                sh.role().view(),
                                reads,
                                sh.lag(),
                                sh.last_change(),
                            )
                        }
                        None => (
                            NodeStatus::Up,
                            view_role(s.role),
                            s.role == Role::Primary,
                            None,
                            self.started.1,
                        ),
                    };
                    rows.push(PoolNodeRow {
                        node_id: node,
                        host: s.host.clone(),
                        port: s.port,
                        status,
                        weight: s.weight,
                        role,
                        select_cnt: pools
                            .iter()
                            .map(|p| p.stats.queries.load(Ordering::Relaxed))
                            .sum(),
                        load_balance_node: lb,
                        replication_delay: delay,
                        last_status_change: changed,
                        database: name.clone(),
                        shard: i,
                    });
                    node += 1;
                }
            }
        }
        rows
    }

    /// Serving, and every shard of every pool has a server that can take writes: for a
    /// health-checked shard, a primary in rotation (or recovering); for a single-server
    /// shard, one whose last connection attempt did not fail.
    fn healthy(&self) -> bool {
        if self.app.draining() {
            return false;
        }
        let reg = self.app.registry.load();
        reg.dbs.values().flat_map(|u| u.values()).all(|up| {
            up.shards.iter().zip(&up.health).all(|(servers, h)| {
                if h.checked {
                    h.write_target().is_some()
                } else {
                    servers
                        .iter()
                        .any(|s| !s.pool.stats.unreachable.load(Ordering::Relaxed))
                }
            })
        })
    }

    fn ready(&self) -> bool {
        !self.app.draining()
    }

    fn metrics_token(&self) -> Option<String> {
        self.app.config().general.metrics_token.clone()
    }

    fn reload(&self) -> BoxFuture<'_, Result<String, AdminError>> {
        Box::pin(async move {
            match self.app.reload() {
                Ok(diff) => {
                    tracing::info!(changes = ?diff, "configuration reloaded (RELOAD)");
                    Ok(if diff.is_empty() {
                        "configuration reloaded: no changes".to_string()
                    } else {
                        format!("configuration reloaded: {diff:?}")
                    })
                }
                Err(crate::app::ReloadError::Config(e)) => {
                    tracing::error!("RELOAD rejected, keeping the running configuration:\n{e}");
                    Err(AdminError::Config(e))
                }
                Err(crate::app::ReloadError::Tls(e)) => {
                    tracing::error!(
                        "RELOAD rejected, keeping the running configuration and certificates: {e}"
                    );
                    Err(AdminError::Action(format!(
                        "RELOAD rejected, the running configuration and certificates stay: {e}"
                    )))
                }
                Err(crate::app::ReloadError::NoSource) => Err(AdminError::WrongState(
                    "the router was started without a configuration file".into(),
                )),
            }
        })
    }

    fn pause(&self, database: Option<String>) -> BoxFuture<'_, Result<(), AdminError>> {
        Box::pin(async move {
            let dbs = self.databases_matching(&database)?;
            for d in &dbs {
                self.app.pause(d);
            }
            // PgBouncer semantics: return once no server connection of these pools is in use.
            loop {
                let busy: usize = self
                    .app
                    .registry
                    .load()
                    .all_server_pools()
                    .filter(|p| dbs.contains(&p.pool_name))
                    .map(|p| p.stats.in_use.load(Ordering::Relaxed))
                    .sum();
                if busy == 0 {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    fn resume(&self, database: Option<String>) -> Result<(), AdminError> {
        for d in self.databases_matching(&database)? {
            self.app.resume(&d);
        }
        Ok(())
    }

    fn reconnect(&self, database: Option<String>) -> Result<(), AdminError> {
        let dbs = self.databases_matching(&database)?;
        for p in self.app.registry.load().all_server_pools() {
            if dbs.contains(&p.pool_name) {
                p.reconnect();
            }
        }
        Ok(())
    }

    fn kill_client(&self, id: u64) -> bool {
        self.app.clients.kill(id)
    }

    fn shutdown(&self) {
        self.app.begin_shutdown();
    }

    fn reshard_switch(&self, pool: &str, map: &str) -> Result<Vec<String>, AdminError> {
        self.app.switch_shard_map(pool, map)
    }
}
