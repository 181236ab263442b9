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
    /// The server answered SSLRequest with `N` where TLS is required. (The caller names
    /// the configured mode: under `allow` the TLS attempt runs as `require`, which is
    /// not what the operator wrote.)
    #[error("the server does not accept TLS connections")]
    Refused,
    #[error("TLS handshake timed out after {0} ms")]
    Timeout(u128),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl TlsError {
    /// The kind of failure in words a client may see: no host names, addresses or
    /// file paths (those go to the router's log).
    pub fn client_reason(&self) -> &'static str {
        use rustls::CertificateError as C;
        match self {
            TlsError::Handshake(io) => {
                match io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                    Some(rustls::Error::InvalidCertificate(c)) => match c {
                        C::NotValidForName | C::NotValidForNameContext { .. } => {
                            "the server's certificate does not name the host the router connects to (verify-full)"
                        }
                        C::UnknownIssuer | C::BadSignature => {
                            "the server's certificate is not signed by server_tls_ca_file"
                        }
                        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
                            "the server's certificate has expired or is not valid yet"
                        }
                        _ => "the server's certificate was rejected",
                    },
                    _ => "the TLS handshake with the server failed",
                }
            }
            TlsError::Refused => "the server does not accept TLS connections",
            TlsError::Protocol(_) => "the server broke PostgreSQL's TLS negotiation",
            TlsError::Timeout(_) => "the TLS handshake with the server timed out",
            TlsError::File { .. } | TlsError::Config(_) => "the router's TLS settings are unusable",
            TlsError::Io(_) => "the connection broke during TLS negotiation",
        }
    }
}
