//! PostgreSQL-compatible hash partitioning: value to shard.
//!
//! Shard `i` of `N` holds exactly the rows PostgreSQL would put in the partition
//! `FOR VALUES WITH (MODULUS N, REMAINDER i)` of a table `PARTITION BY HASH (key)`, for
//! `smallint`/`integer`/`bigint`, `text`/`varchar` and `uuid` keys, given as SQL text or as binary
//! parameters. Pure functions only: the router calls them on its hot path, and
//! `tests/pg_proof.rs` checks them against `satisfies_hash_partition` on a real server.
//!
//! ```
//! use orochi_config::KeyType;
//! use orochi_sharding::{parse_text, shard_for};
//! let key = parse_text(KeyType::BigInt, b" 42 ")?;
//! assert!(shard_for(&key, 4)? < 4);
//! # Ok::<(), orochi_sharding::Error>(())
//! ```

mod error;
mod hash;
mod int_text;
mod jenkins;
mod key;
mod parse;
mod uuid_text;

pub use error::Error;
pub use hash::{
    column_hash, hash_combine64, hash_key, partition_hash, shard_for, shard_of_hash,
    HASH_PARTITION_SEED,
};
pub use jenkins::{hash_bytes_extended, hash_uint32_extended};
pub use key::{OwnedShardKey, ShardKey};
pub use parse::{parse_binary, parse_text, shard_for_text_value, type_name};
pub use uuid_text::format_uuid;
