//! Keys we accept but do not act on (yet).
//!
//! `orochi.toml` is a superset of PgCat's `pgcat.toml`: a PgCat config must load
//! unchanged, yet unknown keys are errors. These lists are the PgCat (and seed) keys
//! that have no effect in Orochi; everything else PgCat defines is honoured with the
//! same meaning. Keep each list sorted and say why a key is ignored.
//!
//! `[general]`:
//! - `enable_prometheus_exporter`: the HTTP endpoint (`/metrics`, `/health`) always runs.
//!   (`prometheus_exporter_port` *is* honoured: it is `metrics_port`.)
//! - `log_client_connections`, `log_client_disconnections`,
//!   `log_client_parameter_status_changes`: connection events are logged at `debug`.
//! - `autoreload`: reload is explicit (SIGHUP or admin `RELOAD`).
//! - `server_round_robin`, `validate_config`,
//!   `dns_cache_enabled`, `dns_max_ttl`: PgCat tuning knobs with no Orochi equivalent yet.
//! - `prepared_statements`: statement handling is always on. (`prepared_statements_cache_size`
//!   *is* honoured: it is `max_prepared_statements`.)
//!   (`server_tls` and `verify_server_certificate` *are* honoured: see `tls.rs`.)
//! - `auth_query`, `auth_query_user`, `auth_query_password`, `admin_auth_type`:
//!   passthrough authentication is not supported; users are listed in the config.
//! - `automatic_failover`, `failover_timeout` (seed 001): failover is always on: health
//!   checks and bans (`healthcheck_*`, `ban_time`) take a failed server out of rotation.
//! - `default_shard_count` (in `[sharding]`, seed 002): the shard count is the number of
//!   shards each pool lists.
//!
//! `[pools.<name>]`:
//! - `sharding_key_regex`, `shard_id_regex`, `regex_search_limit`: use the
//!   `/* orochi.shard = N */` comment or `SET orochi.shard` instead.
//! - `auth_query`, `auth_query_user`, `auth_query_password`, `query_parser_max_length`,
//!   `cleanup_server_connections`, `log_client_parameter_status_changes`,
//!   `idle_client_in_transaction_timeout`, `default_shard`, `checkout_failure_limit`,
//!   `plugins`: as above.
//! - `prepared_statements_cache_size` (PgCat 1.2 sets it per pool): the one limit is
//!   `[general] max_prepared_statements`, a bound per server connection for every pool.
//!
//! `[pools.<name>.users.<n>]`: `server_lifetime`, `connect_timeout`, `idle_timeout`
//! (per-user overrides; the pool's values apply).
//!
//! `[pools.<name>.shards.<n>]`: `mirrors` (traffic mirroring is not supported);
//! `connect_timeout`, `query_timeout` (seed 001; PgCat ignores these too).
//!
//! Top level: `plugins` (PgCat plugins: query logger, table access, intercept, prewarmer)
//! and `path` (PgCat's own record of the file name).

pub(crate) const ROOT: &[&str] = &["path", "plugins"];

pub(crate) const GENERAL: &[&str] = &[
    "admin_auth_type",
    "auth_query",
    "auth_query_password",
    "auth_query_user",
    "automatic_failover",
    "autoreload",
    "dns_cache_enabled",
    "dns_max_ttl",
    "enable_prometheus_exporter",
    "failover_timeout",
    "log_client_connections",
    "log_client_disconnections",
    "log_client_parameter_status_changes",
    "prepared_statements",
    "server_round_robin",
    "validate_config",
];

pub(crate) const POOL: &[&str] = &[
    "auth_query",
    "auth_query_password",
    "auth_query_user",
    "checkout_failure_limit",
    "cleanup_server_connections",
    "default_shard",
    "idle_client_in_transaction_timeout",
    "log_client_parameter_status_changes",
    "plugins",
    "prepared_statements_cache_size",
    "query_parser_max_length",
    "regex_search_limit",
    "shard_id_regex",
    "sharding_key_regex",
];

pub(crate) const USER: &[&str] = &["connect_timeout", "idle_timeout", "server_lifetime"];

pub(crate) const SHARD: &[&str] = &["connect_timeout", "mirrors", "query_timeout"];

pub(crate) const SHARDING: &[&str] = &["default_shard_count"];
