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

/// The SQLSTATE classes of the ErrorResponses among the whole messages in `bytes`, in
/// order (for `errors_total`; what the router writes itself, the servers' errors are
/// counted where they are relayed).
pub(crate) fn error_classes(mut bytes: &[u8]) -> impl Iterator<Item = [u8; 2]> + '_ {
    std::iter::from_fn(move || loop {
        let (tag, total) =
            orochi_wire::frame::peek_frame(bytes, orochi_wire::MAX_MESSAGE_LEN).ok()??;
        let (msg, rest) = bytes.split_at(total);
        bytes = rest;
        if tag == b'E' {
            let class = orochi_wire::ErrorFields::decode(&msg[5..])
                .ok()
                .and_then(|f| f.code.as_bytes().get(..2).map(|c| [c[0], c[1]]));
            return Some(class.unwrap_or(*b"??"));
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes_reads_every_error_among_whole_messages() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&message(BackendMessage::ParseComplete));
        PgError::error("53300", "too many").encode(&mut b);
        b.extend_from_slice(&ready(b'I'));
        b.extend_from_slice(&error_bytes(&refuse("join")));
        assert_eq!(error_classes(&b).collect::<Vec<_>>(), vec![*b"53", *b"0A"]);
        assert_eq!(error_classes(&ready(b'E')).count(), 0);
        // A cut message ends the scan (the router writes whole ones).
        assert_eq!(
            error_classes(&b[..b.len() - 3]).collect::<Vec<_>>(),
            vec![*b"53"]
        );
    }
}
