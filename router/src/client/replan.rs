//! An extended-protocol message planned against a shard map that a reshard cutover
//! replaced while it waited at the pause gate is planned again, not refused.
//!
//! Why this is safe: the checkout gate (`Context::pause_gate`) says `MapChanged` only
//! when the session holds no server connection and no parked one, and before anything
//! of the current message went to a server. What the message did before that is
//! local and repeatable: a sharded Bind drops the session's portals and is routed again
//! (its BindComplete goes out only once, with the shard's answer or the held portal);
//! a Parse or Describe was not sent. Earlier messages of the batch are not run again —
//! they were answered by the router (ParseComplete) or ran and finished on their own
//! connections (a multi-shard Execute) before this one. So the message is handled once
//! more against the new map, exactly as `on_client_frame` does for a simple Query.
//!
//! A simple Query is handled the same way. Another cutover while it waited again (a
//! reverse right after a cutover, or two reshards in a row) plans it again once more:
//! every `MapChanged` comes before anything of the message went to a server, so the
//! loop never runs a statement twice. It is bounded ([`MAX_REPLANS`]) only so that a
//! map that never settles cannot hold a client for ever; past it the client gets 40001.
//! A multi-shard portal held from Bind to Execute is planned again at its Execute, and
//! at its own checkouts, by the same rule (`held_replan.rs`).

use super::session::Session;
use crate::error::{Result, RouterError};
use orochi_wire::Frame;

/// How many times one message is planned again because the shard map changed under it
/// (each time a cutover ended while it waited) before it is answered with 40001.
pub(crate) const MAX_REPLANS: usize = 16;

impl Session {
    /// Where a message's first attempt starts: how many shards the transaction had
    /// written to (routing notes the shard a write goes to, for two-phase commit; a
    /// shard number of a replaced map must not stay among them).
    pub(crate) fn replan_mark(&self) -> usize {
        self.back.sharded_tx().map_or(0, |t| t.wrote.len())
    }

    /// After a first attempt (inline in `on_client_frame`) ended with `MapChanged`:
    /// plans the message again against the new map. Boxed by the caller and entered
    /// only after a cutover, so every statement's future does not carry a second copy
    /// of the statement path's state (issue 16: the session boxes that future once per
    /// message).
    pub(crate) async fn replan(&mut self, f: Frame, wrote: usize) -> Result<()> {
        let kind = match f.tag {
            b'Q' => Kind::Query,
            b'F' => Kind::FunctionCall,
            _ => Kind::Extended,
        };
        for _ in 0..MAX_REPLANS {
            self.forget_writes_after(wrote);
            let r = match kind {
                Kind::Query => self.on_query(f.clone()).await,
                Kind::Extended | Kind::FunctionCall => self.on_extended(f.clone()).await,
            };
            match r {
                Err(RouterError::MapChanged) => {}
                r => return r,
            }
        }
        self.forget_writes_after(wrote);
        let e = RouterError::MapChanged.to_client().expect("a client error");
        self.front
            .router_error(&self.back, e, kind == Kind::Extended);
        Ok(())
    }

    fn forget_writes_after(&mut self, wrote: usize) {
        if let Some(t) = self.back.sharded.as_deref_mut() {
            t.wrote.truncate(wrote);
        }
    }
}

/// How a message's refusal is answered: extended-protocol messages make the router skip
/// to the next Sync; a Query and a FunctionCall end with ReadyForQuery.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Query,
    Extended,
    FunctionCall,
}
