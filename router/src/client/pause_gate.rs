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
//! A client may give up while it waits at the gate: its cancel request answers the
//! statement 57014 (it never runs; a Sync it sends after is answered, since the router
//! skips to it), and a closed connection ends the session, so that a statement nobody
//! waits for any longer does not run at RESUME (`checkout_wait.rs`, as for a checkout).
//!
//! A planned statement whose map changed is stopped even when the pool is no longer
//! paused at its checkout: planning can wait (a catalog read on a busy shard 0, a
//! checkout of a full pool) for as long as a whole cutover — PAUSE, switch, RESUME —
//! takes, and its shard numbers are then just as stale as if it had waited here.

use super::checkout_wait::{wait_or_give_up, WaitFor};
use super::context::Context;
use crate::error::{Result, RouterError};
use orochi_tls::Stream;

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
    /// `client`: the client's socket, watched for its end while the session waits.
    pub(crate) async fn pause_gate(
        &mut self,
        planned: bool,
        holds_none: bool,
        client: &Stream,
    ) -> Result<()> {
        if !holds_none {
            return Ok(());
        }
        if self.app.is_paused(&self.user.pool_name) {
            let resumed = std::pin::pin!(async {
                self.app.wait_resumed(&self.user.pool_name).await;
                Ok(())
            });
            let slot = &self.cancel.slot;
            wait_or_give_up(resumed, &self.client.info, slot, client, WaitFor::Resume).await?;
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

impl super::session::Session {
    /// The gate before client message `f` is handled. `false`: the client cancelled the
    /// wait, and `f` was answered 57014 and is dropped (a simple Query or function call
    /// with its ReadyForQuery; an extended-protocol message as an error, the router then
    /// skipping to the client's Sync, as PostgreSQL does). A cancel has nothing to stop
    /// while a Sync, a Flush or a stray COPY message waits (PostgreSQL would run nothing
    /// either): it waits on.
    pub(crate) async fn wait_at_gate(&mut self, tag: u8) -> Result<bool> {
        loop {
            let holds_none = self.back.holds_no_connection();
            let e = match self
                .ctx
                .pause_gate(false, holds_none, &self.front.stream)
                .await
            {
                Ok(()) => return Ok(true),
                Err(e) => e,
            };
            let RouterError::Pg(pg) = e else {
                return Err(e);
            };
            if matches!(tag, b'S' | b'H' | b'd' | b'c' | b'f') {
                continue;
            }
            // A held-back transaction of a sharded pool fails, as after any error.
            if let Some(tx) = self.back.sharded.as_deref_mut() {
                tx.fail_held();
            }
            match tag {
                b'Q' | b'F' => self.front.router_error(&self.back, pg, false),
                _ => self.front.router_error(&self.back, pg, true),
            }
            return Ok(false);
        }
    }
}
