//! What a shard holds: its tables (distributed or replicated), keys, sizes, sequences and
//! the server settings logical replication needs. Read from the catalogs, never guessed.
//!
//! A partitioned table is one table here, under its root's name: its partitions (every
//! level) are listed in [`Table::parts`], not as tables of their own. They are published
//! through the root (`publish_via_partition_root`), so the root's row filter decides and
//! the new shards' root routes each row into its partition; only the fence and the
//! checks need the partitions by name.

use crate::conn::Conn;
use crate::error::Result;
use crate::topology::DistTable;

#[derive(Debug, Clone)]
pub struct Table {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// 'p' permanent, 'u' unlogged.
    pub persistence: char,
    /// 'r' ordinary, 'p' partitioned.
    pub kind: char,
    pub has_pk: bool,
    /// 'd' default (PK), 'n' nothing, 'f' full, 'i' index.
    pub replident: char,
    /// Summed over the partitions of a partitioned table.
    pub rows: i64,
    pub bytes: i64,
    /// The partitions of a partitioned table, every level (empty otherwise).
    pub parts: Vec<Part>,
    /// The shard key when the table is distributed.
    pub key: Option<Key>,
    /// Columns of the primary key, in order (for verify).
    pub pk_cols: Vec<String>,
}

/// A partition of a partitioned table, as the checks and the fence need it.
#[derive(Debug, Clone)]
pub struct Part {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// 'r' leaf, 'p' partitioned itself, 'f' foreign table.
    pub kind: char,
    pub persistence: char,
    pub has_pk: bool,
    pub replident: char,
}

impl Part {
    pub fn qname(&self) -> String {
        qualified(&self.schema, &self.name)
    }
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// `"schema"."name"`.
fn qualified(schema: &str, name: &str) -> String {
    format!(
        "{}.{}",
        crate::quote::ident(schema),
        crate::quote::ident(name)
    )
}

#[derive(Debug, Clone)]
pub struct Key {
    pub column: String,
    pub attnum: i16,
    pub type_oid: u32,
    pub type_name: String,
}

impl Table {
    /// `"schema"."name"`.
    pub fn qname(&self) -> String {
        qualified(&self.schema, &self.name)
    }
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
    /// The table and its partitions, qualified: every relation a write can name.
    pub fn relations(&self) -> Vec<String> {
        std::iter::once(self.qname())
            .chain(self.parts.iter().map(Part::qname))
            .collect()
    }
    /// The table with its partitions, to compare schemas: `s.t(s.t_0,s.t_1)`.
    pub fn shape(&self) -> String {
        if self.parts.is_empty() {
            return self.display();
        }
        let parts: Vec<String> = self.parts.iter().map(Part::display).collect();
        format!("{}({})", self.display(), parts.join(","))
    }
}

/// The user tables of the connected database (not `orochi`, not system schemas; a
/// partitioned table as its root, with its partitions), with the configured distributed
/// tables' keys resolved.
pub async fn tables(c: &Conn, dist: &[DistTable]) -> Result<Vec<Table>> {
    let rows = c
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relpersistence::text, c.relkind::text,
                    c.relreplident::text,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                    (SELECT sum(greatest(x.reltuples, 0)) FROM pg_class x
                     WHERE x.oid = c.oid OR x.oid IN (SELECT relid FROM pg_partition_tree(c.oid)))::bigint,
                    (SELECT sum(pg_total_relation_size(x.oid)) FROM pg_class x
                     WHERE x.oid = c.oid OR x.oid IN (SELECT relid FROM pg_partition_tree(c.oid)))::bigint,
                    coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                        FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(att, ord), pg_attribute a
                        WHERE i.indrelid = c.oid AND i.indisprimary
                          AND a.attrelid = c.oid AND a.attnum = k.att), '{}')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'orochi')
               AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
             ORDER BY 2, 3",
            &[],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let ch = |i: usize| r.get::<_, String>(i).chars().next().unwrap_or(' ');
        let mut t = Table {
            oid: r.get(0),
            schema: r.get(1),
            name: r.get(2),
            persistence: ch(3),
            kind: ch(4),
            replident: ch(5),
            has_pk: r.get(6),
            rows: r.get(7),
            bytes: r.get(8),
            parts: vec![],
            key: None,
            pk_cols: r.get(9),
        };
        if t.kind == 'p' {
            t.parts = parts(c, t.oid).await?;
        }
        if let Some(d) = dist.iter().find(|d| d.matches(&t.schema, &t.name)) {
            let k = c
                .query(
                    "SELECT a.attnum, a.atttypid, format_type(a.atttypid, a.atttypmod)
                     FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2 AND NOT a.attisdropped",
                    &[&t.oid, &d.column],
                )
                .await?;
            t.key = k.first().map(|k| Key {
                column: d.column.clone(),
                attnum: k.get(0),
                type_oid: k.get(1),
                type_name: k.get(2),
            });
            if t.key.is_none() {
                // Kept as distributed with no key: the checks refuse it by name.
                t.key = Some(Key {
                    column: d.column.clone(),
                    attnum: 0,
                    type_oid: 0,
                    type_name: String::new(),
                });
            }
        }
        out.push(t);
    }
    Ok(out)
}

