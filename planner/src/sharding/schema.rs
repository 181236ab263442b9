//! What the planner must know about a sharded pool: its shard count and its distributed
//! tables (name, key column, key type). Every other table of the pool is replicated.
//! Built once per config snapshot; the plan cache lives here so a reload that changes
//! the sharded tables starts from an empty cache.

use super::route::ShardPlan;
use crate::cache::TextCache;
use orochi_config::{Config, KeyType, Pool};

#[derive(Debug, Clone)]
pub struct DistributedTable {
    /// Unqualified, lower-case table name.
    pub name: String,
    /// Schema when the config qualified the name.
    pub schema: Option<String>,
    /// Lower-case key column.
    pub column: String,
    pub ty: KeyType,
}

pub struct ShardingSchema {
    pub shards: usize,
    /// `[sharding.two_phase_commit] best_effort`: multi-shard writes without 2PC allowed.
    pub best_effort: bool,
    /// `[sharding.two_phase_commit] enabled`: multi-shard writes commit atomically.
    pub twopc: bool,
    /// The `orochi` schema objects exist on every shard (checked on first 2PC commit).
    pub twopc_ready: std::sync::OnceLock<()>,
    pub tables: Vec<DistributedTable>,
    pub(crate) plans: TextCache<ShardPlan>,
    /// Whether the shards' databases sort text in byte order (learned on first need).
    pub c_collation: std::sync::OnceLock<bool>,
    /// `Err`: two shards reach one and the same database (learned before the first
    /// statement over several shards).
    pub distinct: std::sync::OnceLock<Result<(), String>>,
    /// Column orders of distributed tables (column-less INSERT), read by the executor.
    pub columns: super::columns::ColumnCache,
}

impl std::fmt::Debug for ShardingSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardingSchema")
            .field("shards", &self.shards)
            .field("tables", &self.tables)
            .finish()
    }
}

impl ShardingSchema {
    pub fn new(shards: usize, tables: Vec<DistributedTable>) -> Self {
        ShardingSchema {
            shards,
            best_effort: false,
            twopc: false,
            twopc_ready: std::sync::OnceLock::new(),
            tables,
            plans: TextCache::new(16_384),
            c_collation: std::sync::OnceLock::new(),
            distinct: std::sync::OnceLock::new(),
            columns: Default::default(),
        }
    }

    /// The schema of a pool with more than one shard; `None` for a single-shard pool,
    /// which needs no planning at all.
    pub fn for_pool(config: &Config, pool: &Pool) -> Option<Self> {
        if pool.shards.len() < 2 {
            return None;
        }
        let tables = config
            .sharding
            .tables
            .iter()
            .filter(|t| t.pool.as_deref().is_none_or(|p| p == pool.name))
            .map(|t| {
                let (schema, name) = match t.name.rsplit_once('.') {
                    Some((s, n)) => (Some(s.to_ascii_lowercase()), n.to_ascii_lowercase()),
                    None => (None, t.name.to_ascii_lowercase()),
                };
                DistributedTable {
                    name,
                    schema,
                    column: t.column.to_ascii_lowercase(),
                    ty: t.data_type,
                }
            })
            .collect();
        let mut s = ShardingSchema::new(pool.shards.len(), tables);
        s.best_effort = config.sharding.two_phase_commit.best_effort;
        s.twopc = config.sharding.two_phase_commit.enabled;
        Some(s)
    }

    /// The distributed table a `FROM` item names, if any.
    pub fn table(&self, schema: &str, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| {
            t.name == name && (schema.is_empty() || t.schema.as_deref().is_none_or(|s| s == schema))
        })
    }
}
