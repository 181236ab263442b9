//! A small sharded cache keyed by statement text, so a statement seen before is never
//! parsed again. Bounded: a full shard is cleared (statements that recur come back fast).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

pub struct TextCache<V> {
    shards: Vec<Mutex<HashMap<String, Arc<V>>>>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl<V> TextCache<V> {
    pub fn new(capacity: usize) -> Self {
        TextCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (capacity / SHARDS).max(16),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Arc<V>>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    pub fn get_or_insert_with(&self, key: &str, make: impl FnOnce() -> V) -> Arc<V> {
        if let Some(v) = self
            .shard(key)
            .lock()
            .ok()
            .and_then(|m| m.get(key).cloned())
        {
            return v;
        }
        let v = Arc::new(make());
        if let Ok(mut m) = self.shard(key).lock() {
            if m.len() >= self.per_shard {
                m.clear();
            }
            m.insert(key.to_string(), v.clone());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_and_bounds() {
        let c = TextCache::new(32);
        let mut made = 0;
        for _ in 0..3 {
            c.get_or_insert_with("a", || {
                made += 1;
                1
            });
        }
        assert_eq!(made, 1);
        for i in 0..10_000 {
            c.get_or_insert_with(&i.to_string(), || i);
        }
        let total: usize = c.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= 16 * 16);
    }
}
