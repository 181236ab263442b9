//! `[general]`: listeners, admin credentials, timeouts, logging, TLS files.
//!
//! Defaults are SPEC §2's. PgCat names are honoured with PgCat's meaning
//! (`prometheus_exporter_port` is our `metrics_port`; `tls_certificate` and
//! `tls_private_key` are the TLS files). Pool settings written here (seed 000 puts
//! `pool_mode` and the query parser switches in `[general]`) become the default of
//! every pool.

use crate::accepted;
use crate::choices;
use crate::model::{
    DefaultRole, General, LoadBalancingMode, LogFormat, PoolMode, ShardingFunction,
};
use crate::reader::{Ctx, Section};
use std::time::Duration;

/// Pool settings that may be given once for all pools.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolDefaults {
    pub pool_mode: Option<PoolMode>,
    pub load_balancing_mode: Option<LoadBalancingMode>,
    pub default_role: Option<DefaultRole>,
    pub query_parser_enabled: Option<bool>,
    pub query_parser_read_write_splitting: Option<bool>,
    pub primary_reads_enabled: Option<bool>,
    pub sharding_function: Option<ShardingFunction>,
}

/// What `[general]` said that is resolved later, together with the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileGeneral {
    pub tls: crate::tls::FileTls,
    /// `admin_port` / `metrics_port` (or `prometheus_exporter_port`) written explicitly.
    pub admin_port_set: bool,
    pub metrics_port_set: bool,
}

pub(crate) fn default_general() -> General {
    General {
        host: "0.0.0.0".to_string(),
        port: 5432,
        admin_port: 6432,
        metrics_port: 9090,
        admin_username: "admin".to_string(),
        admin_password: String::new(),
        connect_timeout: Duration::from_millis(5_000),
        idle_timeout: Duration::from_millis(600_000),
        server_lifetime: Duration::from_millis(3_600_000),
        healthcheck_delay: Duration::from_millis(30_000),
        healthcheck_timeout: Duration::from_millis(1_000),
        ban_time: Duration::from_secs(60),
        shutdown_timeout: Duration::from_millis(60_000),
        worker_threads: None,
        log_level: "info".to_string(),
        log_format: LogFormat::Text,
        tls: None,
        client_tls_sslmode: crate::model::ClientTlsMode::Disable,
        server_tls: crate::model::ServerTls {
            sslmode: crate::model::ServerTlsMode::Prefer,
            ca_file: None,
            cert_file: None,
            key_file: None,
        },
        otel_endpoint: None,
        log_queries: false,
        log_parameters: false,
        instance_id: None,
        server_reset_query_always: false,
        client_login_timeout: Duration::from_secs(60),
        max_client_conn: 10_000,
        max_message_size: 1 << 30,
        client_auth_failure_limit: 20,
        metrics_host: None,
        metrics_token: None,
        allow_server_cleartext_password: true,
        max_prepared_statements: 200,
        bounds: crate::bounds::Bounds::default(),
    }
}

/// Reads the pool settings that may appear in `[general]` or in a pool.
pub(crate) fn read_pool_settings(sec: &mut Section, cx: &mut Ctx) -> PoolDefaults {
    PoolDefaults {
        pool_mode: sec.choice(cx, "pool_mode", choices::POOL_MODE),
        load_balancing_mode: sec.choice(cx, "load_balancing_mode", choices::LOAD_BALANCING),
        default_role: sec.choice(cx, "default_role", choices::DEFAULT_ROLE),
        query_parser_enabled: sec.bool(cx, "query_parser_enabled"),
        query_parser_read_write_splitting: sec.bool(cx, "query_parser_read_write_splitting"),
        primary_reads_enabled: sec.bool(cx, "primary_reads_enabled"),
        sharding_function: crate::routing::sharding_function(sec, cx, "sharding_function"),
    }
}

