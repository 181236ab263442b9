//! A map keyed by the router's own statement ids, hashed by one multiplication.
//!
//! Every Bind of a named statement looks its statement up on the server connection
//! (issue 16: SipHash cost more than the rest of that lookup). The keys are ids the
//! router hands out itself, never a client's bytes, so there is no flooding to defend
//! against; maps keyed by what clients send keep the standard hasher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `HashMap<u64, V>` with [`IdHasher`].
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of one `u64`: consecutive ids spread over the high bits, which
/// the table's probing uses.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `u64` keys; kept correct for any other.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_and_spread() {
        let mut m: IdMap<u64> = IdMap::default();
        for id in 0..10_000u64 {
            m.insert(id, id * 2);
        }
        assert!((0..10_000u64).all(|id| m.get(&id) == Some(&(id * 2))));
        assert_eq!(m.get(&10_000), None);
        // Consecutive ids differ in their top 7 bits (hashbrown's control bytes).
        let top = |id: u64| {
            let mut h = IdHasher::default();
            h.write_u64(id);
            h.finish() >> 57
        };
        let distinct: std::collections::HashSet<u64> = (0..128).map(top).collect();
        assert!(distinct.len() > 64, "{}", distinct.len());
    }
}
