//! Classifies a configured password: plain text, an `md5` hash, or a SCRAM verifier.
//!
//! The same spellings PostgreSQL stores in `pg_authid.rolpassword`, so operators can
//! paste hashes instead of clear text. A string that starts like a SCRAM verifier but is
//! malformed is an error, not a plain password: treating it as clear text would make
//! every login fail with a confusing "bad password".

use crate::model::Secret;

const SCRAM_PREFIX: &str = "SCRAM-SHA-256$";

/// `Err` carries a message (without location) for a malformed SCRAM verifier.
pub(crate) fn classify(password: &str) -> Result<Secret, String> {
    if password.is_empty() {
        return Ok(Secret::None);
    }
    if let Some(rest) = password.strip_prefix("md5") {
        if rest.len() == 32 && rest.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Secret::Md5(password.to_ascii_lowercase()));
        }
    }
    if let Some(rest) = password.strip_prefix(SCRAM_PREFIX) {
        return if scram_shape_ok(rest) {
            Ok(Secret::Scram(password.to_string()))
        } else {
            Err(format!(
                "malformed SCRAM-SHA-256 verifier; expected {SCRAM_PREFIX}<iterations>:<salt>$<StoredKey>:<ServerKey>"
            ))
        };
    }
    Ok(Secret::Plain(password.to_string()))
}

/// `<iter>:<salt>$<stored>:<server>` with a positive iteration count and base64 parts.
fn scram_shape_ok(rest: &str) -> bool {
    let Some((iter_salt, keys)) = rest.split_once('$') else {
        return false;
    };
    let Some((iter, salt)) = iter_salt.split_once(':') else {
        return false;
    };
    let Some((stored, server)) = keys.split_once(':') else {
        return false;
    };
    let b64 = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=')
    };
    matches!(iter.parse::<u32>(), Ok(n) if n > 0) && b64(salt) && b64(stored) && b64(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_each_form() {
        assert_eq!(classify(""), Ok(Secret::None));
        assert_eq!(classify("hunter2"), Ok(Secret::Plain("hunter2".into())));
        let md5 = "md5A1b2c3d4e5f60718293a4b5c6d7e8f90";
        assert_eq!(classify(md5), Ok(Secret::Md5(md5.to_ascii_lowercase())));
        // Too short to be a hash: a plain password that happens to start with md5.
        assert_eq!(classify("md5short"), Ok(Secret::Plain("md5short".into())));
        let scram = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk+/=:c2VydmVy";
        assert_eq!(classify(scram), Ok(Secret::Scram(scram.into())));
        assert!(classify("SCRAM-SHA-256$4096:salt").is_err());
        assert!(classify("SCRAM-SHA-256$0:c2FsdA==$a:b").is_err());
    }
}