pub(crate) fn parse_general(
    cx: &mut Ctx,
    sec: Option<Section>,
) -> (General, PoolDefaults, FileGeneral) {
    let mut g = default_general();
    let Some(mut sec) = sec else {
        return (g, PoolDefaults::default(), FileGeneral::default());
    };
    let admin_port_set = sec.has("admin_port");
    let metrics_port_set = sec.has("metrics_port") || sec.has("prometheus_exporter_port");

    if let Some(v) = sec.string(cx, "host") {
        g.host = v;
    }
    if let Some(v) = sec.port(cx, "port", true) {
        g.port = v;
    }
    if let Some(v) = sec.port(cx, "admin_port", true) {
        g.admin_port = v;
    }
    let metrics = sec.port(cx, "metrics_port", true);
    let prometheus = sec.port(cx, "prometheus_exporter_port", true);
    match (metrics, prometheus) {
        (Some(m), Some(p)) if m != p => cx.error(
            sec.at("prometheus_exporter_port"),
            format!(
                "key \"prometheus_exporter_port\" in {}: conflicts with metrics_port ({m} vs {p}); they are the same setting, keep one",
                sec.name()
            ),
        ),
        (Some(m), _) | (None, Some(m)) => g.metrics_port = m,
        (None, None) => {}
    }
    if let Some(v) = sec.string(cx, "admin_username") {
        g.admin_username = v;
    }
    if let Some(v) = sec.string(cx, "admin_password") {
        g.admin_password = v;
    }
    for (key, slot) in [
        ("connect_timeout", &mut g.connect_timeout),
        ("idle_timeout", &mut g.idle_timeout),
        ("server_lifetime", &mut g.server_lifetime),
        ("healthcheck_delay", &mut g.healthcheck_delay),
        ("healthcheck_timeout", &mut g.healthcheck_timeout),
        ("shutdown_timeout", &mut g.shutdown_timeout),
    ] {
        if let Some(v) = sec.millis(cx, key) {
            *slot = v;
        }
    }
    if let Some(v) = sec.seconds(cx, "ban_time") {
        g.ban_time = v;
    }
    if let Some(v) = sec.count(cx, "worker_threads", 0) {
        g.worker_threads = Some(v);
    }
    if let Some(v) = sec.choice(cx, "log_level", choices::LOG_LEVEL) {
        g.log_level = v.to_string();
    }
    if let Some(v) = sec.choice(cx, "log_format", choices::LOG_FORMAT) {
        g.log_format = v;
    }
    if let Some(v) = sec.bool(cx, "server_reset_query_always") {
        g.server_reset_query_always = v;
    }
    if let Some(v) = sec.seconds(cx, "client_login_timeout") {
        g.client_login_timeout = v;
    }
    if let Some(v) = sec.count(cx, "max_client_conn", 1) {
        g.max_client_conn = v;
    }
    if let Some(v) = sec.count(cx, "max_message_size", 1024) {
        g.max_message_size = v.min(1 << 30);
    }
    if let Some(v) = sec.count(cx, "client_auth_failure_limit", 0) {
        g.client_auth_failure_limit = v;
    }
    g.metrics_host = non_empty(sec.string(cx, "metrics_host"));
    g.metrics_token = non_empty(sec.string(cx, "metrics_token"));
    if let Some(v) = sec
        .count(cx, "max_prepared_statements", 1)
        .or_else(|| sec.count(cx, "prepared_statements_cache_size", 1))
    {
        g.max_prepared_statements = v;
    }
    crate::bounds::read_bounds(&mut sec, cx, &mut g.bounds, &mut g.connect_timeout);
    g.otel_endpoint = non_empty(sec.string(cx, "otel_endpoint"));
    if let Some(e) = &g.otel_endpoint {
        // The transport is chosen by scheme (the router's `otel::endpoint` has the rest of
        // the rule); the exporter has no TLS, so only these two are usable.
        let scheme = e.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("http" | "grpc")) {
            cx.error(
                sec.value_span("otel_endpoint"),
                format!(
                    "key \"otel_endpoint\" in {}: \"{e}\" must be http://host:port (OTLP/HTTP, protobuf; port 4317 means gRPC) or grpc://host:port (OTLP/gRPC); TLS to the collector is not supported",
                    sec.name()
                ),
            );
        }
    }
    if let Some(v) = sec.bool(cx, "log_queries") {
        g.log_queries = v;
    }
    if let Some(v) = sec.bool(cx, "log_parameters") {
        g.log_parameters = v;
    }
    g.instance_id = non_empty(sec.string(cx, "instance_id"));
    if let Some(id) = &g.instance_id {
        // It becomes part of PREPARE TRANSACTION gids: keep it an identifier.
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || id.len() > 32 {
            cx.error(
                sec.value_span("instance_id"),
                format!(
                    "key \"instance_id\" in {}: \"{id}\" must be 1-32 ASCII letters, digits or '_' (it is part of two-phase transaction names)",
                    sec.name()
                ),
            );
        }
    }

    let tls = crate::tls::read_file_tls(&mut sec, cx);
    g.server_tls = crate::tls::read_server_tls(&mut sec, cx);
    let ca_span = sec.at("server_tls_sslmode");
    crate::tls::check_server_ca(cx, ca_span, "[general]", g.server_tls.sslmode, &g);

    let defaults = read_pool_settings(&mut sec, cx);
    sec.accept(accepted::GENERAL);
    sec.finish(cx);
    let file = FileGeneral {
        tls,
        admin_port_set,
        metrics_port_set,
    };
    (g, defaults, file)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}
