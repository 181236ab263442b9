//! The validated configuration snapshot: plain data, immutable once built.
//!
//! Everything the rest of the router reads lives here, already validated and with
//! defaults applied, so no other crate needs to know about TOML, PgCat key names or
//! environment variables. Durations are `Duration`, never raw milliseconds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A whole, validated configuration. Cheap to clone behind an `Arc`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub general: General,
    /// Logical databases by name (the `dbname` clients connect with).
    pub pools: BTreeMap<String, Pool>,
    pub query_routing: QueryRouting,
    pub sharding: Sharding,
    /// The JWT gateway listener (SPEC §9); `None` = no `[gateway]` section, no listener.
    pub gateway: Option<Gateway>,
    /// Files this snapshot was read from (for RELOAD and error messages).
    pub sources: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct General {
    /// Listen address (default `0.0.0.0`; env `PGDOG_HOST`).
    pub host: String,
    /// Client port (default 5432; env `PGDOG_PORT`). Listener ports may be 0 (OS-assigned).
    pub port: u16,
    /// Admin console port (default 6432; env `PGDOG_ADMIN_PORT`). When defaulted and equal
    /// to `port` (PgCat configs listen on 6432) it moves to the next free port.
    pub admin_port: u16,
    /// HTTP `/metrics` port (default 9090; PgCat `prometheus_exporter_port`; env `PGDOG_METRICS_PORT`).
    pub metrics_port: u16,
    /// Default `"admin"`.
    pub admin_username: String,
    /// Empty when not configured (no default password is invented).
    pub admin_password: String,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub server_lifetime: Duration,
    pub healthcheck_delay: Duration,
    pub healthcheck_timeout: Duration,
    pub ban_time: Duration,
    pub shutdown_timeout: Duration,
    /// `None` (not written): chosen by the router from the machine (`router::cli`);
    /// 0 = one per core; 1 = a current-thread runtime; N = N workers.
    pub worker_threads: Option<usize>,
    /// error | warn | info | debug | trace
    pub log_level: String,
    pub log_format: LogFormat,
    /// Certificate and key served to clients (client and admin ports); `None` = no TLS.
    pub tls: Option<Tls>,
    /// PgBouncer's `client_tls_sslmode` (default `prefer` with a certificate, else
    /// `disable`; `TLS_ENABLED=true` raises it to at least `prefer`).
    pub client_tls_sslmode: ClientTlsMode,
    /// TLS towards PostgreSQL: the default mode (pools may override it) and the files.
    pub server_tls: ServerTls,
    /// OTLP collector for traces: `http://host:4318` (HTTP/protobuf) or `grpc://host:4317`
    /// / any `:4317` (gRPC); `None` = no tracing. Applied at start.
    pub otel_endpoint: Option<String>,
    /// One debug line per statement (pool, user, shards, duration, rows, text); reloadable.
    pub log_queries: bool,
    /// With `log_queries`: Bind parameter values too (default false: they may be personal data).
    pub log_parameters: bool,
    /// Identifies this router instance in 2PC transaction names; `None` = random at start.
    pub instance_id: Option<String>,
    /// PgBouncer's `server_reset_query_always`: in transaction and statement mode every
    /// server connection is reset (`DISCARD ALL`) before another client uses it, not only
    /// after statements that leave session state (default false).
    pub server_reset_query_always: bool,
    /// PgBouncer's `client_login_timeout`: a client that has not finished logging in by
    /// then is disconnected (default 60 s).
    pub client_login_timeout: Duration,
    /// PgBouncer's `max_client_conn`: client connections accepted at once, logins
    /// included (default 10,000); the next one gets 53300.
    pub max_client_conn: usize,
    /// Largest message a client may send, in bytes (default 1 GiB, PostgreSQL's own
    /// limit); a larger one ends the connection with 08P01.
    pub max_message_size: usize,
    /// Failed logins per client address per minute before further logins from that
    /// address are refused for the rest of the minute (default 20; 0 = no limit).
    pub client_auth_failure_limit: usize,
    /// Address the HTTP listener (`/metrics`, `/health`, `/ready`) binds to (default:
    /// `host`).
    pub metrics_host: Option<String>,
    /// When set, `/metrics` requires `Authorization: Bearer <token>` (`/health` and
    /// `/ready` stay open for probes).
    pub metrics_token: Option<String>,
    /// Answer a server's request for a cleartext password (default true, but false when
    /// TLS is on towards clients or servers: then such servers are refused, so the password
    /// never crosses the network in the clear).
    pub allow_server_cleartext_password: bool,
    /// PgBouncer's `max_prepared_statements`: router-named statements kept prepared on
    /// one server connection; past it the least recently used is closed (default 200).
    pub max_prepared_statements: usize,
    /// Bounds on waits and dead peers (`query_timeout`, `tcp_keepalive`, ...): `bounds.rs`.
    pub bounds: crate::bounds::Bounds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    /// PEM chain: the leaf first, then intermediates (served whole).
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// `tls_client_ca_certificate` / `TLS_CA_PATH`: CA bundle for client certificates.
    pub ca_path: Option<PathBuf>,
}

