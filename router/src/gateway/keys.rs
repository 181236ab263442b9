//! The gateway's verification keys: a JWKS document (an identity provider's `jwks_uri`
//! saved to a file) or one HS256 secret, never both (the config refuses that).
//!
//! Each key is bound to exactly one algorithm when it is loaded, from its `alg` or,
//! when the IdP omits it, from its type (RSA → RS256, EC P-256 → ES256, P-384 → ES384,
//! OKP Ed25519 → EdDSA). A token must name that same algorithm, so the classic
//! confusion attacks cannot happen: an HS256 token "signed" with an RSA public key
//! finds an RS256 key and is refused; `alg=none` names no key at all. Symmetric (`oct`)
//! keys in a JWKS file and encryption keys (`use = "enc"`) are skipped: HMAC is only
//! ever the configured `hs256_secret`.
//!
//! The file is read at start, on RELOAD/SIGHUP and, at most once every 30 s, when a
//! token names a `kid` the set does not have (an IdP rotated its keys before the
//! operator reloaded). A file that cannot be read or yields no usable key keeps the
//! last good set and says why in the log.

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shortest time between two unknown-kid re-reads of the JWKS file.
pub const UNKNOWN_KID_REREAD: Duration = Duration::from_secs(30);

/// One verification key and the only algorithm it accepts.
pub struct Key {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// The keys a token may be checked with.
#[derive(Default)]
pub struct KeySet {
    /// By `kid`; a key without one is stored under "".
    pub by_kid: HashMap<String, Key>,
}

impl KeySet {
    /// The HS256-only set of `hs256_secret`.
    pub fn hs256(secret: &str) -> Result<KeySet, String> {
        let key = DecodingKey::from_secret(secret.as_bytes()).map_err(|e| e.to_string())?;
        let mut by_kid = HashMap::new();
        by_kid.insert(
            String::new(),
            Key {
                alg: Algorithm::HS256,
                key,
            },
        );
        Ok(KeySet { by_kid })
    }

    /// Parses a JWKS document. Unusable keys are skipped with a reason each (returned);
    /// a document with no usable key is an error.
    pub fn from_jwks(text: &str) -> Result<(KeySet, Vec<String>), String> {
        let set: JwkSet =
            serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut by_kid = HashMap::new();
        let mut skipped = Vec::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            match key_of(jwk) {
                Ok(k) => {
                    if by_kid.insert(kid.clone(), k).is_some() {
                        return Err(format!("two keys have kid \"{kid}\""));
                    }
                }
                Err(why) => skipped.push(format!("key \"{kid}\" skipped: {why}")),
            }
        }
        if by_kid.is_empty() {
            return Err(format!(
                "no usable signing key ({} in the file{})",
                set.keys.len(),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; {}", skipped.join("; "))
                }
            ));
        }
        if by_kid.len() > 1 && by_kid.contains_key("") {
            return Err("a key without kid in a set of several: tokens could not name it".into());
        }
        Ok((KeySet { by_kid }, skipped))
    }

    /// The key a token's `kid` names; a token without `kid` may use the only key.
    pub fn find(&self, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(k) => self.by_kid.get(k),
            None if self.by_kid.len() == 1 => self.by_kid.values().next(),
            None => None,
        }
    }
}

