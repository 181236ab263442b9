//! What the session expects back from its server, in order: one entry per forwarded or
//! injected request, or a ready-made answer to emit when its turn comes (see `relay`).

use bytes::Bytes;
use std::time::Instant;

/// Which server message ends the responses to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A Parse; on failure, forget `client_name` (if named) and statement `id` on the server.
    Parse {
        client_name: Option<String>,
        id: u64,
    },
    Bind,
    Close,
    Describe,
    /// `started` times the statement for the query-duration metric.
    Execute {
        started: Instant,
    },
    /// Sync, simple Query or FunctionCall: ends with ReadyForQuery. `started` is set for
    /// statements (Query, FunctionCall), not for Sync.
    Ready {
        started: Option<Instant>,
    },
    /// A Parse the router injects to fail the server's pipeline (`fail_server_tx.rs`):
    /// answered by an ErrorResponse, or by nothing when the server already skips to the
    /// Sync because an earlier message of the pipeline failed.
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Forward(Term),
    Swallow(Term),
    /// Bytes to send the client when this entry reaches the front.
    Emit(Bytes),
}

impl Term {
    pub(crate) fn ends_with(&self, tag: u8) -> bool {
        match self {
            Term::Parse { .. } => tag == b'1',
            Term::Bind => tag == b'2',
            Term::Close => tag == b'3',
            Term::Describe => tag == b'T' || tag == b'n',
            Term::Execute { .. } => matches!(tag, b'C' | b'I' | b's'),
            Term::Ready { .. } => tag == b'Z',
            // Never parses (a syntax error); its ErrorResponse is handled as an error.
            Term::Fail => tag == b'1',
        }
    }
}
