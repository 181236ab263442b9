//! Prepared statements across pooled server connections.
//!
//! A client's named statement is mapped to a router-wide id derived from its text and
//! parameter types; on the server it is named `_orochi_<id>`. Each server connection
//! remembers which ids it has, and the session prepares a statement on a connection the
//! first time it is needed there. Identical statements from different clients share one
//! server-side statement.
//!
//! Bounded: past `REGISTRY_SWEEP` entries, statements no client session holds any more
//! are dropped from the registry (a client that parses the text again gets a new id);
//! each server connection keeps at most `max_prepared_statements` of them prepared and
//! closes the least recently used (see `ServerConn::prepared_to_evict`).

use crate::planner::session::{analyze_screened, STATEMENT_WORDS};
use crate::planner::{analyze, Analysis};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct PreparedStatement {
    pub id: u64,
    pub server_name: String,
    pub query: String,
    pub param_types: Vec<u32>,
    pub analysis: Arc<Analysis>,
    /// A server accepted this Parse once: later Parses of it by idle clients are answered
    /// by the router without taking a server (see `Session::on_extended`).
    pub validated: AtomicBool,
}

impl PreparedStatement {
    /// Writes the Parse that creates this statement under `name` on a server into
    /// `out` (the server's buffer: nothing copied on the way).
    pub fn encode_parse(&self, name: &str, out: &mut bytes::BytesMut) {
        orochi_wire::frontend::encode_parse(name, &self.query, &self.param_types, out);
    }
}

/// (query text, parameter types) -> statement.
type StatementMap = HashMap<(String, Vec<u32>), Arc<PreparedStatement>>;

/// Registry size at which unreferenced statements are swept out.
const REGISTRY_SWEEP: usize = 10_000;

#[derive(Default)]
pub struct StatementRegistry {
    ids: Mutex<StatementMap>,
    next: AtomicU64,
    /// Size that triggers the next sweep (doubles while most entries are in use, so a
    /// sweep costs amortised O(1) per insert).
    sweep_at: AtomicU64,
}

impl StatementRegistry {
    pub fn get(&self, query: &str, param_types: &[u32]) -> Arc<PreparedStatement> {
        let key = (query.to_string(), param_types.to_vec());
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = ids.get(&key) {
            return s.clone();
        }
        let sweep_at = (self.sweep_at.load(Ordering::Relaxed) as usize).max(REGISTRY_SWEEP);
        if ids.len() >= sweep_at {
            // Only the registry holds them: no session can name them any more.
            ids.retain(|_, s| Arc::strong_count(s) > 1);
            self.sweep_at.store(
                (ids.len() * 2).max(REGISTRY_SWEEP) as u64,
                Ordering::Relaxed,
            );
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let s = Arc::new(PreparedStatement {
            id,
            server_name: format!("_orochi_{id}"),
            query: query.to_string(),
            param_types: param_types.to_vec(),
            analysis: analyze(query),
            validated: AtomicBool::new(false),
        });
        ids.insert(key, s.clone());
        s
    }

    /// A statement that is not shared (the unnamed one): same shape, no id.
    pub fn unnamed(query: &str, param_types: &[u32]) -> Arc<PreparedStatement> {
        Self::unnamed_screened(query, param_types, STATEMENT_WORDS.scan(query))
    }

    /// [`unnamed`](Self::unnamed) of a text already screened (`words`, its
    /// `STATEMENT_WORDS.scan`).
    pub fn unnamed_screened(
        query: &str,
        param_types: &[u32],
        words: u16,
    ) -> Arc<PreparedStatement> {
        Arc::new(PreparedStatement {
            id: 0,
            server_name: String::new(),
            query: query.to_string(),
            param_types: param_types.to_vec(),
            analysis: analyze_screened(query, words),
            validated: AtomicBool::new(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_id() {
        let r = StatementRegistry::default();
        let a = r.get("select $1", &[23]);
        let b = r.get("select $1", &[23]);
        let c = r.get("select $1", &[20]);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(a.server_name, format!("_orochi_{}", a.id));
    }

    #[test]
    fn unreferenced_statements_are_swept() {
        let r = StatementRegistry::default();
        let kept: Vec<_> = (0..10)
            .map(|i| r.get(&format!("select {i}"), &[]))
            .collect();
        for i in 0..100_000 {
            drop(r.get(&format!("select {i} + 1"), &[]));
        }
        let n = r.ids.lock().unwrap().len();
        assert!(n <= REGISTRY_SWEEP + 10, "{n}");
        for (i, s) in kept.iter().enumerate() {
            assert_eq!(r.get(&format!("select {i}"), &[]).id, s.id);
        }
    }
}
