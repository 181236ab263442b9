//! Token verification: pure (no sockets, no clock of its own), so every refusal has a
//! unit test beside it.
//!
//! `jsonwebtoken` (≥ 10.3, for CVE-2026-25537: a string-typed `exp` skipped
//! validation) checks the signature, `exp`, `nbf`, `iss` and `aud`; around it the
//! gateway adds what the crate leaves to its caller or what SPEC §9 is stricter about:
//! the algorithm must be the one key's own (see `keys`), `alg=none` is named as such in
//! the log, `exp`/`nbf`/`iat` must be JSON numbers, `iat` may not lie in the future
//! (beyond the leeway), and `iss` must be one string equal to the configured issuer
//! (the crate also accepts a list). Unknown `crit` headers are refused by the crate's
//! header parser. Every refusal carries an [`Outcome`] (a metrics label) and the exact
//! reason for the log; the client only ever learns "password authentication failed".

use super::keys::KeySet;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Validation};
use serde_json::Value;
use std::str::FromStr;

/// How a login ended: a closed set, the `outcome` label of the login counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Expired,
    NotYetValid,
    BadSignature,
    BadAlgorithm,
    UnknownKid,
    BadClaims,
    Malformed,
    /// The startup `user` is not the role claim.
    WrongUser,
    /// A pre-authentication message over the size limit.
    TooLarge,
    /// A plaintext connection (TLS is required on the gateway port).
    NoTls,
    /// `max_connections_per_tenant` reached.
    TenantLimit,
}

