//! Where PAUSE holds a session: before it starts its next transaction, never inside one.
//!
//! A session that already holds a server connection (a transaction under way, perhaps
//! parked on one shard while it takes another) goes on: PAUSE waits for exactly those
//! connections to come back, so holding them would deadlock it — the case of every
//! cross-shard transaction when a reshard cutover pauses the pool.
//!
//! After a pause the session takes the pool's current definition, since `RESHARD SWITCH`
//! may have changed its shards. The main gate is before a client message is handled, so
//! the statement is planned against the new map. A statement planned just before the
//! pause began and held at checkout would carry shard numbers of the old map: if the
//! shard count changed meanwhile the gate says `MapChanged` rather than let it reach a
//! shard the new map does not name. Nothing of the statement was sent yet, so it is
//! planned again against the new map: a simple Query by `Session::on_client_frame`, an
//! extended-protocol message (the Bind that routes a batch) by
//! `Session::replan` (`replan.rs` says why that is safe), a held portal
//! by its Execute (`held_replan.rs`).
//!
//! A planned statement whose map changed is stopped even when the pool is no longer
//! paused at its checkout: planning can wait (a catalog read on a busy shard 0, a
//! checkout of a full pool) for as long as a whole cutover — PAUSE, switch, RESUME —
//! takes, and its shard numbers are then just as stale as if it had waited here.

use super::context::Context;
use crate::error::{Result, RouterError};

impl Context {
    /// The gate has nothing to do: the session holds a connection (`holds_none` is
    /// `ServerLeg::holds_no_connection`), or its pool is not paused and was not redefined
    /// since the session looked. Checked before the session loop boxes a `pause_gate`
    /// future (a heap allocation per message).
    pub(crate) fn gate_is_open(&self, holds_none: bool) -> bool {
        !holds_none
            || (self.app.registry_generation() == self.user_gen
                && !self.app.is_paused(&self.user.pool_name))
    }

    /// `planned`: a statement of this session was already planned against `self.user`.
    /// `holds_none`: the session holds no server connection (`ServerLeg::holds_no_connection`).
    pub(crate) async fn pause_gate(&mut self, planned: bool, holds_none: bool) -> Result<()> {
        if !holds_none {
            return Ok(());
        }
        if self.app.is_paused(&self.user.pool_name) {
            self.app.wait_resumed(&self.user.pool_name).await;
        }
        let gen = self.app.registry_generation();
        if gen == self.user_gen {
            // No reload or switch since the last look: the pools are the current ones.
            return Ok(());
        }
        let current = self.app.current_user_pools(&self.user);
        let moved = current.shards.len() != self.user.shards.len();
        self.user = current;
        self.user_gen = gen;
        if planned && moved {
            return Err(RouterError::MapChanged);
        }
        Ok(())
    }
}
