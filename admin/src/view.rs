//! What the console and the metrics read from the router, and what they ask it to do.
//!
//! The router implements [`AdminView`]; this crate never sees pools or sockets. Rows are
//! plain-data snapshots taken when a command runs (or when Prometheus scrapes), so the
//! console can format them at leisure without holding any router lock. Field names
//! follow PgBouncer's columns; each struct's doc says what one row stands for.

use crate::AdminError;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

/// A boxed future, so [`AdminView`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A server's role as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Primary,
    Replica,
    /// Configured as `auto` and not yet detected.
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Unknown => "unknown",
        }
    }
}

/// One connection pool: (database, user, shard, role). PgBouncer has one pool per
/// (database, user); ours are split further by shard and role, shown in extra columns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolRow {
    pub database: String,
    pub user: String,
    /// Clients linked to a server or idle (not waiting).
    pub cl_active: u32,
    /// Clients waiting for a server of this pool.
    pub cl_waiting: u32,
    pub cl_active_cancel_req: u32,
    pub cl_waiting_cancel_req: u32,
    /// Server connections linked to a client.
    pub sv_active: u32,
    pub sv_active_cancel: u32,
    pub sv_being_canceled: u32,
    /// Server connections idle and ready.
    pub sv_idle: u32,
    pub sv_used: u32,
    pub sv_tested: u32,
    /// Server connections being established.
    pub sv_login: u32,
    /// How long the oldest waiting client has waited (zero when none waits).
    pub maxwait: Duration,
    /// `session` | `transaction` | `statement`.
    pub pool_mode: String,
    // Orochi columns, after PgBouncer's.
    pub shard: usize,
    pub role: Option<Role>,
    /// Configured maximum number of server connections.
    pub pool_size: u32,
    /// New clients of this pool are held (PAUSE).
    pub paused: bool,
}

impl PoolRow {
    /// Checkouts possible right now without waiting: idle servers plus room to open more.
    pub fn available(&self) -> u32 {
        let busy = self.sv_active + self.sv_used + self.sv_tested + self.sv_login;
        self.pool_size.saturating_sub(busy)
    }
}

/// State of a client connection, as PgBouncer names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientState {
    /// Linked to a server, or idle between transactions.
    #[default]
    Active,
    /// Waiting for a server connection.
    Waiting,
    /// Still authenticating.
    Login,
}

impl ClientState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Active => "active",
            ClientState::Waiting => "waiting",
            ClientState::Login => "login",
        }
    }
}

/// One client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// Unique while connected; the argument of `KILL_CLIENT`.
    pub id: u64,
    pub user: String,
    pub database: String,
    pub state: ClientState,
    pub addr: String,
    pub port: u16,
    pub local_addr: String,
    pub local_port: u16,
    pub connect_time: SystemTime,
    /// Start of the last request.
    pub request_time: SystemTime,
    /// How long it has been waiting for a server (zero when not waiting).
    pub wait: Duration,
    pub close_needed: bool,
    /// The server connection it is linked to ([`ServerRow::id`]).
    pub link: Option<u64>,
    /// `None` when not TLS, else a description such as `TLSv1.3/TLS_AES_256_GCM_SHA384`.
    pub tls: Option<String>,
    pub application_name: String,
    // Orochi columns.
    /// Inside a transaction right now.
    pub in_transaction: bool,
}

/// State of a server connection, as PgBouncer names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerState {
    /// Linked to a client.
    Active,
    /// Ready for a client.
    #[default]
    Idle,
    /// Released, waiting for its reset/check.
    Used,
    /// Being tested or reset.
    Tested,
    /// Being established.
    Login,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Active => "active",
            ServerState::Idle => "idle",
            ServerState::Used => "used",
            ServerState::Tested => "tested",
            ServerState::Login => "login",
        }
    }
}

/// One server connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    pub id: u64,
    pub user: String,
    /// Logical database (pool) name.
    pub database: String,
    pub state: ServerState,
    pub addr: String,
    pub port: u16,
    pub local_addr: String,
    pub local_port: u16,
    pub connect_time: SystemTime,
    pub request_time: SystemTime,
    pub wait: Duration,
    pub close_needed: bool,
    /// The client it is linked to ([`ClientRow::id`]).
    pub link: Option<u64>,
    /// PostgreSQL backend pid.
    pub remote_pid: i32,
    pub tls: Option<String>,
    pub application_name: String,
    // Orochi columns.
    pub shard: usize,
    /// The server's actual role (what health checks found).
    pub role: Role,
    /// The server's health: up, down (failing checks) or banned (out of rotation).
    pub health: NodeStatus,
    /// Replica lag; `None` for a primary or when unknown.
    pub replication_delay: Option<Duration>,
}

/// Traffic of one logical database since start (totals) and per second over the last
/// stats period (averages). Times are microseconds, as PgBouncer's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsRow {
    pub database: String,
    pub total_xact_count: u64,
    pub total_query_count: u64,
    pub total_received: u64,
    pub total_sent: u64,
    pub total_xact_time: u64,
    pub total_query_time: u64,
    pub total_wait_time: u64,
    pub avg_xact_count: u64,
    pub avg_query_count: u64,
    pub avg_recv: u64,
    pub avg_sent: u64,
    pub avg_xact_time: u64,
    pub avg_query_time: u64,
    pub avg_wait_time: u64,
    // Orochi columns.
    pub total_errors: u64,
    /// Statements sent to more than one shard.
    pub total_cross_shard: u64,
}