/// The algorithm a JWK is bound to, checked against its key type.
fn key_of(jwk: &jsonwebtoken::jwk::Jwk) -> Result<Key, String> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("an encryption key (use = \"enc\")".into());
    }
    let declared = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return Err("unknown alg".into()),
        Some(a) => Some(
            Algorithm::from_str(&a.to_string())
                .map_err(|_| format!("alg {a} is not a signature algorithm"))?,
        ),
    };
    use Algorithm::*;
    let (default, allowed): (Algorithm, &[Algorithm]) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (RS256, &[RS256, RS384, RS512, PS256, PS384, PS512]),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => (ES256, &[ES256]),
            EllipticCurve::P384 => (ES384, &[ES384]),
            _ => return Err("unsupported EC curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            (EdDSA, &[EdDSA])
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err(
                "symmetric (oct) keys are not accepted from a JWKS file; use hs256_secret".into(),
            )
        }
        _ => return Err("unsupported key type".into()),
    };
    let alg = declared.unwrap_or(default);
    if !allowed.contains(&alg) {
        return Err(format!("alg {alg:?} does not match the key type"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("bad key material: {e}"))?;
    Ok(Key { alg, key })
}

/// The running key set, swapped whole on a successful re-read.
pub struct KeyStore {
    current: ArcSwap<KeySet>,
    /// The JWKS file (None: an HS256 secret, nothing to re-read).
    file: Mutex<Option<PathBuf>>,
    /// When the last unknown-kid re-read happened.
    last_reread: Mutex<Option<Instant>>,
}

impl KeyStore {
    pub fn empty() -> Self {
        KeyStore {
            current: ArcSwap::from_pointee(KeySet::default()),
            file: Mutex::new(None),
            last_reread: Mutex::new(None),
        }
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// Uses the configured source: reads the JWKS file, or builds the HS256 key. On
    /// error the running set stays and the reason returns.
    pub fn configure(&self, keys: &orochi_config::GatewayKeys) -> Result<usize, String> {
        match keys {
            orochi_config::GatewayKeys::Hs256Secret(s) => {
                *self.file.lock().unwrap_or_else(|e| e.into_inner()) = None;
                self.current.store(Arc::new(KeySet::hs256(s)?));
                Ok(1)
            }
            orochi_config::GatewayKeys::JwksFile(p) => {
                *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(p.clone());
                self.reread(p)
            }
        }
    }

    fn reread(&self, path: &Path) -> Result<usize, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (set, skipped) =
            KeySet::from_jwks(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for s in skipped {
            tracing::warn!(file = %path.display(), "gateway JWKS: {s}");
        }
        let n = set.by_kid.len();
        self.current.store(Arc::new(set));
        Ok(n)
    }

    /// A token named a `kid` the set lacks: re-reads the file unless that was done less
    /// than 30 s ago. Returns true when a new set was loaded.
    pub fn reread_for_unknown_kid(&self) -> bool {
        let Some(path) = self.file.lock().ok().and_then(|f| f.clone()) else {
            return false;
        };
        {
            let Ok(mut last) = self.last_reread.lock() else {
                return false;
            };
            if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_REREAD) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match self.reread(&path) {
            Ok(n) => {
                tracing::info!(file = %path.display(), keys = n, "gateway JWKS re-read for an unknown kid");
                true
            }
            Err(e) => {
                tracing::error!("gateway JWKS re-read failed, keeping the last good keys: {e}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    #[test]
    fn keys_bind_their_algorithm_and_bad_ones_are_skipped() {
        let text = format!(
            r#"{{"keys":[{ED},{{"kty":"oct","kid":"h","k":"c2VjcmV0"}},{{"kty":"OKP","crv":"Ed25519","kid":"x","alg":"RS256","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}]}}"#
        );
        let (set, skipped) = KeySet::from_jwks(&text).unwrap();
        assert_eq!(set.by_kid.len(), 1);
        assert_eq!(set.find(Some("ed")).unwrap().alg, Algorithm::EdDSA);
        assert!(
            set.find(None).is_some(),
            "the only key serves kid-less tokens"
        );
        assert!(set.find(Some("h")).is_none());
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped.iter().any(|s| s.contains("oct")));
        assert!(skipped.iter().any(|s| s.contains("does not match")));
    }

    #[test]
    fn a_file_without_usable_keys_is_an_error() {
        assert!(KeySet::from_jwks("{").is_err());
        assert!(KeySet::from_jwks(r#"{"keys":[]}"#).is_err());
        let dup = format!(r#"{{"keys":[{ED},{ED}]}}"#);
        assert!(KeySet::from_jwks(&dup).err().unwrap().contains("two keys"));
    }

    #[test]
    fn a_bad_file_keeps_the_last_good_set_and_rereads_are_rate_limited() {
        let dir = std::env::temp_dir().join(format!("orochi-jwks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jwks.json");
        std::fs::write(&path, format!(r#"{{"keys":[{ED}]}}"#)).unwrap();
        let store = KeyStore::empty();
        let cfg = orochi_config::GatewayKeys::JwksFile(path.clone());
        assert_eq!(store.configure(&cfg).unwrap(), 1);
        std::fs::write(&path, "not json").unwrap();
        assert!(store.configure(&cfg).is_err());
        assert!(
            store.keys().find(Some("ed")).is_some(),
            "last good set kept"
        );
        assert!(!store.reread_for_unknown_kid(), "bad file: nothing new");
        std::fs::write(&path, format!(r#"{{"keys":[{ED}]}}"#)).unwrap();
        assert!(
            !store.reread_for_unknown_kid(),
            "a second re-read within 30 s does not happen"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
