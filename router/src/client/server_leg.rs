//! The server leg of a session: the connection attached to it (`phase.rs`), the
//! connections its transaction parked on other shards (`sharded_tx.rs`), the bytes on
//! their way to the server, and the transaction status the servers report.
//!
//! These change together: attaching, parking and releasing a connection set the status
//! and the pipeline state (`unsynced`) that decide when a connection may go back.
//! Its own type so that the sharded path (`sharded_path.rs`) borrows the server side
//! alone, next to the other parts of the session, instead of the whole session.

use super::phase::Phase;
use super::sharded_tx::ShardedTx;
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
}
