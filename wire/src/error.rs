//! The one error type of the wire crate: what can be wrong with bytes on the wire.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("message length {0} is invalid")]
    BadLength(i64),
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("unexpected end of message while reading {0}")]
    Truncated(&'static str),
    #[error("string is not NUL-terminated in {0}")]
    MissingNul(&'static str),
    #[error("invalid UTF-8 in {0}")]
    Utf8(&'static str),
    #[error("unknown message type {0:?}")]
    UnknownTag(char),
    #[error("unsupported protocol version {major}.{minor}")]
    UnsupportedProtocol { major: u16, minor: u16 },
    #[error("invalid {0}")]
    Invalid(&'static str),
}
