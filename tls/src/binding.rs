//! `tls-server-end-point` channel binding (RFC 5929) for SCRAM-SHA-256-PLUS: the hash
//! of the server certificate, with the hash of its signature algorithm (SHA-256 for
//! MD5 and SHA-1), as PostgreSQL computes it.
//!
//! Hand-written: it needs one field of the certificate (the outer signature algorithm
//! OID), which a short DER walk reads without an X.509 parser dependency.

use sha2::{Digest, Sha256, Sha384, Sha512};

/// One DER element: (tag, contents, rest).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The OID bytes of the certificate's outer `signatureAlgorithm`.
fn signature_oid(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, _) = element(cert)? else {
        return None;
    };
    let (_, _tbs, rest) = element(cert)?;
    let (0x30, alg, _) = element(rest)? else {
        return None;
    };
    let (0x06, oid, _) = element(alg)? else {
        return None;
    };
    Some(oid)
}

const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];

/// The binding data, or `None` when the certificate's algorithm defines none (Ed25519,
/// RSA-PSS): then `-PLUS` is not offered, as PostgreSQL does.
pub fn tls_server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    let oid = signature_oid(cert)?;
    let bits = if let Some(n) = oid.strip_prefix(RSA) {
        match n {
            [4] | [5] | [11] => 256, // md5, sha1, sha256 WithRSAEncryption
            [12] => 384,
            [13] => 512,
            _ => return None,
        }
    } else if let Some(n) = oid.strip_prefix(ECDSA) {
        match n {
            [1] | [3, 2] => 256, // ecdsa-with-SHA1, -SHA256
            [3, 3] => 384,
            [3, 4] => 512,
            _ => return None,
        }
    } else {
        return None;
    };
    Some(match bits {
        256 => Sha256::digest(cert).to_vec(),
        384 => Sha384::digest(cert).to_vec(),
        _ => Sha512::digest(cert).to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_p256_and_p384_certificates_hash_with_their_own_algorithm() {
        for (alg, len) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, 32),
            (&rcgen::PKCS_ECDSA_P384_SHA384, 48),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["x".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let b = tls_server_end_point(cert.der()).expect("binding");
            assert_eq!(b.len(), len);
        }
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(tls_server_end_point(cert.der()), None);
        assert_eq!(tls_server_end_point(b"\x30\x82\xff"), None, "truncated DER");
    }
}
