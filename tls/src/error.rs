//! One error type for the crate: what went wrong, and with which file.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file that cannot be read or parsed.
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The files were read but do not make a usable configuration (key does not
    /// match the certificate, CA bundle without certificates, ...).
    #[error("{0}")]
    Config(String),
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    /// The peer broke PostgreSQL's TLS negotiation (bytes after SSLRequest or `S`,
    /// direct TLS without the `postgresql` ALPN, ...).
    #[error("{0}")]
    Protocol(String),
    /// The server answered SSLRequest with `N` where TLS is required.
    #[error("the server does not accept TLS connections (server_tls_sslmode = {0})")]
    Refused(&'static str),
    #[error("TLS handshake timed out after {0} ms")]
    Timeout(u128),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
