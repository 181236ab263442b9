//! An extended-protocol message planned against a shard map that a reshard cutover
//! replaced while it waited at the pause gate is planned again, not refused.
//!
//! Why this is safe: the checkout gate (`Session::pause_gate`) says `MapChanged` only
//! when the session holds no server connection and no parked one, and before anything
//! of the current message went to a server. What the message did before that is
//! local and repeatable: a sharded Bind drops the session's portals and is routed again
//! (its BindComplete goes out only once, with the shard's answer or the held portal);
//! a Parse or Describe was not sent. Earlier messages of the batch are not run again —
//! they were answered by the router (ParseComplete) or ran and finished on their own
//! connections (a multi-shard Execute) before this one. So the message is handled once
//! more against the new map, exactly as `on_client_frame` does for a simple Query.
//!
//! A simple Query is handled the same way. A second `MapChanged` (another cutover while
//! it waited again) is answered with 40001. A multi-shard portal held from Bind to
//! Execute is planned again at its Execute (`held_replan.rs`); one whose Execute meets the
//! pause at its own checkouts (the pause began after the gate before that Execute) gets
//! 40001 from the fan-out: its BindComplete already reached the client and it is not
//! planned again there.

use super::session::Session;
use crate::error::{Result, RouterError};
use orochi_wire::Frame;

impl Session {
    /// A simple Query, planned again once when the shard map changed under it.
    pub(crate) async fn on_query_replanned(&mut self, f: Frame) -> Result<()> {
        self.replanned(f, Kind::Query).await
    }

    /// Parse, Bind, Describe, Execute, Close, FunctionCall, planned again once when the
    /// shard map changed under them.
    pub(crate) async fn on_extended_replanned(&mut self, f: Frame) -> Result<()> {
        let kind = if f.tag == b'F' {
            Kind::FunctionCall
        } else {
            Kind::Extended
        };
        self.replanned(f, kind).await
    }

    async fn replanned(&mut self, f: Frame, kind: Kind) -> Result<()> {
        // Routing notes the shard a write goes to (two-phase commit's participants); a
        // shard number of the replaced map must not stay among them.
        let wrote = self.sharded_tx().map_or(0, |t| t.wrote.len());
        match self.handle(f.clone(), kind).await {
            Err(RouterError::MapChanged) => {
                if let Some(t) = self.sharded.as_deref_mut() {
                    t.wrote.truncate(wrote);
                }
                match self.handle(f, kind).await {
                    Err(RouterError::MapChanged) => {
                        let e = RouterError::MapChanged.to_client().expect("a client error");
                        self.router_error(e, kind == Kind::Extended);
                        Ok(())
                    }
                    r => r,
                }
            }
            r => r,
        }
    }

    async fn handle(&mut self, f: Frame, kind: Kind) -> Result<()> {
        match kind {
            Kind::Query => self.on_query(f).await,
            Kind::Extended | Kind::FunctionCall => self.on_extended(f).await,
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
