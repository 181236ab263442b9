//! The column order of distributed tables, per pool: what an `INSERT INTO t VALUES (...)`
//! without a column list means by its n-th value. Read from the catalog by the executor
//! (never by the planner), kept here for a while, and forgotten when it may be stale:
//! after DDL through the router, after a shard's error that a stale order could cause
//! (undefined column or table, a column-count or type mismatch), and after `MAX_AGE` (DDL
//! that bypasses the router).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an order read from the catalog is trusted without news of DDL.
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// SQLSTATEs after which cached column orders are dropped: undefined column, undefined
/// table, syntax error (INSERT has more expressions than target columns), datatype
/// mismatch, invalid text representation, cannot insert into a generated column.
pub const STALE_CODES: &[&str] = &["42703", "42P01", "42601", "42804", "22P02", "428C9"];

/// A table's column order and when it was read.
type Entry = (Instant, Arc<Vec<String>>);

#[derive(Default)]
pub struct ColumnCache {
    tables: Mutex<HashMap<String, Entry>>,
}

impl ColumnCache {
    /// The cached order of `table`, if fresh.
    pub fn get(&self, table: &str) -> Option<Arc<Vec<String>>> {
        let m = self.tables.lock().ok()?;
        m.get(table)
            .filter(|(at, _)| at.elapsed() < MAX_AGE)
            .map(|(_, c)| c.clone())
    }

    pub fn put(&self, table: &str, columns: Vec<String>) -> Arc<Vec<String>> {
        let c = Arc::new(columns);
        if let Ok(mut m) = self.tables.lock() {
            m.insert(table.to_string(), (Instant::now(), c.clone()));
        }
        c
    }

    /// Forgets every order (DDL ran, or a shard's error says one may be stale).
    pub fn clear(&self) {
        if let Ok(mut m) = self.tables.lock() {
            m.clear();
        }
    }

    /// Forgets every order when a shard's error `code` may come from a stale one.
    pub fn on_error(&self, code: &str) {
        if STALE_CODES.contains(&code) {
            self.clear();
        }
    }
}
