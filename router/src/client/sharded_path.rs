//! The sharded path's type: one statement's borrow of the session's parts, with the
//! pool's sharding schema. The sharded behaviour (`sharded.rs`, `fanout.rs`,
//! `fanout_end.rs`, `gather.rs`, `multi_shard.rs`, `split_insert.rs`, `copy_in.rs`,
//! `shard_identity.rs`, `held_replan.rs`) is written as its methods, not as
//! `impl Session` blocks, so a single-shard pool's code cannot call into it by accident
//! and the files that make it up import this type and the parts, never `Session`.
//!
//! It borrows the four parts of the session (`client_leg.rs`, `server_leg.rs`,
//! `context.rs`, `session_state.rs`), each on its own: a sharded statement answers the
//! client, takes and parks server connections, checks out through the context (pause
//! gate, tracing, bounds) and replays the client's settings and prepared statements.
//! It does not see the retry bookkeeping or the statement log (pass-through only), and
//! what needs the whole session — relaying a server's answers, as when a shard's
//! pipeline is settled before a pipeline's multi-shard end — the session does before it
//! builds the path (`Session::finish_implicit_multi`). What exists only while a server
//! is attached it reaches through the server leg's `Phase` (`phase.rs`).

use super::client_leg::ClientLeg;
use super::context::Context;
use super::server_leg::ServerLeg;
use super::session_state::SessionState;
use super::sharded_tx::ShardedTx;
use crate::planner::sharding::ShardingSchema;
use std::sync::Arc;

/// The sharded path of one statement: the session's parts it serves and the schema that
/// plans it. Built per statement by `Session::sharded_path` (no allocation: four borrows
/// and an `Arc`), dropped when the statement is answered; the state that outlives a
/// statement stays in the server leg's `ShardedTx`.
pub(crate) struct ShardedPath<'s> {
    /// The client's socket, buffers and answer order.
    pub(crate) front: &'s mut ClientLeg,
    /// The attached and parked server connections.
    pub(crate) back: &'s mut ServerLeg,
    /// Who the session is: app, pools, bounds, trace.
    pub(crate) ctx: &'s mut Context,
    /// The client's settings and prepared statements.
    pub(crate) state: &'s mut SessionState,
    /// The pool's sharding schema (the same `Arc` as `ctx.user.sharding`).
    pub(crate) schema: Arc<ShardingSchema>,
}

impl ShardedPath<'_> {
    /// The sharded transaction state (made on first use, kept for the session).
    pub(crate) fn tx(&mut self) -> &mut ShardedTx {
        self.back.tx()
    }
}
