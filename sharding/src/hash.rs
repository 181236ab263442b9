//! Value → shard, exactly as PostgreSQL's `PARTITION BY HASH (col)` picks a partition.
//!
//! PostgreSQL computes, for each key column, the column type's extended hash support function
//! with the seed `HASH_PARTITION_SEED`, folds those 64-bit hashes with `hash_combine64` starting
//! from 0 (NULL columns are skipped), and the row belongs to the partition whose remainder equals
//! that unsigned 64-bit value modulo the modulus. With N shards numbered 0..N as partitions
//! `MODULUS N, REMAINDER i`, shard `i` is the one for which `satisfies_hash_partition` is true.
//! Proved against a real server by `tests/pg_proof.rs`.

use crate::jenkins::{hash_bytes_extended, hash_uint32_extended};
use crate::{Error, ShardKey};

/// PostgreSQL's seed for partition hashing (`HASH_PARTITION_SEED` in partition.h).
pub const HASH_PARTITION_SEED: u64 = 0x7A5B_2236_7996_DCFD;

/// PostgreSQL's `hash_combine64(a, b)`.
pub fn hash_combine64(a: u64, b: u64) -> u64 {
    let mixed = b
        .wrapping_add(0x49a0_f4dd_15e5_a8e3)
        .wrapping_add(a << 54)
        .wrapping_add(a >> 7);
    a ^ mixed
}

/// The column type's extended hash of `key` under `seed` (`hashint8extended`,
/// `hashtextextended` with a deterministic collation, `uuid_hash_extended`); `None` for NULL.
pub fn column_hash(key: &ShardKey<'_>, seed: u64) -> Option<u64> {
    match *key {
        ShardKey::Null => None,
        ShardKey::Int(v) => {
            // hashint8extended: fold the high half into the low half so that values fitting
            // in 32 bits hash like hashint4extended/hashint2extended (sign-extended) do.
            let low = v as u32;
            let high = (v >> 32) as u32;
            let folded = if v >= 0 { low ^ high } else { low ^ !high };
            Some(hash_uint32_extended(folded, seed))
        }
        ShardKey::Text(bytes) => Some(hash_bytes_extended(bytes, seed)),
        ShardKey::Uuid(bytes) => Some(hash_bytes_extended(&bytes, seed)),
    }
}

/// The row hash of a (possibly multi-column) partition key, as `compute_partition_hash_value`.
pub fn partition_hash(keys: &[ShardKey<'_>]) -> u64 {
    keys.iter()
        .filter_map(|key| column_hash(key, HASH_PARTITION_SEED))
        .fold(0, hash_combine64)
}

/// The row hash of a single-column partition key; the shard is this value modulo the shard count.
pub fn hash_key(key: &ShardKey<'_>) -> u64 {
    partition_hash(std::slice::from_ref(key))
}

/// The shard (partition remainder) of a row hash among `shards` shards.
pub fn shard_of_hash(hash: u64, shards: usize) -> Result<usize, Error> {
    let modulus = u64::try_from(shards).map_err(|_| Error::NoShards)?;
    if modulus == 0 {
        return Err(Error::NoShards);
    }
    // The remainder is < shards, which came from a usize.
    Ok((hash % modulus) as usize)
}

/// The shard of a single-column key among `shards` shards: PostgreSQL's partition remainder.
pub fn shard_for(key: &ShardKey<'_>, shards: usize) -> Result<usize, Error> {
    shard_of_hash(hash_key(key), shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_goes_to_remainder_zero() {
        assert_eq!(hash_key(&ShardKey::Null), 0);
        for n in 1..10 {
            assert_eq!(shard_for(&ShardKey::Null, n), Ok(0));
        }
    }

    #[test]
    fn zero_shards_is_an_error() {
        assert_eq!(shard_for(&ShardKey::Int(1), 0), Err(Error::NoShards));
    }

    #[test]
    fn small_ints_hash_like_their_32_bit_form() {
        // hashint4extended(v) == hash_uint32_extended(v as u32); int8 must agree for |v| < 2^31.
        for v in [0i64, 1, -1, 42, -42, i32::MAX as i64, i32::MIN as i64] {
            assert_eq!(
                column_hash(&ShardKey::Int(v), 99),
                Some(hash_uint32_extended(v as i32 as u32, 99))
            );
        }
        // Outside the 32-bit range the high half matters.
        assert_ne!(
            column_hash(&ShardKey::Int(1 << 32), 0),
            column_hash(&ShardKey::Int(0), 0)
        );
    }

    #[test]
    fn combine_from_zero_is_not_identity() {
        // hash_combine64(0, h) = h + constant, so hash_key differs from the raw column hash.
        let raw = column_hash(&ShardKey::Int(7), HASH_PARTITION_SEED).unwrap_or_default();
        assert_eq!(
            hash_key(&ShardKey::Int(7)),
            raw.wrapping_add(0x49a0_f4dd_15e5_a8e3)
        );
    }
}
