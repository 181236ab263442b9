//! What a session does when one of its bounds (`deadline.rs`) runs out: which wait the
//! loop is in, and how the server connections it holds are given up.

use super::deadline::{abandon, expired, Wait};
use super::session::Session;
use crate::error::RouterError;

impl Session {
    /// What the loop waits for while it holds a server connection.
    pub(crate) fn wait_kind(&self) -> Option<Wait> {
        if !self.front.expect.is_empty() {
            Some(Wait::Query)
        } else if self.back.tx_status != b'I' {
            Some(Wait::IdleInTransaction)
        } else {
            None
        }
    }

    /// Gives up every server connection the session holds: a cancel is sent to each (in
    /// the background, bounded) and the connections are closed, not returned to the pool.
    pub(crate) fn abandon_servers(&mut self) {
        let held: Vec<_> = self
            .back
            .phase
            .detach()
            .into_iter()
            .chain(
                self.back
                    .sharded
                    .iter_mut()
                    .flat_map(|t| t.parked.drain(..)),
            )
            .collect();
        for mut co in held {
            abandon(&mut co);
        }
        self.front.expect.clear();
        self.ctx.cancel.slot.set(None);
        self.ctx.client.info.set_link(None);
    }

    /// The session's end when `w` expired.
    pub(crate) fn on_expired(&mut self, w: Wait) -> RouterError {
        let after = self.ctx.deadlines.bound(w);
        tracing::warn!(client = self.ctx.id, pool = %self.ctx.user.pool_name, wait = ?w, "bound expired; closing the client's session and its server connections");
        self.abandon_servers();
        expired(w, after)
    }
}
