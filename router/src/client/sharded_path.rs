//! The sharded path's type: one statement's borrow of its session, with the pool's
//! sharding schema. The sharded behaviour (`sharded.rs`, `fanout.rs`, `fanout_end.rs`,
//! `gather.rs`, `multi_shard.rs`, `split_insert.rs`, `copy_in.rs`, `shard_identity.rs`)
//! is written as its methods, not as `impl Session` blocks, so a single-shard pool's
//! code cannot call into it by accident and the files that make it up import this type
//! and nothing of each other.
//!
//! It borrows the whole session, not a few of its fields: its steps run the session's
//! own paths — checkout (`checkout_traced`, `apply_params`), moving between a
//! transaction's shards (`settle_current`, `switch_to_parked`), the pause gate, client
//! replies and flushes, the deadlines — which need the session whole. What exists only
//! while a server is attached it reaches through the session's `Phase` (`phase.rs`).

use super::session::Session;
use super::sharded_tx::ShardedTx;
use crate::planner::sharding::ShardingSchema;
use std::sync::Arc;

/// The sharded path of one statement: the session it serves and the schema that plans it.
/// Built per statement (no allocation: a borrow and an `Arc`), dropped when the statement
/// is answered; the state that outlives a statement stays in the session's `ShardedTx`.
pub(crate) struct ShardedPath<'s> {
    /// The session the statement came from.
    pub(crate) s: &'s mut Session,
    /// The pool's sharding schema (the same `Arc` as `s.user.sharding`).
    pub(crate) schema: Arc<ShardingSchema>,
}

impl Session {
    /// The sharded path for this session's next step, when the pool is sharded (even if
    /// the session chose its shard by hand: its multi-shard transaction still ends here).
    pub(crate) fn sharded_path(&mut self) -> Option<ShardedPath<'_>> {
        let schema = self.ctx.user.sharding.clone()?;
        Some(ShardedPath { s: self, schema })
    }

    /// The sharded path planning with `schema` (the session's `sharding()`).
    pub(crate) fn sharded_path_with(&mut self, schema: Arc<ShardingSchema>) -> ShardedPath<'_> {
        ShardedPath { s: self, schema }
    }
}

impl ShardedPath<'_> {
    /// The sharded transaction state (made on first use, kept for the session).
    pub(crate) fn tx(&mut self) -> &mut ShardedTx {
        self.s.tx()
    }
}
