//! PEM files through `rustls-pki-types` (rustls-pemfile is unmaintained). Every error
//! names the file and the setting it came from, since that is what an operator fixes.

use crate::TlsError;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Every certificate of a PEM file, in order (leaf first for a chain).
pub(crate) fn certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    // Read first: a missing file should say "No such file", not "no certificates".
    let bytes = std::fs::read(path).map_err(|e| file_error(what, path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub(crate) fn key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(what, path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| file_error(what, path, e))
}

/// A CA bundle: every certificate in it is trusted.
pub(crate) fn roots(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs(what, path)? {
        store
            .add(cert)
            .map_err(|e| file_error(what, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(store)
}
