//! `[pools.X.shards.N]` / `[[pools.X.shards]]`: numbering, servers, role checks.
//!
//! Two PgCat-era layouts found in the seeds are reinterpreted (with a warning) rather
//! than rejected, because PgCat accepted them and their authors' intent is clear:
//! - pool settings written after a shard header (seed 004: `load_balancing_mode = "loc"`
//!   below `servers = [...]`) land in the shard table by TOML's rules; PgCat silently
//!   ignored them there, we apply them to the pool (see `pools`);
//! - shards that each carry a shard-level `role` and name the same database (seed 000:
//!   one "primary shard", one "replica shard") describe one replicated cluster, not a
//!   sharded one; they are merged into a single shard.

use crate::accepted;
use crate::choices;
use crate::general::{read_pool_settings, PoolDefaults};
use crate::model::{Role, Server, Shard};
use crate::reader::{value_type_name, Ctx, Entry, Span};
use toml_edit::Value;

/// A shard as written, before numbering checks and merging.
pub(crate) struct RawShard {
    pub number: usize,
    pub span: Span,
    pub name: String,
    pub database: Option<String>,
    pub servers: Vec<(Server, Span)>,
    pub servers_span: Span,
    /// Number of elements in `servers` when it is an array (malformed ones included).
    pub declared_servers: Option<usize>,
    /// The PgCat-era shard-level `role` key, if present.
    pub role_key: Option<Role>,
    /// Pool settings written inside this shard table.
    pub lifted: PoolDefaults,
    pub lifted_keys: Vec<&'static str>,
}

const LIFTABLE: &[&str] = &[
    "pool_mode",
    "load_balancing_mode",
    "default_role",
    "query_parser_enabled",
    "query_parser_read_write_splitting",
    "primary_reads_enabled",
    "sharding_function",
];

/// Parses one shard entry; `number` comes from its key or array position.
pub(crate) fn parse_shard(cx: &mut Ctx, entry: Entry, number: usize) -> RawShard {
    let mut sec = entry.section;
    let database = sec.string(cx, "database").filter(|d| !d.trim().is_empty());
    let role_key = sec.choice(cx, "role", choices::ROLE);
    let servers_span = sec.value_span("servers");
    let mut servers = Vec::new();
    let mut declared_servers = None;
    match sec.item("servers") {
        None => cx.error(
            sec.span.clone(),
            format!("{}: missing required key \"servers\"", sec.name()),
        ),
        Some(item) => match item.as_array() {
            None => cx.error(
                servers_span.clone(),
                format!(
                    "key \"servers\" in {}: expected an array of [\"host\", port, \"role\"], found {}",
                    sec.name(),
                    crate::reader::type_name(item)
                ),
            ),
            Some(arr) => {
                declared_servers = Some(arr.len());
                for (i, v) in arr.iter().enumerate() {
                    if let Some(server) = parse_server(cx, &sec.name(), i, v) {
                        servers.push((server, v.span()));
                    }
                }
            }
        },
    }
    // In document order, for the warning.
    let lifted_keys: Vec<&'static str> = sec
        .keys()
        .iter()
        .filter_map(|k| LIFTABLE.iter().copied().find(|l| l == k))
        .collect();
    let lifted = read_pool_settings(&mut sec, cx);
    sec.accept(accepted::SHARD);
    let raw = RawShard {
        number,
        span: sec.span.clone(),
        name: sec.name(),
        database,
        servers,
        servers_span,
        declared_servers,
        role_key,
        lifted,
        lifted_keys,
    };
    sec.finish(cx);
    raw
}