impl Outcome {
    pub const ALL: [Outcome; 12] = [
        Outcome::Ok,
        Outcome::Expired,
        Outcome::NotYetValid,
        Outcome::BadSignature,
        Outcome::BadAlgorithm,
        Outcome::UnknownKid,
        Outcome::BadClaims,
        Outcome::Malformed,
        Outcome::WrongUser,
        Outcome::TooLarge,
        Outcome::NoTls,
        Outcome::TenantLimit,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Expired => "expired",
            Outcome::NotYetValid => "not_yet_valid",
            Outcome::BadSignature => "bad_signature",
            Outcome::BadAlgorithm => "bad_algorithm",
            Outcome::UnknownKid => "unknown_kid",
            Outcome::BadClaims => "bad_claims",
            Outcome::Malformed => "malformed",
            Outcome::WrongUser => "wrong_user",
            Outcome::TooLarge => "too_large",
            Outcome::NoTls => "no_tls",
            Outcome::TenantLimit => "tenant_limit",
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub outcome: Outcome,
    /// For the log only.
    pub reason: String,
}

fn refuse(outcome: Outcome, reason: impl Into<String>) -> Refusal {
    Refusal {
        outcome,
        reason: reason.into(),
    }
}

/// What a token must satisfy (from `[gateway]`).
#[derive(Debug, Clone)]
pub struct Policy {
    pub issuer: String,
    pub audience: Vec<String>,
    pub leeway_seconds: u64,
}

/// A verified token.
#[derive(Debug, Clone)]
pub struct Verified {
    pub kid: Option<String>,
    pub claims: serde_json::Map<String, Value>,
}

/// The token's header as JSON, read without trusting it, for a precise refusal reason
/// when the crate cannot parse it (`alg=none`, an unknown algorithm).
fn raw_header(token: &str) -> Option<Value> {
    let first = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn header_refusal(token: &str, e: &jsonwebtoken::errors::Error) -> Refusal {
    let h = raw_header(token);
    let alg = h
        .as_ref()
        .and_then(|h| h.get("alg"))
        .and_then(Value::as_str);
    if alg.is_some_and(|a| a.eq_ignore_ascii_case("none")) {
        return refuse(
            Outcome::BadAlgorithm,
            "alg=none (an unsigned token) refused",
        );
    }
    if h.as_ref().is_some_and(|h| h.get("crit").is_some()) {
        return refuse(Outcome::Malformed, format!("unsupported crit header: {e}"));
    }
    if let Some(a) = alg {
        if jsonwebtoken::Algorithm::from_str(a).is_err() {
            return refuse(Outcome::BadAlgorithm, format!("unsupported alg \"{a}\""));
        }
    }
    refuse(Outcome::Malformed, format!("malformed token: {e}"))
}

/// Is the token's `name` claim, when present, a JSON number?
fn numeric_or_absent(claims: &serde_json::Map<String, Value>, name: &str) -> Result<(), Refusal> {
    match claims.get(name) {
        None | Some(Value::Number(_)) => Ok(()),
        Some(other) => Err(refuse(
            Outcome::BadClaims,
            format!("claim \"{name}\" must be a number (seconds since 1970), found {other}"),
        )),
    }
}

/// Verifies `token` at time `now` (seconds since 1970).
pub fn verify(token: &str, keys: &KeySet, policy: &Policy, now: u64) -> Result<Verified, Refusal> {
    let header = decode_header(token).map_err(|e| header_refusal(token, &e))?;
    if let Some(crit) = &header.crit {
        // No extension is understood here, so every critical one is unknown (RFC 7515
        // §4.1.11: the token must then be refused).
        return Err(refuse(
            Outcome::Malformed,
            format!("critical header extension(s) {crit:?} not supported"),
        ));
    }
    let kid = header.kid.clone();
    let Some(key) = keys.find(kid.as_deref()) else {
        return Err(refuse(
            Outcome::UnknownKid,
            match &kid {
                Some(k) => format!("unknown kid \"{k}\""),
                None => "the token names no kid and the key set has several keys".into(),
            },
        ));
    };
    if header.alg != key.alg {
        return Err(refuse(
            Outcome::BadAlgorithm,
            format!(
                "token alg {:?} but key \"{}\" accepts only {:?}",
                header.alg,
                kid.as_deref().unwrap_or(""),
                key.alg
            ),
        ));
    }
    let mut v = Validation::new(key.alg);
    v.leeway = policy.leeway_seconds;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.set_issuer(&[policy.issuer.as_str()]);
    v.set_audience(&policy.audience);
    // The crate reads the clock itself; `now` is checked again below so tests can move it.
    let data = decode::<serde_json::Map<String, Value>>(token, &key.key, &v).map_err(|e| {
        let reason = format!("{e}");
        match e.kind() {
            ErrorKind::ExpiredSignature => refuse(Outcome::Expired, "token expired (exp)"),
            ErrorKind::ImmatureSignature => {
                refuse(Outcome::NotYetValid, "token not valid yet (nbf)")
            }
            ErrorKind::InvalidSignature => {
                refuse(Outcome::BadSignature, "signature does not verify")
            }
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                refuse(Outcome::BadAlgorithm, reason)
            }
            ErrorKind::InvalidIssuer => refuse(Outcome::BadClaims, "wrong issuer (iss)"),
            ErrorKind::InvalidAudience => refuse(Outcome::BadClaims, "wrong audience (aud)"),
            ErrorKind::MissingRequiredClaim(c) => {
                refuse(Outcome::BadClaims, format!("missing claim \"{c}\""))
            }
            ErrorKind::InvalidClaimFormat(c) => refuse(
                Outcome::BadClaims,
                format!("claim \"{c}\" has the wrong type"),
            ),
            _ => refuse(Outcome::Malformed, reason),
        }
    })?;
    let claims = data.claims;
    for c in ["exp", "nbf", "iat"] {
        numeric_or_absent(&claims, c)?;
    }
    let num = |c: &str| claims.get(c).and_then(Value::as_f64);
    let leeway = policy.leeway_seconds as f64;
    let now_f = now as f64;
    match num("exp") {
        Some(exp) if exp + leeway < now_f => {
            return Err(refuse(Outcome::Expired, "token expired (exp)"))
        }
        Some(_) => {}
        None => return Err(refuse(Outcome::BadClaims, "missing claim \"exp\"")),
    }
    if num("nbf").is_some_and(|nbf| nbf > now_f + leeway) {
        return Err(refuse(Outcome::NotYetValid, "token not valid yet (nbf)"));
    }
    if num("iat").is_some_and(|iat| iat > now_f + leeway) {
        return Err(refuse(
            Outcome::NotYetValid,
            "token issued in the future (iat)",
        ));
    }
    if claims.get("iss").and_then(Value::as_str) != Some(policy.issuer.as_str()) {
        return Err(refuse(
            Outcome::BadClaims,
            "wrong issuer (iss must be one string equal to [gateway] issuer)",
        ));
    }
    Ok(Verified { kid, claims })
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
