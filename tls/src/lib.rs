//! TLS for every leg of the router (SPEC §8), on `rustls` with the `ring` provider.
//!
//! A crate of its own so the router's files only hold small hooks: the listener asks
//! [`negotiate::accept`] for a client stream, the backend asks [`connect::upgrade`] for
//! a server stream, both get a [`Stream`] that is plain or TLS, and RELOAD calls
//! [`TlsHub::reload`]. Everything that reads certificate files lives here, behind an
//! `arc-swap`, so new handshakes pick up rotated files while open sessions keep theirs.

pub mod binding;
pub mod connect;
mod error;
mod hub;
pub mod negotiate;
mod pem;
mod stream;
mod verify;

pub use error::TlsError;
pub use hub::{ClientSide, ServerSide, TlsHub};
pub use stream::Stream;

/// Installs the process-wide CryptoProvider (ring) once; later calls are no-ops. Every
/// config in this crate names its provider explicitly too, so nothing depends on which
/// provider another crate may have installed first.
pub fn install_provider() {
    let _ = rustls::crypto::CryptoProvider::clone(&provider()).install_default();
}

/// ring, not aws-lc-rs: it builds without cmake or a long C build on our 2-core
/// machines. rustls marks it deprecated only for lacking post-quantum key exchange;
/// the classical suites it offers are the ones PostgreSQL clients use today.
#[allow(deprecated)]
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
