//! The client's leg of a session: its socket, what was read from it and not yet handled,
//! what is to be written to it, and the queue that keeps the router's own answers in
//! order with the server's.
//!
//! The queue (`expect`, what each server answer still owed is for: `expect.rs`) lives
//! here rather than with the server connection because every answer to the client goes
//! through it: a reply the router writes itself must wait behind the server answers the
//! client asked for first. Its capacity is kept across checkouts, so a transaction does
//! not allocate it again; it is empty whenever no server is attached.
//!
//! Its own type so that the sharded path (`sharded_path.rs`) borrows the client's side
//! alone, next to the other parts of the session, instead of the whole session.

use super::expect::Expect;
use super::reply::{error_bytes, error_classes, ready};
use super::server_leg::ServerLeg;
use crate::error::{Result, RouterError};
use bytes::{Bytes, BytesMut};
use orochi_tls::Stream;
use orochi_wire::PgError;
use std::collections::VecDeque;

/// The client's socket, its buffers and the order of what it is owed.
pub(crate) struct ClientLeg {
    pub(crate) stream: Stream,
    /// Bytes read from the client, not yet decoded.
    pub(crate) rbuf: BytesMut,
    /// Bytes for the client, flushed after each batch.
    pub(crate) out: BytesMut,
    /// What each server answer still owed is for; empty while idle.
    pub(crate) expect: VecDeque<Expect>,
    /// While set, fan-out output is collected here instead of sent.
    pub(crate) capture: Option<BytesMut>,
    /// The largest message this client may send (`max_message_size`, at most 1 GiB).
    /// A `u32`, so that it shares a word with `router_skipping` (every idle client
    /// carries this struct).
    pub(crate) max_message: u32,
    /// The router reported an error in the extended protocol: drop messages until Sync.
    pub(crate) router_skipping: bool,
    /// The router answered an error of its own inside the server's open transaction:
    /// the session fails that transaction on the server too (`fail_server_tx.rs`).
    pub(crate) fail_server_tx: bool,
    /// A server's FATAL (or PANIC) was relayed to the client: the server closes the
    /// connection next, and the client already knows why its session ends.
    pub(crate) got_server_fatal: bool,
    /// SQLSTATE classes of the errors the router wrote itself (refusals, a pool timeout,
    /// an unreachable shard, a shard's error in a fan-out…) since the session last
    /// counted them in `errors_total` (`Session::count_answered_errors`). Empty, and
    /// unallocated, while nothing failed.
    pub(crate) answered_errors: Vec<[u8; 2]>,
}

impl ClientLeg {
    pub(crate) fn new(stream: Stream, max_message: usize) -> Self {
        ClientLeg {
            stream,
            rbuf: BytesMut::new(),
            out: BytesMut::new(),
            expect: VecDeque::new(),
            capture: None,
            max_message: u32::try_from(max_message).unwrap_or(u32::MAX),
            router_skipping: false,
            fail_server_tx: false,
            got_server_fatal: false,
            answered_errors: Vec::new(),
        }
    }

    /// Sends `bytes` to the client now if nothing is pending, else after what is pending.
    pub(crate) fn reply(&mut self, bytes: Bytes) {
        self.note_errors(&bytes);
        if self.expect.is_empty() {
            self.out.extend_from_slice(&bytes);
        } else {
            self.expect.push_back(Expect::Emit(bytes));
        }
    }

    /// Notes the errors among `bytes`, messages the router writes to the client.
    pub(crate) fn note_errors(&mut self, bytes: &[u8]) {
        self.answered_errors.extend(error_classes(bytes));
    }

    /// A router-side error: for a simple query, error and ReadyForQuery (with the status
    /// `back` reports); in the extended protocol, error and skip the client's messages
    /// until Sync, as PostgreSQL does.
    ///
    /// Inside a transaction the server holds open, the error fails that transaction, as
    /// it would have on PostgreSQL: the ReadyForQuery says `E`, and the session makes
    /// the server's transaction fail as well before the client's next message goes out
    /// (`fail_server_tx.rs`), so its next statements get 25P02 and its COMMIT rolls back.
    pub(crate) fn router_error(&mut self, back: &ServerLeg, e: PgError, extended: bool) {
        // The status is the server's own only while no answer of it is still owed.
        let in_tx =
            back.holds_open_tx() && self.expect.iter().all(|x| matches!(x, Expect::Emit(_)));
        // Or the server runs the same pipeline: its earlier messages must not commit.
        self.fail_server_tx |= in_tx || (extended && back.mid_pipeline());
        self.reply(error_bytes(&e));
        if extended {
            self.router_skipping = true;
        } else {
            self.reply(ready(if in_tx { b'E' } else { back.local_status() }));
        }
    }

    /// A checkout for client `id` failed: the client is told, unless the error ends the
    /// session (or, for a simple Query, the statement is to be planned again).
    pub(crate) fn checkout_failed(
        &mut self,
        back: &ServerLeg,
        id: u64,
        e: RouterError,
        extended: bool,
    ) -> Result<()> {
        if matches!(e, RouterError::MapChanged) && !extended {
            return Err(e);
        }
        match e.to_client() {
            Some(pg) if !matches!(e, RouterError::ShuttingDown) => {
                if !matches!(e, RouterError::Pg(_)) {
                    tracing::warn!(client = id, error = %e, "no server connection for client");
                }
                self.router_error(back, pg, extended);
                Ok(())
            }
            _ => Err(e),
        }
    }

    /// Writes what is ready for the client. The session's own flush first holds back a
    /// retryable batch's answer (`Session::flush_client`); the sharded path never arms
    /// such a retry (`retry_ext.rs`: not on sharded pools) and writes directly.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        if !self.out.is_empty() {
            let r = self.stream.write_all_now(&self.out).await;
            self.out.clear();
            r.map_err(RouterError::ClientIo)?;
        }
        Ok(())
    }
}