/// PgBouncer's `client_tls_sslmode` values, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientTlsMode {
    /// SSLRequest answered `N`.
    Disable,
    /// TLS offered, plaintext accepted (PgBouncer's `allow` and `prefer` behave alike).
    Allow,
    Prefer,
    /// Plaintext logins get 28000.
    Require,
    /// TLS with a client certificate signed by `tls_client_ca_certificate`.
    VerifyCa,
    /// As `VerifyCa` (PgBouncer checks no client name either).
    VerifyFull,
}

impl ClientTlsMode {
    pub fn requires_tls(self) -> bool {
        self >= ClientTlsMode::Require
    }
    pub fn requires_client_cert(self) -> bool {
        self >= ClientTlsMode::VerifyCa
    }
}

/// libpq's `sslmode` values towards PostgreSQL, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerTlsMode {
    Disable,
    /// Plaintext first; TLS (not verified) only when the server refuses the plaintext
    /// login with an error before authentication succeeds, as libpq's `allow` does
    /// (e.g. a pg_hba.conf with only `hostssl` lines for the role).
    Allow,
    /// TLS when the server accepts it, else plaintext; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// The certificate chains to `server_tls_ca_file`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the server's host (DNS name or IP SAN).
    VerifyFull,
}

impl ServerTlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerTlsMode::Disable => "disable",
            ServerTlsMode::Allow => "allow",
            ServerTlsMode::Prefer => "prefer",
            ServerTlsMode::Require => "require",
            ServerTlsMode::VerifyCa => "verify-ca",
            ServerTlsMode::VerifyFull => "verify-full",
        }
    }
}

/// TLS towards PostgreSQL servers (`server_tls_*` keys of `[general]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTls {
    /// Default for pools that set none (default `prefer`).
    pub sslmode: ServerTlsMode,
    /// CA bundle that server certificates must chain to (needed by verify-ca/verify-full).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for servers that ask for one (both or neither).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Transaction,
    Session,
    Statement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancingMode {
    Random,
    RoundRobin,
    /// Least outstanding connections (`loc`).
    LeastOutstanding,
}

/// Where reads may go by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRole {
    Any,
    Primary,
    Replica,
}

/// A server's configured role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
    /// Discovered with `pg_is_in_recovery()`; follows promotions.
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardingFunction {
    /// PostgreSQL `PARTITION BY HASH` (`pg_bigint_hash` is PgCat's name for it).
    PostgresHash,
}

/// One logical database.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub pool_mode: PoolMode,
    pub load_balancing_mode: LoadBalancingMode,
    pub default_role: DefaultRole,
    /// Default true.
    pub query_parser_enabled: bool,
    /// Default: `[query_routing] read_write_split` (true).
    pub query_parser_read_write_splitting: bool,
    /// Default true (PgCat's documented default).
    pub primary_reads_enabled: bool,
    pub sharding_function: ShardingFunction,
    /// Users of this pool, unique by username; never empty.
    pub users: Vec<User>,
    /// Shards in order: `shards[i]` is shard number `i`; never empty.
    pub shards: Vec<Shard>,
    /// Per-pool overrides of the general timeouts (already resolved: always set).
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub server_lifetime: Duration,
    /// PgBouncer's `max_db_client_connections`: clients of this pool at once (0 = no limit).
    pub max_db_client_connections: usize,
    /// TLS towards this pool's servers (default: `[general] server_tls_sslmode`).
    pub server_tls_sslmode: ServerTlsMode,
}

