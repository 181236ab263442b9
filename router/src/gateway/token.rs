//! Tokens for local use (`orochi-router token`): a developer mints a token with a dev
//! key instead of running an identity provider, and prints the JWKS the gateway reads.
//!
//! Keys are PEM private keys: Ed25519 (EdDSA), EC P-256 (ES256) or RSA (RS256), PKCS#8
//! or PKCS#1. `generate_dev_key` writes a fresh Ed25519 key with `rcgen` (already the
//! TLS tests' tool): no OpenSSL needed. Signing with an RSA key uses the RustCrypto
//! `rsa` crate, whose private-key operations are not constant-time (RUSTSEC-2023-0071);
//! that matters for a signing service, not for minting dev tokens on one's own machine
//! (the gateway itself only verifies, with public keys).

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};
use std::time::Duration;

/// A signing key and the algorithm it signs with.
pub struct SigningKey {
    pub key: EncodingKey,
    pub alg: Algorithm,
}

impl SigningKey {
    /// Reads a PEM private key: Ed25519, EC P-256 or RSA (tried in that order).
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, String> {
        if let Ok(key) = EncodingKey::from_ed_pem(pem) {
            return Ok(SigningKey {
                key,
                alg: Algorithm::EdDSA,
            });
        }
        if let Ok(key) = EncodingKey::from_ec_pem(pem) {
            return Ok(SigningKey {
                key,
                alg: Algorithm::ES256,
            });
        }
        match EncodingKey::from_rsa_pem(pem) {
            Ok(key) => Ok(SigningKey {
                key,
                alg: Algorithm::RS256,
            }),
            Err(e) => Err(format!(
                "not an Ed25519, EC P-256 or RSA private key in PEM form: {e}"
            )),
        }
    }

    /// Signs `claims` with header `{alg, kid, typ: JWT}`.
    pub fn sign(&self, kid: Option<&str>, claims: &Map<String, Value>) -> Result<String, String> {
        let mut h = Header::new(self.alg);
        h.kid = kid.map(str::to_string);
        encode(&h, claims, &self.key).map_err(|e| e.to_string())
    }

    /// The public half as a JWKS document (`{"keys":[...]}`), with `kid` and `alg`.
    pub fn jwks(&self, kid: &str) -> Result<String, String> {
        let mut jwk = match self.alg {
            // jsonwebtoken reads only the 48-byte PKCS#8 v1 form here; rcgen and ring
            // write v2 (with the public key), so the public half is derived directly.
            Algorithm::EdDSA => {
                use ed25519_dalek::pkcs8::DecodePrivateKey;
                let k = ed25519_dalek::SigningKey::from_pkcs8_der(self.key.as_bytes())
                    .map_err(|e| format!("Ed25519 key: {e}"))?;
                let x = base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    k.verifying_key().as_bytes(),
                );
                serde_json::from_value::<Jwk>(serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": x
                }))
                .map_err(|e| e.to_string())?
            }
            _ => Jwk::from_encoding_key(&self.key, self.alg).map_err(|e| e.to_string())?,
        };
        jwk.common.key_id = Some(kid.to_string());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        serde_json::to_string_pretty(&JwkSet { keys: vec![jwk] }).map_err(|e| e.to_string())
    }
}

/// A new Ed25519 private key (PKCS#8 PEM).
pub fn generate_dev_key() -> Result<String, String> {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .map(|k| k.serialize_pem())
        .map_err(|e| e.to_string())
}

/// What goes into a dev token.
#[derive(Debug, Clone)]
pub struct Claims {
    pub issuer: String,
    pub audience: Vec<String>,
    pub role_claim: String,
    pub role: String,
    pub tenant_claim: String,
    pub tenant: Option<String>,
    pub sub: String,
    pub ttl: Duration,
}

impl Claims {
    /// The JSON claims at time `now` (seconds since 1970). A numeric tenant stays a
    /// number, so `->>'tenant_id'` compares as the application expects either way.
    pub fn to_json(&self, now: u64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("iss".into(), self.issuer.clone().into());
        m.insert(
            "aud".into(),
            match self.audience.as_slice() {
                [one] => one.clone().into(),
                many => many.to_vec().into(),
            },
        );
        m.insert("sub".into(), self.sub.clone().into());
        m.insert(self.role_claim.clone(), self.role.clone().into());
        if let Some(t) = &self.tenant {
            let v = t
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| t.clone().into());
            m.insert(self.tenant_claim.clone(), v);
        }
        m.insert("iat".into(), now.into());
        m.insert("exp".into(), (now + self.ttl.as_secs()).into());
        m
    }
}

/// `1h`, `30m`, `45s`, `2d` or plain seconds.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid --ttl \"{s}\": expected e.g. 1h, 30m, 3600"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("invalid --ttl unit in \"{s}\": use s, m, h or d")),
    };
    Ok(Duration::from_secs(n * mult))
}

/// Seconds since 1970.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("2d").unwrap(), Duration::from_secs(172800));
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("h").is_err());
    }

    #[test]
    fn a_generated_key_signs_and_its_jwks_verifies() {
        let pem = generate_dev_key().unwrap();
        let k = SigningKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(k.alg, Algorithm::EdDSA);
        round_trip(&k);
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let k = SigningKey::from_pem(ec.serialize_pem().as_bytes()).unwrap();
        assert_eq!(k.alg, Algorithm::ES256);
        round_trip(&k);
    }

    fn round_trip(k: &SigningKey) {
        let jwks = k.jwks("dev").unwrap();
        let (set, _) = super::super::keys::KeySet::from_jwks(&jwks).unwrap();
        let c = Claims {
            issuer: "i".into(),
            audience: vec!["a".into()],
            role_claim: "role".into(),
            role: "app_user".into(),
            tenant_claim: "tenant_id".into(),
            tenant: Some("42".into()),
            sub: "dev".into(),
            ttl: Duration::from_secs(60),
        };
        let t = k.sign(Some("dev"), &c.to_json(now())).unwrap();
        let policy = super::super::verify::Policy {
            issuer: "i".into(),
            audience: vec!["a".into()],
            leeway_seconds: 0,
        };
        let v = super::super::verify::verify(&t, &set, &policy, now()).unwrap();
        assert_eq!(v.claims["tenant_id"], Value::from(42));
        assert_eq!(v.kid.as_deref(), Some("dev"));
    }
}
