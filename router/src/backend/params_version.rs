//! Version numbers for sets of server-reported parameters, equal for equal sets.
//!
//! At a checkout a session tells its client every server parameter that differs from what
//! the client was told (`client::reported`). Comparing a dozen values costs ~3,000
//! instructions; a session that already told its client every value of one version skips
//! it. When the number was unique per connection, that skip worked only for a client that
//! got the same connection back: at 100 clients over a pool of 20 nearly every checkout
//! compared, ~20% of the router's instructions per transaction (issue 16). Connections of
//! one pool report the same values, so the number names the *content*: connections with
//! equal parameters share it.
//!
//! Equal numbers imply equal sets: each number is given to exactly one set (compared in
//! full, not by hash). The table is bounded; when full it is emptied, and sets seen again
//! get new numbers: a number still held by a connection keeps naming its set.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// More distinct sets than this (e.g. an `application_name` per client, applied with
/// SET) empty the table: the skip is lost for a while, never correctness.
const MAX_SETS: usize = 1024;

type Set = Box<[(String, String)]>;

struct Table {
    /// Hash of the sorted set -> sets with that hash and their numbers.
    sets: HashMap<u64, Vec<(Set, u64)>>,
    len: usize,
    next: u64,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

/// The version number of `params` (never 0): equal for equal contents.
pub fn version_of(params: &HashMap<String, String>) -> u64 {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sorted.hash(&mut h);
    let hash = h.finish();
    let mut guard = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = guard.get_or_insert_with(|| Table {
        sets: HashMap::new(),
        len: 0,
        next: 1,
    });
    let same = |s: &Set| {
        s.len() == sorted.len()
            && s.iter()
                .zip(&sorted)
                .all(|((k, v), (k2, v2))| k == k2 && v == v2)
    };
    if let Some(found) = t
        .sets
        .get(&hash)
        .and_then(|v| v.iter().find(|(s, _)| same(s)))
    {
        return found.1;
    }
    if t.len >= MAX_SETS {
        t.sets.clear();
        t.len = 0;
    }
    let n = t.next;
    t.next += 1;
    let owned: Set = sorted
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    t.sets.entry(hash).or_default().push((owned, n));
    t.len += 1;
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equal_sets_share_a_number_and_different_ones_do_not() {
        let a = set(&[("TimeZone", "UTC"), ("DateStyle", "ISO, MDY")]);
        let b = set(&[("DateStyle", "ISO, MDY"), ("TimeZone", "UTC")]);
        let c = set(&[("TimeZone", "Europe/Paris"), ("DateStyle", "ISO, MDY")]);
        let d = set(&[("TimeZone", "UTC")]);
        let (va, vb, vc, vd) = (
            version_of(&a),
            version_of(&b),
            version_of(&c),
            version_of(&d),
        );
        assert_ne!(va, 0);
        assert_eq!(va, vb, "the same contents in another order");
        assert_ne!(va, vc, "another value");
        assert_ne!(va, vd, "a missing name");
        assert_ne!(vc, vd);
    }

    #[test]
    fn a_full_table_starts_over_without_reusing_a_number() {
        let first = version_of(&set(&[("x_first", "1")]));
        let mut seen = std::collections::HashSet::new();
        for i in 0..(MAX_SETS + 10) {
            let v = version_of(&set(&[("x_many", &i.to_string())]));
            assert!(seen.insert(v), "a number is given to one set only");
        }
        assert!(!seen.contains(&first));
        let again = version_of(&set(&[("x_first", "1")]));
        assert!(!seen.contains(&again));
    }
}
