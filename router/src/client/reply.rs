//! Messages the router itself writes to a client: ReadyForQuery, any backend message,
//! an error, and the two errors every statement path can end in. Here, below every
//! session path, so none of them has to reach into another for a few bytes.

use bytes::{Bytes, BytesMut};
use orochi_wire::{BackendMessage, PgError};

pub(crate) fn ready(status: u8) -> Bytes {
    let mut b = BytesMut::new();
    BackendMessage::ReadyForQuery(status).encode(&mut b);
    b.freeze()
}

pub(crate) fn message(m: BackendMessage) -> Bytes {
    let mut b = BytesMut::new();
    m.encode(&mut b);
    b.freeze()
}

pub(crate) fn error_bytes(e: &PgError) -> Bytes {
    let mut b = BytesMut::new();
    e.encode(&mut b);
    b.freeze()
}

/// PostgreSQL's answer to a statement in a failed transaction.
pub(crate) fn tx_aborted() -> PgError {
    PgError::error(
        "25P02",
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

/// A cross-shard statement the router cannot answer exactly (SPEC: 0A000, never a
/// wrong answer).
pub(crate) fn refuse(msg: &str) -> PgError {
    PgError::error("0A000", format!("unsupported cross-shard statement: {msg}")).with_hint(
        "add the shard key to the statement, or choose the shard with SET orochi.shard = N",
    )
}
