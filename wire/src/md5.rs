//! MD5 password authentication, both sides.

use md5::{Digest, Md5};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `md5` + hex(md5(password || username)): what `pg_authid` stores.
pub fn stored_hash(username: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(password.as_bytes());
    h.update(username.as_bytes());
    format!("md5{}", hex(&h.finalize()))
}

/// What a client sends for a stored hash (`md5…`) and salt.
pub fn response_from_stored(stored: &str, salt: &[u8; 4]) -> String {
    let inner = stored.strip_prefix("md5").unwrap_or(stored);
    let mut h = Md5::new();
    h.update(inner.as_bytes());
    h.update(salt);
    format!("md5{}", hex(&h.finalize()))
}

/// Checks a client's md5 response against the stored hash, in constant time.
pub fn verify(stored: &str, salt: &[u8; 4], response: &str) -> bool {
    let expected = response_from_stored(stored, salt);
    expected.len() == response.len()
        && expected
            .bytes()
            .zip(response.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hash() {
        // SELECT 'md5' || md5('secret' || 'app');
        assert_eq!(
            stored_hash("app", "secret"),
            "md56a422f785c9e20873908ce25d1736ae2"
        );
        let salt = [1, 2, 3, 4];
        let resp = response_from_stored(&stored_hash("app", "secret"), &salt);
        assert!(verify(&stored_hash("app", "secret"), &salt, &resp));
        assert!(!verify(&stored_hash("app", "wrong"), &salt, &resp));
    }
}
