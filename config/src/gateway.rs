//! `[gateway]` (SPEC §9): the JWT gateway listener, off unless the section is present.
//!
//! Read here with the same located errors as the rest of the file, and checked against
//! the pools once they are known (the pool and its authenticator user must exist, a
//! `tenant_claim` must name the key column of some distributed table of a sharded
//! pool). The key material itself (the JWKS file) is read by the router at start and on
//! every reload, as certificates are: a config check must not depend on a file that an
//! identity provider rotates underneath it.

use crate::model::{Gateway, GatewayKeys, Pool, ShardedTable};
use crate::reader::{Ctx, Section, Span};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use toml_edit::{Item, Value};

/// Default listener port (seed 002's Envoy listened here).
pub const DEFAULT_PORT: u16 = 5433;

/// A parsed `[gateway]` and where to point for cross-section errors.
pub(crate) struct FileGateway {
    pub gateway: Gateway,
    pub pool_span: Span,
    pub user_span: Span,
    pub tenant_span: Span,
}

/// `audience`: a string or a list of strings.
fn audience(sec: &mut Section, cx: &mut Ctx) -> Vec<String> {
    let Some(item) = sec.item("audience") else {
        return Vec::new();
    };
    let bad = |cx: &mut Ctx, sec: &Section| {
        cx.error(
            sec.value_span("audience"),
            format!(
                "key \"audience\" in {}: expected a string or a list of strings",
                sec.name()
            ),
        )
    };
    match item {
        Item::Value(Value::String(s)) => vec![s.value().clone()],
        Item::Value(Value::Array(a)) => {
            let v: Option<Vec<String>> = a.iter().map(|v| v.as_str().map(String::from)).collect();
            match v {
                Some(v) => v,
                None => {
                    bad(cx, sec);
                    Vec::new()
                }
            }
        }
        _ => {
            bad(cx, sec);
            Vec::new()
        }
    }
}

fn required(sec: &mut Section, cx: &mut Ctx, key: &str, what: &str) -> String {
    match sec.string(cx, key).filter(|s| !s.trim().is_empty()) {
        Some(s) => s,
        None => {
            cx.error(
                sec.at(key),
                format!("[gateway]: key \"{key}\" is required ({what})"),
            );
            String::new()
        }
    }
}

pub(crate) fn parse_gateway(cx: &mut Ctx, sec: Option<Section>) -> Option<FileGateway> {
    let mut sec = sec?;
    let port = sec.port(cx, "port", true).unwrap_or(DEFAULT_PORT);
    let pool = required(&mut sec, cx, "pool", "the pool the gateway serves");
    let user = required(
        &mut sec,
        cx,
        "user",
        "the pool user whose server connections gateway sessions use",
    );
    let issuer = required(&mut sec, cx, "issuer", "tokens must name this exact `iss`");
    let jwks = sec.string(cx, "jwks_file").filter(|s| !s.trim().is_empty());
    let secret = sec
        .string(cx, "hs256_secret")
        .filter(|s| !s.trim().is_empty());
    let keys = match (jwks, secret) {
        (Some(path), None) => GatewayKeys::JwksFile(PathBuf::from(path)),
        (None, Some(s)) => {
            if s.len() < 32 {
                cx.error(
                    sec.value_span("hs256_secret"),
                    "[gateway]: key \"hs256_secret\" must be at least 32 bytes (RFC 7518 §3.2: an HS256 key at least as long as the hash)",
                );
            }
            GatewayKeys::Hs256Secret(s)
        }
        (Some(_), Some(_)) => {
            cx.error(
                sec.at("hs256_secret"),
                "[gateway]: jwks_file and hs256_secret are both set; use one (a JWKS file for an identity provider's keys, or an HS256 secret), never both",
            );
            GatewayKeys::Hs256Secret(String::new())
        }
        (None, None) => {
            cx.error(
                sec.span.clone(),
                "[gateway]: set jwks_file (the identity provider's public keys) or hs256_secret",
            );
            GatewayKeys::Hs256Secret(String::new())
        }
    };
    let audience = audience(&mut sec, cx);
    if !sec.has("audience") {
        cx.error(
            sec.span.clone(),
            "[gateway]: key \"audience\" is required (tokens must name it in `aud`); a string or a list",
        );
    } else if audience.is_empty() || audience.iter().any(|a| a.trim().is_empty()) {
        cx.error(
            sec.value_span("audience"),
            "[gateway]: key \"audience\" needs at least one non-empty value",
        );
    }
    let role_claim = sec
        .string(cx, "role_claim")
        .unwrap_or_else(|| "role".into());
    let tenant_claim = sec
        .string(cx, "tenant_claim")
        .filter(|s| !s.trim().is_empty());
    let leeway = sec
        .int_in(cx, "leeway_seconds", 0, 3600)
        .map(|s| Duration::from_secs(s.unsigned_abs()))
        .unwrap_or(Duration::from_secs(30));
    let max_per_tenant = sec.count(cx, "max_connections_per_tenant", 1);
    let out = FileGateway {
        pool_span: sec.at("pool"),
        user_span: sec.at("user"),
        tenant_span: sec.at("tenant_claim"),
        gateway: Gateway {
            port,
            pool,
            keys,
            issuer,
            audience,
            user,
            role_claim,
            tenant_claim,
            leeway,
            max_connections_per_tenant: max_per_tenant,
        },
    };
    sec.finish(cx);
    Some(out)
}

/// Cross-section checks, once pools and distributed tables are known.
pub(crate) fn check(
    cx: &mut Ctx,
    g: &FileGateway,
    pools: &BTreeMap<String, Pool>,
    tables: &[ShardedTable],
) {
    let gw = &g.gateway;
    let Some(pool) = pools.get(&gw.pool) else {
        if !gw.pool.is_empty() {
            let known: Vec<String> = pools.keys().map(|k| format!("\"{k}\"")).collect();
            cx.error(
                g.pool_span.clone(),
                format!(
                    "[gateway]: unknown pool \"{}\"; pools are: {}",
                    gw.pool,
                    known.join(", ")
                ),
            );
        }
        return;
    };
    if !gw.user.is_empty() && !pool.users.iter().any(|u| u.username == gw.user) {
        cx.error(
            g.user_span.clone(),
            format!(
                "[gateway]: pool \"{}\" has no user \"{}\"; the gateway uses that user's server connections (add it to [pools.{}.users])",
                gw.pool, gw.user, gw.pool
            ),
        );
    }
    if let Some(claim) = &gw.tenant_claim {
        let keyed = tables.iter().any(|t| {
            t.column.eq_ignore_ascii_case(claim) && t.pool.as_ref().is_none_or(|p| p == &gw.pool)
        });
        if pool.shards.len() > 1 && !keyed {
            cx.error(
                g.tenant_span.clone(),
                format!(
                    "[gateway]: tenant_claim \"{claim}\" names no distributed table's key column in pool \"{}\"; the claim's value is the shard key of the tables distributed by a column of that name",
                    gw.pool
                ),
            );
        }
    }
}
