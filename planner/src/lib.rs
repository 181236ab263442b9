//! The planner: pure functions from statement text to what the executor must do.
//!
//! A crate of its own so that it stays pure: no tokio, no sockets, no wire protocol; it
//! depends on `orochi-config` (key types, the sharded tables) and `orochi-sharding` (key
//! hashing) only, and the router (the executor) depends on it, never the reverse.
//! Results are cached by statement text (`cache`).
//!
//! - `session`: what a statement does to session state (SET, PREPARE, temp tables, ...).
//! - `rw`: may a statement run on a replica; `directive`: the router's own SET commands;
//!   `savepoint`: the savepoint a transaction command names.
//! - `sharding`: the route (which shards, from key values and bind parameters) and the
//!   merge plan of a statement on a sharded pool, and the proof that a fan-out is exact.
//! - `codec`: the values of shard answers as the merge reads, orders and casts them,
//!   shared by the planner (which casts a statement needs) and the executor's merge.
//!
//! Arrows inside point down: `sharding` uses `codec`, `cache` and `lex`; `codec` uses
//! nothing of the planner.

pub mod cache;
pub mod codec;
pub mod directive;
pub mod lex;
pub mod rw;
pub mod savepoint;
pub mod session;
pub mod sharding;

pub use session::{analyze, Analysis, SessionOp};
