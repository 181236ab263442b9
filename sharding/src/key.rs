//! A sharding key value, already decoded from SQL text or a bind parameter.
//!
//! The variant says how PostgreSQL hashes the value, so a key can never be hashed with the
//! wrong function: every integer width hashes the same way (PostgreSQL makes `int2`, `int4`
//! and `int8` hashes agree so cross-type equality finds the same partition).

/// One partition-key value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShardKey<'a> {
    /// SQL NULL: PostgreSQL skips it when hashing, so it lands on remainder 0.
    Null,
    /// A `smallint`, `integer` or `bigint` value.
    Int(i64),
    /// A `text`/`varchar` value: its bytes in the server encoding (UTF-8; never contains NUL).
    Text(&'a [u8]),
    /// A `uuid` value in its 16-byte binary form.
    Uuid([u8; 16]),
}

impl ShardKey<'_> {
    /// The same key owning its bytes, for callers that must keep it past the input buffer.
    pub fn to_owned_key(&self) -> OwnedShardKey {
        match *self {
            ShardKey::Null => OwnedShardKey::Null,
            ShardKey::Int(v) => OwnedShardKey::Int(v),
            ShardKey::Text(t) => OwnedShardKey::Text(t.to_vec()),
            ShardKey::Uuid(u) => OwnedShardKey::Uuid(u),
        }
    }
}

/// [`ShardKey`] owning its text bytes (e.g. a key taken from `SET orochi.sharding_key`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnedShardKey {
    Null,
    Int(i64),
    Text(Vec<u8>),
    Uuid([u8; 16]),
}

impl OwnedShardKey {
    /// Borrowed view, for hashing.
    pub fn as_key(&self) -> ShardKey<'_> {
        match self {
            OwnedShardKey::Null => ShardKey::Null,
            OwnedShardKey::Int(v) => ShardKey::Int(*v),
            OwnedShardKey::Text(t) => ShardKey::Text(t),
            OwnedShardKey::Uuid(u) => ShardKey::Uuid(*u),
        }
    }
}
