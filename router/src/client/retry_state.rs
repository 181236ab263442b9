//! What a session remembers of a request it may send again after a 25006 refusal: the
//! simple-protocol Query (`retry.rs`) and the extended-protocol batch (`retry_ext.rs`).
//! Plain data, so the session carries it without depending on how a retry runs.

use bytes::BytesMut;
use orochi_wire::Frame;

/// One Query that may be retried.
pub(crate) struct Retry {
    /// The client's Query, to send again.
    pub(super) request: Frame,
    /// The plain `BEGIN` that is all of the transaction so far, replayed first.
    pub(super) prelude: Option<Frame>,
    pub(super) shard: usize,
    /// Part of the answer was relayed to the client: too late to retry.
    pub(super) forwarded: bool,
    /// The held-back 25006 ErrorResponse...
    pub(super) refused: Option<Frame>,
    /// ...and the ReadyForQuery after it: the retry can run.
    pub(super) ready: Option<Frame>,
}

/// Per-session retry bookkeeping.
#[derive(Default)]
pub(crate) struct RetryState {
    /// Boxed: a retry holds several frames, and every session carries this state.
    pub(super) pending: Option<Box<Retry>>,
    /// A plain `BEGIN` in flight...
    pub(super) begin_candidate: Option<Frame>,
    /// ...that succeeded and is all the open transaction has done.
    pub(super) begin_only: Option<Frame>,
    /// An extended-protocol batch that may be retried (`retry_ext`).
    pub(super) ext: Option<ExtRetry>,
    /// A refused batch is being replayed: it is not armed again.
    pub(super) replaying: bool,
}

impl RetryState {
    pub(super) fn idle(&self) -> bool {
        self.pending.is_none() && self.begin_candidate.is_none() && self.begin_only.is_none()
    }
}

/// One extended-protocol batch that may be retried.
pub(crate) struct ExtRetry {
    /// The client's messages, as received, up to and including Sync.
    pub(super) frames: Vec<Frame>,
    pub(super) size: usize,
    /// The plain `BEGIN` that is all of the transaction so far, replayed first.
    pub(super) prelude: Option<Frame>,
    /// Statement names the batch's Parses added (forgotten before a replay).
    pub(super) added: Vec<String>,
    pub(super) synced: bool,
    /// The batch executes something (a batch of Parse/Describe only changes nothing, and
    /// a `BEGIN` before it stays all the transaction has done).
    pub(super) executes: bool,
    /// `out[..mark]` predates the batch and may be written; the rest is held.
    pub(super) mark: usize,
    /// Client bytes of the batch that a flush would have written.
    pub(super) held: BytesMut,
    /// The server refused the batch's write with 25006...
    pub(super) refused: bool,
    /// ...and its ReadyForQuery (this status) has been relayed into the held bytes.
    pub(super) ready: Option<u8>,
}
