//! The crate's one error type: why a key value could not be turned into a shard.

/// A key that cannot be decoded, or a shard count that cannot be used.
///
/// Messages follow PostgreSQL's wording so they can be passed to clients as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid input syntax for type {ty}: \"{input}\"")]
    InvalidSyntax { ty: &'static str, input: String },
    #[error("value \"{input}\" is out of range for type {ty}")]
    OutOfRange { ty: &'static str, input: String },
    #[error("incorrect binary data format for type {ty}: {got} bytes, expected {expected}")]
    BinaryLength {
        ty: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error("invalid byte sequence for encoding \"UTF8\"")]
    InvalidEncoding,
    #[error("the number of shards must be at least 1")]
    NoShards,
}

impl Error {
    /// The SQLSTATE PostgreSQL reports for the same problem.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::InvalidSyntax { .. } => "22P02",
            Error::OutOfRange { .. } => "22003",
            Error::BinaryLength { .. } => "22P03",
            Error::InvalidEncoding => "22021",
            Error::NoShards => "XX000",
        }
    }
}

/// Input echoed in an error message: lossy UTF-8, cut to a sane length.
pub(crate) fn shown(input: &[u8]) -> String {
    const MAX: usize = 64;
    let text = String::from_utf8_lossy(input);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}
