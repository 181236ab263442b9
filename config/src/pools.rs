//! `[pools.<name>]`: one logical database, its users and its shards.
//!
//! A setting is resolved as: the pool's own key, else the same key written inside one
//! of its shard tables (seed 004, see `shards`), else `[general]`, else
//! `[query_routing]`/`[sharding]`, else the built-in default.

use crate::accepted;
use crate::general::PoolDefaults;
use crate::model::{
    DefaultRole, LoadBalancingMode, Pool, PoolMode, ShardedTable, ShardingFunction,
};
use crate::model::{General, KeyType, QueryRouting};
use crate::reader::{Ctx, Section, Span};
use crate::routing::TableDecl;
use crate::shards::{self, RawShard};
use crate::users::{parse_user, Dialect, UserDefaults};
use std::collections::BTreeMap;

/// What later stages (users.toml, validation) need to know about a pool's source.
pub(crate) struct PoolSite {
    pub span: Span,
    pub user_defaults: UserDefaults,
}

pub(crate) struct ParsedPools {
    pub pools: BTreeMap<String, Pool>,
    pub sites: BTreeMap<String, PoolSite>,
    /// From `automatic_sharding_key`.
    pub tables: Vec<TableDecl>,
}

/// Inherited settings every pool starts from.
pub(crate) struct Inherited<'a> {
    pub general: &'a General,
    pub defaults: &'a PoolDefaults,
    pub query_routing: &'a QueryRouting,
    pub sharding_function: ShardingFunction,
}

pub(crate) fn parse_pools(cx: &mut Ctx, sec: Option<Section>, inh: &Inherited) -> ParsedPools {
    let mut out = ParsedPools {
        pools: BTreeMap::new(),
        sites: BTreeMap::new(),
        tables: Vec::new(),
    };
    let Some(sec) = sec else { return out };
    for (name, pool_sec) in pool_entries(cx, sec) {
        if let Some((pool, site, tables)) = parse_pool(cx, name.clone(), pool_sec, inh) {
            out.pools.insert(name.clone(), pool);
            out.sites.insert(name, site);
            out.tables.extend(tables);
        }
    }
    out
}

/// The `[pools.<name>]` children of `[pools]`, each a table.
fn pool_entries<'a>(cx: &mut Ctx, mut sec: Section<'a>) -> Vec<(String, Section<'a>)> {
    let mut out = Vec::new();
    for name in sec.keys() {
        if let Some(s) = sec.section(cx, &name) {
            out.push((name, s));
        }
    }
    sec.finish(cx);
    out
}