/// The partitions of partitioned table `oid`, every level, parents before children.
async fn parts(c: &Conn, oid: u32) -> Result<Vec<Part>> {
    let rows = c
        .query(
            "SELECT x.oid, n.nspname::text, x.relname::text, x.relkind::text, x.relpersistence::text,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = x.oid AND i.indisprimary),
                    x.relreplident::text
             FROM pg_partition_tree($1::oid::regclass) t JOIN pg_class x ON x.oid = t.relid
             JOIN pg_namespace n ON n.oid = x.relnamespace
             WHERE t.relid <> $1::oid::regclass ORDER BY t.level, 2, 3",
            &[&oid],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let ch = |i: usize| r.get::<_, String>(i).chars().next().unwrap_or(' ');
            Part {
                oid: r.get(0),
                schema: r.get(1),
                name: r.get(2),
                kind: ch(3),
                persistence: ch(4),
                has_pk: r.get(5),
                replident: ch(6),
            }
        })
        .collect())
}

/// The key types the row filters need a hash parent for: (type oid, type name).
pub fn key_types(tables: &[Table]) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = tables
        .iter()
        .filter_map(|t| t.key.as_ref())
        .filter(|k| k.type_oid != 0)
        .map(|k| (k.type_oid, k.type_name.clone()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Unique indexes of a distributed table, or of any of its partitions, that do not
/// contain the shard key (by name: a partition's column numbers may differ).
pub async fn unique_without_key(c: &Conn, t: &Table) -> Result<Vec<String>> {
    let Some(k) = &t.key else { return Ok(vec![]) };
    let rows = c
        .query(
            "SELECT i.indexrelid::regclass::text FROM pg_index i
             WHERE (i.indrelid = $1 OR i.indrelid IN (SELECT relid FROM pg_partition_tree($1::oid::regclass)))
               AND i.indisunique
               AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indrelid
                               AND a.attname = $2 AND a.attnum = ANY (i.indkey::int2[]))
             ORDER BY 1",
            &[&t.oid, &k.column],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Distributed-table columns that hold large-object references (`oid`/`lo`).
pub async fn large_object_columns(c: &Conn, t: &Table) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
               AND format_type(a.atttypid, NULL) IN ('oid', 'lo')",
            &[&t.oid],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub async fn large_object_count(c: &Conn) -> Result<i64> {
    Ok(c.one("SELECT count(*) FROM pg_largeobject_metadata", &[])
        .await?
        .get(0))
}

/// Prepared transactions of this database: (gid, age in seconds).
pub async fn prepared(c: &Conn) -> Result<Vec<(String, f64)>> {
    let rows = c
        .query(
            "SELECT gid, extract(epoch FROM now() - prepared)::float8 FROM pg_prepared_xacts
             WHERE database = current_database() ORDER BY prepared",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Prepared transactions that stay prepared for all of `window`: two-phase commits in
/// flight (prepared for milliseconds under load) are not pending ones.
pub async fn pending_prepared(c: &Conn, window: std::time::Duration) -> Result<Vec<(String, f64)>> {
    let until = std::time::Instant::now() + window;
    let mut seen = prepared(c).await?;
    while !seen.is_empty() && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = prepared(c).await?;
        seen.retain(|(g, _)| now.iter().any(|(h, _)| h == g));
    }
    Ok(seen)
}

/// Sequences of user schemas that handed out a value: (qualified name, last value).
pub async fn sequences(c: &Conn) -> Result<Vec<(String, i64)>> {
    let rows = c
        .query(
            "SELECT format('%I.%I', schemaname, sequencename),
                    last_value
             FROM pg_sequences
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'orochi')
               AND last_value IS NOT NULL
             ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Server settings logical replication depends on, and what is in use.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub wal_level: String,
    pub max_replication_slots: i64,
    pub slots_used: i64,
    pub max_wal_senders: i64,
    pub senders_used: i64,
    pub max_logical_replication_workers: i64,
    pub max_worker_processes: i64,
    pub max_sync_workers_per_subscription: i64,
    pub superuser: bool,
}

/// `ours` is a LIKE pattern of this reshard's slots, not counted as used by others.
pub async fn settings(c: &Conn, ours: &str) -> Result<ServerSettings> {
    let r = c
        .one(
            "SELECT current_setting('wal_level'),
                    current_setting('max_replication_slots')::int8,
                    (SELECT count(*) FROM pg_replication_slots WHERE slot_name NOT LIKE $1),
                    current_setting('max_wal_senders')::int8,
                    (SELECT count(*) FROM pg_stat_replication),
                    current_setting('max_logical_replication_workers')::int8,
                    current_setting('max_worker_processes')::int8,
                    current_setting('max_sync_workers_per_subscription')::int8,
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
            &[&ours],
        )
        .await?;
    Ok(ServerSettings {
        wal_level: r.get(0),
        max_replication_slots: r.get(1),
        slots_used: r.get(2),
        max_wal_senders: r.get(3),
        senders_used: r.get(4),
        max_logical_replication_workers: r.get(5),
        max_worker_processes: r.get(6),
        max_sync_workers_per_subscription: r.get(7),
        superuser: r.get(8),
    })
}
