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
use bytes::BytesMut;
use orochi_tls::Stream;
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
    /// The largest message this client may send (`max_message_size`).
    pub(crate) max_message: usize,
    /// The router reported an error in the extended protocol: drop messages until Sync.
    pub(crate) router_skipping: bool,
}

impl ClientLeg {
    pub(crate) fn new(stream: Stream, max_message: usize) -> Self {
        ClientLeg {
            stream,
            rbuf: BytesMut::new(),
            out: BytesMut::new(),
            expect: VecDeque::new(),
            capture: None,
            max_message,
            router_skipping: false,
        }
    }
}