fn parse_pool(
    cx: &mut Ctx,
    name: String,
    mut sec: Section,
    inh: &Inherited,
) -> Option<(Pool, PoolSite, Vec<TableDecl>)> {
    let own = crate::general::read_pool_settings(&mut sec, cx);
    let database = sec.string(cx, "database").filter(|d| !d.trim().is_empty());
    let connect_timeout = sec.millis(cx, "connect_timeout");
    let idle_timeout = sec
        .millis(cx, "idle_timeout")
        .or_else(|| sec.millis(cx, "server_idle_timeout"));
    let server_lifetime = sec.millis(cx, "server_lifetime");
    let max_db_client_connections = sec.count(cx, "max_db_client_connections", 0);
    let server_tls_sslmode = crate::tls::server_mode(&mut sec, cx);
    if let Some(mode) = server_tls_sslmode {
        let span = sec.at("server_tls_sslmode");
        crate::tls::check_server_ca(cx, span, &sec.name(), mode, inh.general);
    }
    let mut user_defaults = UserDefaults::default();
    if let Some(v) = sec.count(cx, "max_pool_size", 1) {
        user_defaults.pool_size = v;
    }
    if let Some(v) = sec.count(cx, "min_pool_size", 0) {
        user_defaults.min_pool_size = v;
    }

    let mut tables = Vec::new();
    if let Some(key) = sec.string(cx, "automatic_sharding_key") {
        let span = sec.value_span("automatic_sharding_key");
        let cleaned = key.replace('"', "");
        match cleaned.rsplit_once('.') {
            Some((table, column)) if !table.trim().is_empty() && !column.trim().is_empty() => {
                tables.push(TableDecl {
                    table: ShardedTable {
                        name: table.trim().to_string(),
                        column: column.trim().to_string(),
                        data_type: KeyType::BigInt,
                        pool: Some(name.clone()),
                    },
                    span: span.clone(),
                    pool_span: span,
                    shards: None,
                    origin: format!("key \"automatic_sharding_key\" in {}", sec.name()),
                });
            }
            _ => cx.error(
                span,
                format!(
                    "key \"automatic_sharding_key\" in {}: \"{key}\" must be \"table.column\"",
                    sec.name()
                ),
            ),
        }
    }

    let mut users = Vec::new();
    for entry in sec.entries(cx, "users") {
        let mut u = entry.section;
        if let Some(user) = parse_user(cx, &mut u, Dialect::Pool, user_defaults) {
            if users
                .iter()
                .any(|o: &crate::model::User| o.username == user.username)
            {
                cx.error(
                    u.value_span("username"),
                    format!(
                        "key \"username\" in {}: user \"{}\" is already defined in pool \"{name}\"",
                        u.name(),
                        user.username
                    ),
                );
            } else {
                users.push(user);
            }
        }
        u.accept(crate::accepted::USER);
        u.finish(cx);
    }

    let shards_span = sec.at("shards");
    let has_shards = sec.has("shards");
    let mut raw: Vec<RawShard> = Vec::new();
    let mut numbers_ok = true;
    for (i, entry) in sec.entries(cx, "shards").into_iter().enumerate() {
        let number = match &entry.label {
            None => Some(i),
            Some(label) => match label.parse::<usize>() {
                Ok(n) if label.chars().all(|c| c.is_ascii_digit()) => Some(n),
                _ => {
                    cx.error(
                        entry.label_span.clone(),
                        format!(
                            "[{}]: shard key \"{label}\" is not a number; shards are numbered 0, 1, 2, ...",
                            entry.section.path
                        ),
                    );
                    numbers_ok = false;
                    None
                }
            },
        };
        let label_span = entry.label_span.clone();
        let shard = shards::parse_shard(cx, entry, number.unwrap_or(usize::MAX));
        if let Some(n) = number {
            if let Some(prev) = raw.iter().find(|r| r.number == n) {
                cx.error(
                    label_span.or_else(|| shard.span.clone()),
                    format!(
                        "{}: duplicate shard number {n} (also {})",
                        shard.name, prev.name
                    ),
                );
                numbers_ok = false;
                continue;
            }
            raw.push(shard);
        }
    }
    raw.sort_by_key(|r| r.number);
    if numbers_ok {
        if let Some(missing) = (0..raw.len()).find(|i| raw[*i].number != *i) {
            let found = raw
                .iter()
                .map(|r| r.number.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            cx.error(
                shards_span.clone(),
                format!(
                    "[pools.{name}.shards]: shard numbers must be contiguous from 0: shard {missing} is missing (found {found})"
                ),
            );
        }
    }
    if !has_shards {
        cx.error(
            sec.span.clone(),
            format!("{}: pool \"{name}\" has no shards; add [pools.{name}.shards.0] with database and servers", sec.name()),
        );
    }

    // Pool settings written inside shard tables (seed 004).
    let settings = lift_shard_settings(cx, &name, own, &raw);

    let default_database = database.clone().unwrap_or_else(|| name.clone());
    let raw = merge_role_shards(cx, &name, sec.span.clone(), raw, &default_database);
    for r in &raw {
        shards::check_servers(cx, r);
    }

    let d = inh.defaults;
    let g = inh.general;
    let pool = Pool {
        name: name.clone(),
        pool_mode: settings
            .pool_mode
            .or(d.pool_mode)
            .unwrap_or(PoolMode::Transaction),
        load_balancing_mode: settings
            .load_balancing_mode
            .or(d.load_balancing_mode)
            .unwrap_or(LoadBalancingMode::Random),
        default_role: settings
            .default_role
            .or(d.default_role)
            .unwrap_or(DefaultRole::Any),
        query_parser_enabled: settings
            .query_parser_enabled
            .or(d.query_parser_enabled)
            .unwrap_or(true),
        query_parser_read_write_splitting: settings
            .query_parser_read_write_splitting
            .or(d.query_parser_read_write_splitting)
            .unwrap_or(inh.query_routing.read_write_split),
        primary_reads_enabled: settings
            .primary_reads_enabled
            .or(d.primary_reads_enabled)
            .unwrap_or(true),
        sharding_function: settings
            .sharding_function
            .or(d.sharding_function)
            .unwrap_or(inh.sharding_function),
        users,
        shards: shards::finish_shards(raw, &default_database),
        connect_timeout: connect_timeout.unwrap_or(g.connect_timeout),
        idle_timeout: idle_timeout.unwrap_or(g.idle_timeout),
        server_lifetime: server_lifetime.unwrap_or(g.server_lifetime),
        max_db_client_connections: max_db_client_connections.unwrap_or(0),
        server_tls_sslmode: server_tls_sslmode.unwrap_or(g.server_tls.sslmode),
    };
    let site = PoolSite {
        span: sec.span.clone(),
        user_defaults,
    };
    sec.accept(accepted::POOL);
    sec.finish(cx);
    Some((pool, site, tables))
}

/// Applies pool settings found in shard tables; conflicting values are errors.
fn lift_shard_settings(
    cx: &mut Ctx,
    pool: &str,
    own: PoolDefaults,
    raw: &[RawShard],
) -> PoolDefaults {
    let mut merged = own;
    for shard in raw.iter().filter(|r| !r.lifted_keys.is_empty()) {
        let mut conflict = false;
        macro_rules! lift {
            ($field:ident) => {
                if let Some(v) = shard.lifted.$field {
                    match merged.$field {
                        None => merged.$field = Some(v),
                        Some(existing) if existing != v => conflict = true,
                        Some(_) => {}
                    }
                }
            };
        }
        lift!(pool_mode);
        lift!(load_balancing_mode);
        lift!(default_role);
        lift!(query_parser_enabled);
        lift!(query_parser_read_write_splitting);
        lift!(primary_reads_enabled);
        lift!(sharding_function);
        let keys = shard.lifted_keys.join(", ");
        if conflict {
            cx.error(
                shard.span.clone(),
                format!(
                    "{}: pool settings ({keys}) written in a shard table conflict with the values of pool \"{pool}\" or another shard; write them once under [pools.{pool}]",
                    shard.name
                ),
            );
        } else {
            cx.warn(
                shard.span.clone(),
                format!(
                    "{}: {keys} are pool settings; TOML puts keys written after a [table] header into that table, so they are applied to pool \"{pool}\" (PgCat ignored them here). Move them under [pools.{pool}]",
                    shard.name
                ),
            );
        }
    }
    merged
}

/// Seed 000: shards that each declare a shard-level `role` and use the same database
/// are one primary/replica cluster written as "role shards": merge them into one shard.
fn merge_role_shards(
    cx: &mut Ctx,
    pool: &str,
    pool_span: Span,
    raw: Vec<RawShard>,
    default_database: &str,
) -> Vec<RawShard> {
    let db = |r: &RawShard| {
        r.database
            .clone()
            .unwrap_or_else(|| default_database.to_string())
    };
    let mergeable = raw.len() > 1
        && raw.iter().all(|r| r.role_key.is_some())
        && raw.iter().all(|r| db(r) == db(&raw[0]));
    if !mergeable {
        return raw;
    }
    cx.warn(
        raw[0].span.clone().or(pool_span),
        format!(
            "pool \"{pool}\": its {} shards each declare a shard-level `role` and use the same database \"{}\": treated as one shard with all their servers (primary and replicas). Write them as one shard: servers = [[\"host\", port, \"primary\"], [\"host\", port, \"replica\"]]",
            raw.len(),
            db(&raw[0])
        ),
    );
    let mut it = raw.into_iter();
    let Some(mut first) = it.next() else {
        return Vec::new();
    };
    for r in it {
        first.servers.extend(r.servers);
        first.declared_servers = match (first.declared_servers, r.declared_servers) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
    first.number = 0;
    vec![first]
}
