//! What a session does when one of its bounds (`deadline.rs`) runs out: which wait the
//! loop is in, and how the server connections it holds are given up. The giving up is
//! the context's (it owns the bounds, the cancel key and the registry entry) and takes
//! the two legs it empties, so the sharded path, which holds the parts and not the
//! session, ends a fan-out's wait the same way.

use super::client_leg::ClientLeg;
use super::context::Context;
use super::deadline::{abandon, expired, Wait};
use super::server_leg::ServerLeg;
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
}

impl Context {
    /// Gives up every server connection the session holds: a cancel is sent to each (in
    /// the background, bounded) and the connections are closed, not returned to the pool.
    fn abandon_servers(&self, back: &mut ServerLeg, front: &mut ClientLeg) {
        let held: Vec<_> = back
            .phase
            .detach()
            .into_iter()
            .chain(back.sharded.iter_mut().flat_map(|t| t.parked.drain(..)))
            .collect();
        for mut co in held {
            abandon(&mut co);
        }
        front.expect.clear();
        self.cancel.slot.set(None);
        self.client.info.set_link(None);
    }

    /// The session's end when `w` expired.
    pub(crate) fn on_expired(
        &self,
        w: Wait,
        back: &mut ServerLeg,
        front: &mut ClientLeg,
    ) -> RouterError {
        let after = self.deadlines.bound(w);
        tracing::warn!(client = self.id, pool = %self.user.pool_name, wait = ?w, "bound expired; closing the client's session and its server connections");
        self.abandon_servers(back, front);
        expired(w, after)
    }
}