/// One configured server of a logical database: the router shows one row per
/// (database, shard, server), since a database of ours spans several servers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseRow {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// The PostgreSQL database name on that server.
    pub database: String,
    pub force_user: Option<String>,
    pub pool_size: u32,
    pub min_pool_size: u32,
    pub reserve_pool: u32,
    pub pool_mode: String,
    pub max_connections: u32,
    pub current_connections: u32,
    pub paused: bool,
    pub disabled: bool,
    // Orochi columns.
    pub shard: usize,
    pub role: Option<Role>,
}

/// One configuration setting (`SHOW CONFIG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRow {
    pub key: String,
    pub value: String,
    pub default: String,
    /// Applied by `RELOAD` without a restart.
    pub changeable: bool,
}

/// One shard of a logical database (`SHOW SHARDS`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShardRow {
    pub database: String,
    pub shard: usize,
    /// PostgreSQL database name on the shard's servers.
    pub server_database: String,
    /// `host:port` of the current primary, if one is known.
    pub primary: Option<String>,
    /// `host:port` of each replica.
    pub replicas: Vec<String>,
    /// Servers of this shard currently in rotation (not banned, reachable).
    pub servers_up: u32,
    /// Distributed tables routed over this database's shards.
    pub sharded_tables: Vec<String>,
}

/// One two-phase transaction in flight or in doubt (`SHOW TRANSACTIONS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRow {
    /// The base gid (`orochi_<instance>_<seq>_c<coordinator>`).
    pub gid: String,
    pub database: String,
    /// e.g. `preparing`, `committing`, `committed`, `aborting`, `in_doubt`.
    pub phase: String,
    pub age: Duration,
    pub coordinator: usize,
    /// Written shards, ascending.
    pub shards: Vec<usize>,
    /// Prepared somewhere with no live coordinator: waits for the recovery sweeper.
    pub in_doubt: bool,
}

/// Health of one configured server (`SHOW POOL_NODES`, Pgpool-II style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeStatus {
    #[default]
    Up,
    /// Unreachable or failing health checks.
    Down,
    /// Taken out of rotation for `ban_time`.
    Banned,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Up => "up",
            NodeStatus::Down => "down",
            NodeStatus::Banned => "banned",
        }
    }
}

/// One configured server (`SHOW POOL_NODES`, and the per-server metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolNodeRow {
    /// Position across the database's servers, from 0.
    pub node_id: usize,
    pub host: String,
    pub port: u16,
    pub status: NodeStatus,
    /// Load-balancing weight.
    pub weight: u32,
    /// The actual role (what health checks found).
    pub role: Role,
    /// Reads routed to this server since start.
    pub select_cnt: u64,
    /// Would receive reads now.
    pub load_balance_node: bool,
    /// Replica lag; `None` for a primary or when unknown.
    pub replication_delay: Option<Duration>,
    pub last_status_change: SystemTime,
    pub database: String,
    pub shard: usize,
}

/// The router as the admin console and the metrics see it.
pub trait AdminView: Send + Sync {
    fn pools(&self) -> Vec<PoolRow>;
    fn clients(&self) -> Vec<ClientRow>;
    fn servers(&self) -> Vec<ServerRow>;
    fn stats(&self) -> Vec<StatsRow>;
    fn databases(&self) -> Vec<DatabaseRow>;
    fn config(&self) -> Vec<ConfigRow>;
    fn shards(&self) -> Vec<ShardRow>;
    fn transactions(&self) -> Vec<TransactionRow>;
    fn pool_nodes(&self) -> Vec<PoolNodeRow>;

    /// The text of `SHOW VERSION`.
    fn version(&self) -> String {
        format!("Orochi Router {}", env!("CARGO_PKG_VERSION"))
    }

    /// Serving, and every pool can reach a primary (`/health`).
    fn healthy(&self) -> bool;
    /// Ready for traffic (`/ready`): started up, not draining.
    fn ready(&self) -> bool;
    /// The bearer token `/metrics` requires, if any (`[general] metrics_token`; read per
    /// request, so a reload rotates it).
    fn metrics_token(&self) -> Option<String> {
        None
    }

    /// Re-reads the configuration files and applies them, all or nothing. `Ok` carries
    /// a one-line summary of what changed; an invalid config is `AdminError::Config`.
    fn reload(&self) -> BoxFuture<'_, Result<String, AdminError>>;
    /// Waits for running transactions of `database` (all when `None`) to finish, then
    /// holds new ones until `resume`.
    fn pause(&self, database: Option<String>) -> BoxFuture<'_, Result<(), AdminError>>;
    fn resume(&self, database: Option<String>) -> Result<(), AdminError>;
    /// Replaces server connections as they become free.
    fn reconnect(&self, database: Option<String>) -> Result<(), AdminError>;
    /// Disconnects one client; `false` when no client has that id.
    fn kill_client(&self, id: u64) -> bool;
    /// Starts a graceful shutdown (as SIGTERM).
    fn shutdown(&self);
    /// Makes `pool` use the shard map `map` (JSON, see `reshard`) from its next
    /// transaction on, and keeps it over reloads; returns the databases now used.
    fn reshard_switch(&self, pool: &str, map: &str) -> Result<Vec<String>, AdminError> {
        let _ = (pool, map);
        Err(AdminError::WrongState(
            "this router cannot switch shard maps".into(),
        ))
    }
}
