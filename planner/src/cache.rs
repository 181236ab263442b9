//! A small sharded cache keyed by statement text, so a statement seen before is never
//! parsed again. Bounded in entries *and* bytes: a shard that reaches either bound is
//! cleared (statements that recur come back fast), and a statement larger than a shard's
//! byte budget allows is planned every time instead of cached — so ten thousand
//! distinct 100 KB statements cost at most the byte budget, not a gigabyte.
//!
//! Texts are hashed with foldhash, seeded at random per cache and per shard, not with
//! SipHash: a sharded pool looks up every statement here, and SipHash over its text was
//! about 2% of the router's instructions on a cross-shard transfer (issue 16). Client
//! text picks the keys, so flooding one shard with colliding texts is conceivable
//! against a weaker hash; a shard holds at most `capacity / 16` entries and is cleared
//! when full, which bounds what a collision can cost.

use foldhash::fast::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

/// Default byte budget of one cache (all shards): statement texts plus a per-entry
/// allowance for the cached value, which is of the order of its statement.
pub const DEFAULT_BYTES: usize = 64 << 20;

/// What an entry is counted as: its text twice (key, and the plan's own copies of
/// parts of it) plus fixed overhead.
fn cost(key: &str) -> usize {
    2 * key.len() + 256
}

struct Shard<V> {
    map: HashMap<String, Arc<V>, RandomState>,
    bytes: usize,
}

pub struct TextCache<V> {
    shards: Vec<Mutex<Shard<V>>>,
    per_shard: usize,
    bytes_per_shard: usize,
    /// Picks the shard; each shard's map has a seed of its own, so that the keys of a
    /// shard, which share this hash's low bits, still spread over the map's buckets.
    hasher: RandomState,
}

impl<V> TextCache<V> {
    pub fn new(capacity: usize) -> Self {
        Self::with_bytes(capacity, DEFAULT_BYTES)
    }

    pub fn with_bytes(capacity: usize, bytes: usize) -> Self {
        TextCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::with_hasher(RandomState::default()),
                        bytes: 0,
                    })
                })
                .collect(),
            per_shard: (capacity / SHARDS).max(16),
            bytes_per_shard: (bytes / SHARDS).max(4096),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Shard<V>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    pub fn get_or_insert_with(&self, key: &str, make: impl FnOnce() -> V) -> Arc<V> {
        if let Some(v) = self
            .shard(key)
            .lock()
            .ok()
            .and_then(|m| m.map.get(key).cloned())
        {
            return v;
        }
        let v = Arc::new(make());
        let c = cost(key);
        if c > self.bytes_per_shard / 8 {
            // Too large to be worth a slot: planned again next time.
            return v;
        }
        if let Ok(mut m) = self.shard(key).lock() {
            if m.map.len() >= self.per_shard || m.bytes + c > self.bytes_per_shard {
                m.map.clear();
                m.bytes = 0;
            }
            if m.map.insert(key.to_string(), v.clone()).is_none() {
                m.bytes += c;
            }
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
        let total: usize = c.shards.iter().map(|s| s.lock().unwrap().map.len()).sum();
        assert!(total <= 16 * 16);
    }

    #[test]
    fn bounded_in_bytes() {
        let c = TextCache::with_bytes(1_000_000, 16 << 20);
        let big = "x".repeat(100_000);
        for i in 0..1_000 {
            c.get_or_insert_with(&format!("{i} {big}"), || i);
        }
        let bytes: usize = c.shards.iter().map(|s| s.lock().unwrap().bytes).sum();
        let held: usize = c
            .shards
            .iter()
            .map(|s| s.lock().unwrap().map.keys().map(|k| k.len()).sum::<usize>())
            .sum();
        assert!(bytes <= 16 << 20, "{bytes}");
        assert!(held <= 8 << 20, "{held}");
        // A statement over the per-shard allowance is not kept at all.
        let huge = "y".repeat(200_000);
        c.get_or_insert_with(&huge, || 0);
        assert!(c
            .shards
            .iter()
            .all(|s| !s.lock().unwrap().map.contains_key(&huge)));
    }
}
