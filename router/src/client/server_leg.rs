//! The server leg of a session: the connection attached to it (`phase.rs`), the
//! connections its transaction parked on other shards (`sharded_tx.rs`), the bytes on
//! their way to the server, and the transaction status the servers report.
//!
//! These change together: attaching, parking and releasing a connection set the status
//! and the pipeline state (`unsynced`) that decide when a connection may go back. Here:
//! the status the client sees (`local_status`), parking and un-parking
//! (`switch_to_parked`), whether any connection is held (`holds_no_connection`); handing
//! a two-phase commit's COMMIT PREPAREDs off the client's path is in `pending_commits.rs`.
//! Its own type so that the sharded path (`sharded_path.rs`) borrows the server side
//! alone, next to the other parts of the session, instead of the whole session.

use super::phase::Phase;
use super::sharded_tx::ShardedTx;
use crate::cancel::CancelKey;
use bytes::BytesMut;

/// The session's server connections and the state of their conversation.
pub(crate) struct ServerLeg {
    /// The server connection, if one is attached, and its conversation (`phase.rs`).
    pub(crate) phase: Phase,
    /// Bytes for the server, flushed before waiting for its answer.
    pub(crate) sout: BytesMut,
    /// The transaction status last reported (`I`, `T`, `E`).
    pub(crate) tx_status: u8,
    /// Extended-protocol messages were forwarded since the last Sync.
    pub(crate) unsynced: bool,
    /// Statement mode: a statement left a transaction open; its ReadyForQuery was held
    /// back, the transaction is rolled back and the client gets an error instead.
    pub(crate) statement_violation: bool,
    /// Sharded pools: the transaction's state across shards (`sharded_tx.rs`). Boxed and
    /// made on first use, then kept for the session: most sessions never need it, and an
    /// idle client should not carry it inline (issue 16).
    pub(crate) sharded: Option<Box<ShardedTx>>,
}

impl ServerLeg {
    pub(crate) fn new() -> Self {
        ServerLeg {
            phase: Phase::Idle,
            sout: BytesMut::new(),
            tx_status: b'I',
            unsynced: false,
            statement_violation: false,
            sharded: None,
        }
    }

    /// The sharded transaction state, if the session ever needed one.
    pub(crate) fn sharded_tx(&self) -> Option<&ShardedTx> {
        self.sharded.as_deref()
    }

    /// The sharded transaction state, made on first use and kept for the session (one
    /// allocation per session, never per statement).
    pub(crate) fn tx(&mut self) -> &mut ShardedTx {
        self.sharded.get_or_insert_with(Box::default)
    }

    /// Whether an error the router answers now would leave the server's transaction
    /// open while the client's is failed: a server attached, in an explicit
    /// transaction, between messages (`fail_server_tx.rs`).
    pub(crate) fn holds_open_tx(&self) -> bool {
        self.phase.is_attached() && self.tx_status == b'T' && !self.unsynced
    }

    /// Whether the attached server is running the client's extended-protocol pipeline:
    /// messages sent since the last Sync, none of them failed yet (`fail_server_tx.rs`).
    pub(crate) fn mid_pipeline(&self) -> bool {
        self.phase.is_attached() && self.unsynced && !self.phase.server_skipping()
    }

    /// Transaction status the client sees while no server is attached.
    pub(crate) fn local_status(&self) -> u8 {
        let Some(tx) = self.sharded_tx() else {
            return if self.phase.is_attached() {
                self.tx_status
            } else {
                b'I'
            };
        };
        if tx.tx_poisoned {
            return b'E';
        }
        if self.phase.is_attached() {
            return self.tx_status;
        }
        match &tx.pending_begin {
            Some(_) if tx.pending_failed => b'E',
            Some(_) => b'T',
            None => b'I',
        }
    }

    /// Parks the current connection and takes the one already open on `shard`, if any
    /// (a cancel request of the client then goes to it).
    pub(crate) fn switch_to_parked(&mut self, shard: usize, cancel: &CancelKey) -> bool {
        if let Some(cur) = self.phase.detach() {
            self.tx().parked.push(cur);
        }
        let Some(co) = self.tx().take_parked(shard) else {
            return false;
        };
        cancel
            .slot
            .set(Some(super::shard_stream::cancel_target(&co)));
        self.phase.attach(co);
        self.tx_status = b'T';
        true
    }

    /// No server connection is held: none attached, none parked by a transaction.
    pub(crate) fn holds_no_connection(&self) -> bool {
        self.phase.is_idle() && self.sharded_tx().is_none_or(|t| t.parked.is_empty())
    }
}
