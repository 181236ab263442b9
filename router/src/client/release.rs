//! Giving the server connection back after a transaction (or a statement, in statement
//! pooling): when nothing of it is awaited and the pool mode allows it.
//!
//! The check runs at every turn of the session loop, so its usual outcome (keep the
//! connection, or hand it back) is a plain function: only a statement-pooling violation,
//! whose transaction is rolled back first, needs to wait, and only then does the loop
//! box a future for it (issue 16: a boxed future per turn was a heap allocation and a
//! copy of its state every transaction).

use super::session::Session;
use crate::clients::ClientState;
use orochi_config::PoolMode;
use orochi_wire::{BackendMessage, PgError};

impl Session {
    /// True when there is no server connection to give back, or it is still needed: an
    /// answer is awaited, a pipeline is not synced, a COPY or a transaction is open.
    fn keeps_server(&self) -> bool {
        let Some(attached) = self.back.phase.attached() else {
            return true;
        };
        !self.front.expect.is_empty()
            || self.back.unsynced
            || attached.copy_in
            || attached.server_skipping
            || self.back.tx_status != b'I'
    }

    /// Statement pooling: a statement left a transaction open; `maybe_release` rolls it
    /// back before the connection goes.
    pub(crate) fn violation_to_roll_back(&self) -> bool {
        self.back.statement_violation
            && self.front.expect.is_empty()
            && self.back.phase.is_attached()
            && self.keeps_server()
    }

    /// Gives the server connection back when the pool mode allows it, rolling back the
    /// transaction a statement-pooling violation left open first.
    pub(crate) async fn maybe_release(&mut self) {
        if !self.violation_to_roll_back() {
            self.release_if_free();
            return;
        }
        let Some(attached) = self.back.phase.attached_mut() else {
            return;
        };
        self.back.statement_violation = false;
        // Statement pooling: a transaction block cannot span statements.
        let _ = attached.co.conn().run_silent("ROLLBACK").await;
        self.back.tx_status = b'I';
        let e = PgError::error(
            "0A000",
            "transaction blocks are not allowed in statement pooling mode; the transaction was rolled back",
        )
        .with_hint("use pool_mode = \"transaction\" for this pool or user");
        e.encode(&mut self.front.out);
        BackendMessage::ReadyForQuery(b'I').encode(&mut self.front.out);
        self.release_attached();
    }

    /// `maybe_release` when no violation is to be rolled back: needs no waiting.
    pub(crate) fn release_if_free(&mut self) {
        if !self.keeps_server() {
            self.release_attached();
        }
    }

    /// Hands the attached connection back to its pool, unless the pool mode keeps it.
    fn release_attached(&mut self) {
        let Some(attached) = self.back.phase.attached_mut() else {
            return;
        };
        if self.ctx.mode == PoolMode::Session {
            if self.ctx.gateway.is_some() {
                // The connection stays: the next transaction's first statement sets the
                // token's role and claims afresh (`resync_attached`), as the pool does
                // for connections given back.
                attached.co.conn().applied_params = super::params::UNKNOWN_PARAMS;
            }
            return;
        }
        // A dirty connection stays dirty: the pool resets it only if another client
        // takes it (affinity keeps this client's temp tables and locks).
        self.ctx.cancel.slot.set(None);
        if let Some(co) = self.back.phase.detach() {
            co.release();
        }
        if let Some(tx) = self.back.sharded.as_deref_mut() {
            tx.tx_begin = None;
            tx.wrote.clear();
        }
        self.ctx.client.info.set_state(ClientState::Idle);
        self.ctx.client.info.set_link(None);
    }
}