/// How a user's clients authenticate when that is not implied by the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// No password asked (PgBouncer's `auth_type = trust`): explicit, never a default.
    Trust,
}

/// Client credential as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// No password: trust.
    None,
    Plain(String),
    /// `md5` + hex(md5(password || username)), as in pg_authid.
    Md5(String),
    /// A `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` verifier.
    Scram(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub username: String,
    /// What clients must present.
    pub password: Secret,
    /// Credentials the router uses towards PostgreSQL (default: the same username and plain password).
    pub server_username: String,
    pub server_password: Option<String>,
    /// At least 1 (default: the pool's `max_pool_size`, else 10).
    pub pool_size: usize,
    /// At most `pool_size` (default: the pool's `min_pool_size`, else 0).
    pub min_pool_size: usize,
    /// Per-user pool mode override.
    pub pool_mode: Option<PoolMode>,
    pub statement_timeout: Option<Duration>,
    /// PgBouncer's `max_user_client_connections`: clients of this user (in this pool)
    /// at once (0 = no limit).
    pub max_user_client_connections: usize,
    /// `auth_type = "trust"`: clients log in without a password. A user with no
    /// password and no explicit trust cannot log in at all (no silent trust).
    pub trust: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Shard {
    pub database: String,
    /// At least one; at most one `Primary` (zero allowed only when some are `Auto`).
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub role: Role,
    /// Load-balancing weight (default 1).
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryRouting {
    pub read_write_split: bool,
    pub sticky_transactions: bool,
    pub max_replica_lag: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    BigInt,
    Integer,
    SmallInt,
    Text,
    Uuid,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShardedTable {
    /// Table name as written (may be schema-qualified); matched case-insensitively on the unqualified part.
    pub name: String,
    pub column: String,
    pub data_type: KeyType,
    /// `None` = every pool with more than one shard.
    pub pool: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sharding {
    /// Default true.
    pub enabled: bool,
    pub sharding_function: ShardingFunction,
    /// Includes the tables declared with a pool's `automatic_sharding_key`.
    pub tables: Vec<ShardedTable>,
    pub two_phase_commit: TwoPhaseCommit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TwoPhaseCommit {
    /// Default true.
    pub enabled: bool,
    /// `timeout_seconds`, default 30 s, at least 1 s.
    pub timeout: Duration,
    /// `cleanup_interval_seconds`, default 60 s, at least 1 s.
    pub cleanup_interval: Duration,
    /// Opt-in: multi-shard writes without 2PC commit shard by shard (not atomic).
    pub best_effort: bool,
}

/// Where the gateway's token-verification keys come from (never both).
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayKeys {
    /// A JWKS document (an identity provider's `jwks_uri` saved to a file).
    JwksFile(PathBuf),
    /// A shared secret: HS256 tokens only.
    Hs256Secret(String),
}

/// `[gateway]` (SPEC §9): applications log in with a JWT as their password.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    /// Listener port (default 5433; env `PGDOG_GATEWAY_PORT`; 0 = OS-assigned).
    pub port: u16,
    /// The pool gateway sessions use (an existing pool).
    pub pool: String,
    pub keys: GatewayKeys,
    /// Tokens' `iss` must equal this exactly.
    pub issuer: String,
    /// Tokens' `aud` (string or list) must contain one of these; at least one.
    pub audience: Vec<String>,
    /// The pool user whose server connections every gateway session uses.
    pub user: String,
    /// Claim naming the database role each transaction runs as (default `role`).
    pub role_claim: String,
    /// Claim whose value is the shard key the session is pinned to.
    pub tenant_claim: Option<String>,
    /// Clock skew allowed for `exp`, `nbf` and `iat` (default 30 s).
    pub leeway: Duration,
    /// Gateway sessions of one tenant at once; the next login gets 53300.
    pub max_connections_per_tenant: Option<usize>,
}
