//! SCRAM-SHA-256, server side (RFC 5802 / 7677 as PostgreSQL uses it).
//!
//! Hand-written because `postgres-protocol` implements only the client side, which the
//! router uses towards PostgreSQL. Over TLS, `SCRAM-SHA-256-PLUS` binds the exchange to
//! the router's certificate (`tls-server-end-point`, computed by the TLS crate and passed
//! in), so a man in the middle with another certificate cannot relay it. Passwords are used as raw UTF-8 (no SASLprep), which
//! matches PostgreSQL for ASCII passwords.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const MECHANISM: &str = "SCRAM-SHA-256";
pub const MECHANISM_PLUS: &str = "SCRAM-SHA-256-PLUS";
const CHANNEL_BINDING_TYPE: &str = "tls-server-end-point";
const DEFAULT_ITERATIONS: u32 = 4096;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// A stored SCRAM verifier: what `pg_authid` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl Verifier {
    /// Derives a verifier from a plain password with a fresh random salt.
    pub fn from_password(password: &str) -> Self {
        let mut salt = vec![0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::derive(password, salt, DEFAULT_ITERATIONS)
    }

    pub fn derive(password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        Verifier {
            iterations,
            salt,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// Parses `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("SCRAM-SHA-256$")?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iter, salt) = iter_salt.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(Verifier {
            iterations: iter.parse().ok()?,
            salt: B64.decode(salt).ok()?,
            stored_key: B64.decode(stored).ok()?.try_into().ok()?,
            server_key: B64.decode(server).ok()?.try_into().ok()?,
        })
    }

    pub fn to_string_form(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    Malformed(&'static str),
    BadProof,
}

/// One server-side exchange: `start` with the client-first message, then `finish` with
/// the client-final message.
pub struct ScramServer {
    verifier: Verifier,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    gs2_header: String,
    /// Channel-binding data the client must have bound to (empty without -PLUS).
    cb_data: Vec<u8>,
}

impl ScramServer {
    /// Handles client-first without TLS; returns the exchange and the server-first message.
    pub fn start(verifier: Verifier, client_first: &[u8]) -> Result<(Self, String), ScramError> {
        Self::start_bound(verifier, client_first, false, None)
    }

    /// As [`start`](Self::start) on a TLS connection whose channel-binding data is
    /// `offered` (`None`: PLUS was not offered). `plus` says the client chose
    /// `SCRAM-SHA-256-PLUS`. A client that says it could bind ("y") while PLUS was
    /// offered is refused: that is a downgrade (RFC 5802 §6).
    pub fn start_bound(
        verifier: Verifier,
        client_first: &[u8],
        plus: bool,
        offered: Option<&[u8]>,
    ) -> Result<(Self, String), ScramError> {
        let cf = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("utf8"))?;
        // gs2-header: cbind-flag "," [authzid] ","
        let mut parts = cf.splitn(3, ',');
        let flag = parts.next().ok_or(ScramError::Malformed("gs2 header"))?;
        let authzid = parts.next().ok_or(ScramError::Malformed("gs2 header"))?;
        let bare = parts.next().ok_or(ScramError::Malformed("client-first"))?;
        let cb_data = match (flag, plus, offered) {
            ("n", false, _) | ("y", false, None) => Vec::new(),
            ("y", false, Some(_)) => return Err(ScramError::Malformed(
                "the client supports channel binding, which the server offered (downgrade refused)",
            )),
            (f, true, Some(data)) if f.strip_prefix("p=") == Some(CHANNEL_BINDING_TYPE) => {
                data.to_vec()
            }
            (_, true, _) => {
                return Err(ScramError::Malformed(
                    "SCRAM-SHA-256-PLUS needs channel binding type tls-server-end-point",
                ))
            }
            _ => return Err(ScramError::Malformed("channel binding is not supported")),
        };
        // An authorization identity would ask to act as another user than the one
        // logging in; PostgreSQL refuses it, and so do we (never ignored).
        if !authzid.is_empty() {
            return Err(ScramError::Malformed(
                "an authorization identity (authzid) is not supported",
            ));
        }
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or(ScramError::Malformed("client nonce"))?;
        let mut raw = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut raw);
        let nonce = format!("{client_nonce}{}", B64.encode(raw));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        let ex = ScramServer {
            verifier,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            gs2_header: format!("{flag},{authzid},"),
            cb_data,
        };
        Ok((ex, server_first))
    }

    /// Checks client-final; returns the server-final message on success.
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let cf = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("utf8"))?;
        let (without_proof, proof) = cf
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("client proof"))?;
        let mut channel = None;
        let mut nonce = None;
        for a in without_proof.split(',') {
            if let Some(v) = a.strip_prefix("c=") {
                channel = Some(v);
            } else if let Some(v) = a.strip_prefix("r=") {
                nonce = Some(v);
            }
        }
        let mut bound = self.gs2_header.clone().into_bytes();
        bound.extend_from_slice(&self.cb_data);
        if channel != Some(B64.encode(bound).as_str()) {
            return Err(ScramError::Malformed("channel binding data"));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(ScramError::Malformed("nonce mismatch"));
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError::Malformed("client proof"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ signature[i];
        }
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        let diff = stored
            .iter()
            .zip(self.verifier.stored_key.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(ScramError::BadProof);
        }
        let server_sig = hmac(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_sig)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a client exchange by hand (RFC 5802 client algorithm) against the server.
    fn client_exchange(password: &str, verifier: Verifier) -> Result<String, ScramError> {
        let client_first_bare = "n=,r=clientnonce123";
        let (server, server_first) =
            ScramServer::start(verifier, format!("n,,{client_first_bare}").as_bytes())?;
        let mut nonce = "";
        let mut salt = vec![];
        let mut iters = 0;
        for a in server_first.split(',') {
            if let Some(v) = a.strip_prefix("r=") {
                nonce = v;
            } else if let Some(v) = a.strip_prefix("s=") {
                salt = B64.decode(v).unwrap();
            } else if let Some(v) = a.strip_prefix("i=") {
                iters = v.parse().unwrap();
            }
        }
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iters, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect();
        server.finish(format!("{without_proof},p={}", B64.encode(proof)).as_bytes())
    }

    #[test]
    fn accepts_right_password_rejects_wrong() {
        let v = Verifier::from_password("secret");
        assert!(client_exchange("secret", v.clone())
            .unwrap()
            .starts_with("v="));
        assert_eq!(client_exchange("wrong", v), Err(ScramError::BadProof));
    }

    #[test]
    fn verifier_string_round_trips() {
        let v = Verifier::derive("pw", b"0123456789abcdef".to_vec(), 4096);
        assert_eq!(Verifier::parse(&v.to_string_form()), Some(v));
        assert_eq!(Verifier::parse("SCRAM-SHA-256$x"), None);
    }

    #[test]
    fn rejects_channel_binding_and_garbage() {
        let v = Verifier::from_password("x");
        assert!(ScramServer::start(v.clone(), b"p=tls-server-end-point,,n=,r=a").is_err());
        assert!(ScramServer::start(v, b"garbage").is_err());
    }

    #[test]
    fn an_authorization_identity_is_refused() {
        let v = Verifier::from_password("x");
        assert!(ScramServer::start(v.clone(), b"n,a=postgres,n=,r=abc").is_err());
        assert!(ScramServer::start(v, b"n,,n=,r=abc").is_ok());
    }

    #[test]
    fn plus_binds_to_the_offered_data_and_refuses_downgrades() {
        let v = Verifier::from_password("x");
        let first = b"p=tls-server-end-point,,n=,r=abc";
        let (server, sf) = ScramServer::start_bound(v.clone(), first, true, Some(b"CERT")).unwrap();
        let nonce = sf.split(',').next().unwrap().trim_start_matches("r=");
        // Bound to other data: refused before the proof is even looked at.
        let wrong = B64.encode(b"p=tls-server-end-point,,OTHER");
        assert_eq!(
            server.finish(format!("c={wrong},r={nonce},p=AAAA").as_bytes()),
            Err(ScramError::Malformed("channel binding data"))
        );
        assert!(ScramServer::start_bound(v.clone(), b"y,,n=,r=a", false, Some(b"C")).is_err());
        assert!(ScramServer::start_bound(v.clone(), b"y,,n=,r=a", false, None).is_ok());
        assert!(ScramServer::start_bound(v.clone(), b"n,,n=,r=a", true, Some(b"C")).is_err());
        assert!(ScramServer::start_bound(v, first, true, None).is_err());
    }
}