/// `["host", port, "role"]` with an optional 4th element, the load-balancing weight.
fn parse_server(cx: &mut Ctx, shard: &str, i: usize, v: &Value) -> Option<Server> {
    let shape = || {
        format!(
            "key \"servers\" in {shard}: server {i} must be [\"host\", port, \"role\"] or [\"host\", port, \"role\", weight]"
        )
    };
    let Some(parts) = v.as_array() else {
        cx.error(
            v.span(),
            format!("{}, found {}", shape(), value_type_name(v)),
        );
        return None;
    };
    if parts.len() < 3 || parts.len() > 4 {
        cx.error(
            v.span(),
            format!("{}, found {} elements", shape(), parts.len()),
        );
        return None;
    }
    let at = |n: usize| parts.get(n).and_then(|p| p.span()).or_else(|| v.span());
    let mut ok = true;
    let host = match parts.get(0).and_then(|p| p.as_str()) {
        Some(h) if !h.trim().is_empty() => h.trim().to_string(),
        _ => {
            cx.error(
                at(0),
                format!("{}: the host must be a non-empty string", shape()),
            );
            ok = false;
            String::new()
        }
    };
    let port = match parts.get(1).and_then(|p| p.as_integer()) {
        Some(p) => {
            match u16::try_from(p) {
                Ok(p) if p > 0 => p,
                _ => {
                    cx.error(
                    at(1),
                    format!("key \"servers\" in {shard}: server {i}: {p} is not a valid port (1-65535)"),
                );
                    ok = false;
                    0
                }
            }
        }
        None => {
            cx.error(at(1), format!("{}: the port must be an integer", shape()));
            ok = false;
            0
        }
    };
    let role = match parts.get(2).and_then(|p| p.as_str()) {
        Some(r) => match crate::reader::lookup_choice(r, choices::ROLE) {
            Some(role) => role,
            None => {
                cx.error(
                    at(2),
                    format!(
                        "key \"servers\" in {shard}: server {i}: unknown role \"{r}\"; expected one of: {}",
                        crate::reader::list_choices(choices::ROLE)
                    ),
                );
                ok = false;
                Role::Replica
            }
        },
        None => {
            cx.error(at(2), format!("{}: the role must be a string", shape()));
            ok = false;
            Role::Replica
        }
    };
    let weight = match parts.get(3) {
        None => 1,
        Some(w) => match w.as_integer().and_then(|w| u32::try_from(w).ok()) {
            Some(w) if w > 0 => w,
            _ => {
                cx.error(
                    at(3),
                    format!("key \"servers\" in {shard}: server {i}: the weight must be a positive integer"),
                );
                ok = false;
                1
            }
        },
    };
    ok.then_some(Server {
        host,
        port,
        role,
        weight,
    })
}

/// Checks one shard's servers: non-empty, no duplicates, exactly one primary unless
/// roles are discovered (`auto`).
pub(crate) fn check_servers(cx: &mut Ctx, shard: &RawShard) {
    let at = shard.servers_span.clone().or_else(|| shard.span.clone());
    if shard.servers.is_empty() {
        // A missing or malformed `servers` key (or entry) was reported already.
        if shard.declared_servers == Some(0) {
            cx.error(
                at,
                format!(
                    "key \"servers\" in {}: a shard needs at least one server",
                    shard.name
                ),
            );
        }
        return;
    }
    for (i, (s, span)) in shard.servers.iter().enumerate() {
        if shard.servers[..i]
            .iter()
            .any(|(o, _)| o.host.eq_ignore_ascii_case(&s.host) && o.port == s.port)
        {
            cx.error(
                span.clone(),
                format!(
                    "key \"servers\" in {}: server {}:{} is listed twice",
                    shard.name, s.host, s.port
                ),
            );
        }
    }
    let primaries: Vec<&(Server, Span)> = shard
        .servers
        .iter()
        .filter(|(s, _)| s.role == Role::Primary)
        .collect();
    let has_auto = shard.servers.iter().any(|(s, _)| s.role == Role::Auto);
    if primaries.len() > 1 {
        let list = primaries
            .iter()
            .map(|(s, _)| format!("{}:{}", s.host, s.port))
            .collect::<Vec<_>>()
            .join(", ");
        cx.error(
            primaries[1].1.clone().or(at),
            format!(
                "key \"servers\" in {}: more than one primary ({list}); a shard has exactly one primary (use \"auto\" to follow promotions)",
                shard.name
            ),
        );
    } else if primaries.is_empty() && !has_auto {
        cx.error(
            at,
            format!(
                "key \"servers\" in {}: shard has no primary; mark one server \"primary\", or \"auto\" to discover it with pg_is_in_recovery()",
                shard.name
            ),
        );
    }
}

/// Builds the final shard list (after numbering checks and the seed-000 merge).
pub(crate) fn finish_shards(raw: Vec<RawShard>, default_database: &str) -> Vec<Shard> {
    raw.into_iter()
        .map(|r| Shard {
            database: r.database.unwrap_or_else(|| default_database.to_string()),
            servers: r.servers.into_iter().map(|(s, _)| s).collect(),
        })
        .collect()
}
