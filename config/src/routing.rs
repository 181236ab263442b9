//! `[query_routing]` and `[sharding]` (with `[[sharding.tables]]` and
//! `[sharding.two_phase_commit]`).
//!
//! Only PostgreSQL's own hash partitioning is offered: a key's shard must be the
//! partition `PARTITION BY HASH` would pick (SPEC §3), so PgCat's `sha1` is refused
//! rather than silently routing rows somewhere PostgreSQL would not.

use crate::accepted;
use crate::choices;
use crate::model::{
    KeyType, QueryRouting, ShardedTable, Sharding, ShardingFunction, TwoPhaseCommit,
};
use crate::reader::{lookup_choice, Ctx, Section, Span};
use std::time::Duration;

const SHARDING_FUNCTION: &[(&str, ShardingFunction)] = &[
    ("postgres_hash", ShardingFunction::PostgresHash),
    ("pg_bigint_hash", ShardingFunction::PostgresHash),
];

/// Reads a `sharding_function` key; anything but PostgreSQL hash is an error that says so.
pub(crate) fn sharding_function(
    sec: &mut Section,
    cx: &mut Ctx,
    key: &str,
) -> Option<ShardingFunction> {
    let s = sec.string(cx, key)?;
    let found = lookup_choice(&s, SHARDING_FUNCTION);
    if found.is_none() {
        cx.error(
            sec.value_span(key),
            format!(
                "key \"{key}\" in {}: unsupported sharding function \"{s}\"; only PostgreSQL hash partitioning is supported: \"postgres_hash\" (PgCat name: \"pg_bigint_hash\")",
                sec.name()
            ),
        );
    }
    found
}

pub(crate) fn default_query_routing() -> QueryRouting {
    QueryRouting {
        read_write_split: true,
        sticky_transactions: true,
        max_replica_lag: Duration::from_millis(1_000),
    }
}

pub(crate) fn parse_query_routing(cx: &mut Ctx, sec: Option<Section>) -> QueryRouting {
    let mut q = default_query_routing();
    let Some(mut sec) = sec else { return q };
    if let Some(v) = sec.bool(cx, "read_write_split") {
        q.read_write_split = v;
    }
    if let Some(v) = sec.bool(cx, "sticky_transactions") {
        q.sticky_transactions = v;
    }
    if let Some(v) = sec.millis(cx, "max_replica_lag") {
        q.max_replica_lag = v;
    }
    sec.finish(cx);
    q
}

/// A `[[sharding.tables]]` entry before cross-checking against the pools.
pub(crate) struct TableDecl {
    pub table: ShardedTable,
    /// The entry (or the pool's `automatic_sharding_key`), for duplicate errors.
    pub span: Span,
    /// Where the `pool` key is, for "unknown pool".
    pub pool_span: Span,
    /// Optional declared shard count (`shards = N`), checked against the pool.
    pub shards: Option<(usize, Span)>,
    /// Path for messages, e.g. `[sharding.tables[0]]`.
    pub origin: String,
}

pub(crate) fn default_sharding() -> Sharding {
    Sharding {
        enabled: true,
        sharding_function: ShardingFunction::PostgresHash,
        tables: Vec::new(),
        two_phase_commit: TwoPhaseCommit {
            enabled: true,
            timeout: Duration::from_secs(30),
            cleanup_interval: Duration::from_secs(60),
            best_effort: false,
        },
    }
}

/// Parses `[sharding]`; the tables come back separately for validation against pools.
pub(crate) fn parse_sharding(cx: &mut Ctx, sec: Option<Section>) -> (Sharding, Vec<TableDecl>) {
    let mut s = default_sharding();
    let mut decls = Vec::new();
    let Some(mut sec) = sec else {
        return (s, decls);
    };
    if let Some(v) = sec.bool(cx, "enabled") {
        s.enabled = v;
    }
    if let Some(v) = sharding_function(&mut sec, cx, "sharding_function") {
        s.sharding_function = v;
    }
    for entry in sec.entries(cx, "tables") {
        let mut t = entry.section;
        let name = required_name(&mut t, cx, "name");
        let column = required_name(&mut t, cx, "column");
        let data_type = t
            .choice(cx, "data_type", choices::KEY_TYPE)
            .unwrap_or(KeyType::BigInt);
        let pool = t.string(cx, "pool");
        let pool_span = t.value_span("pool");
        let shards = t
            .count(cx, "shards", 1)
            .map(|n| (n, t.value_span("shards")));
        let span = t.span.clone();
        let origin = t.name();
        t.finish(cx);
        if let (Some(name), Some(column)) = (name, column) {
            decls.push(TableDecl {
                table: ShardedTable {
                    name,
                    column,
                    data_type,
                    pool,
                },
                span,
                pool_span,
                shards,
                origin,
            });
        }
    }
    if let Some(mut tpc) = sec.section(cx, "two_phase_commit") {
        let t = &mut s.two_phase_commit;
        if let Some(v) = tpc.bool(cx, "enabled") {
            t.enabled = v;
        }
        if let Some(v) = tpc.int_in(cx, "timeout_seconds", 1, i64::from(u32::MAX)) {
            t.timeout = Duration::from_secs(v.unsigned_abs());
        }
        if let Some(v) = tpc.int_in(cx, "cleanup_interval_seconds", 1, i64::from(u32::MAX)) {
            t.cleanup_interval = Duration::from_secs(v.unsigned_abs());
        }
        if let Some(v) = tpc.bool(cx, "best_effort") {
            t.best_effort = v;
        }
        tpc.finish(cx);
    }
    sec.accept(accepted::SHARDING);
    sec.finish(cx);
    (s, decls)
}

/// A required, non-empty identifier-ish string (table or column name).
fn required_name(sec: &mut Section, cx: &mut Ctx, key: &str) -> Option<String> {
    if !sec.has(key) {
        cx.error(
            sec.span.clone(),
            format!("{}: missing required key \"{key}\"", sec.name()),
        );
        return None;
    }
    let v = sec.string(cx, key)?;
    let v = v.trim().replace('"', "");
    if v.is_empty() {
        cx.error(
            sec.value_span(key),
            format!("key \"{key}\" in {}: must not be empty", sec.name()),
        );
        return None;
    }
    Some(v)
}
