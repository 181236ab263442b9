//! Every refusal of `verify`, with keys made here (Ed25519 by rcgen, RSA by the `rsa`
//! crate) and tokens assembled by hand where a library would refuse to make them.

use super::*;
use crate::gateway::keys::KeySet;
use crate::gateway::token::{generate_dev_key, SigningKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use std::sync::OnceLock;

fn now() -> u64 {
    crate::gateway::token::now()
}

fn policy() -> Policy {
    Policy {
        issuer: "https://idp.example/".into(),
        audience: vec!["orochi".into()],
        leeway_seconds: 30,
    }
}

fn claims() -> Value {
    json!({"iss": "https://idp.example/", "aud": "orochi", "sub": "u", "role": "app_user",
           "exp": now() + 600, "iat": now() - 5})
}

/// header.payload.signature, signed with `key` under `alg` whatever the header says.
fn craft(header: Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let msg = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    format!("{msg}.{sig}")
}

struct Ed {
    key: SigningKey,
    set: KeySet,
}

fn ed() -> &'static Ed {
    static K: OnceLock<Ed> = OnceLock::new();
    K.get_or_init(|| {
        let key = SigningKey::from_pem(generate_dev_key().unwrap().as_bytes()).unwrap();
        let (set, _) = KeySet::from_jwks(&key.jwks("ed").unwrap()).unwrap();
        Ed { key, set }
    })
}

fn sign(c: &Value) -> String {
    ed().key.sign(Some("ed"), c.as_object().unwrap()).unwrap()
}

fn outcome(token: &str) -> Outcome {
    match verify(token, &ed().set, &policy(), now()) {
        Ok(_) => Outcome::Ok,
        Err(r) => r.outcome,
    }
}

fn with(k: &str, v: Value) -> Value {
    let mut c = claims();
    c[k] = v;
    c
}

#[test]
fn a_good_token_passes_with_its_claims_and_kid() {
    let v = verify(&sign(&claims()), &ed().set, &policy(), now()).unwrap();
    assert_eq!(v.kid.as_deref(), Some("ed"));
    assert_eq!(v.claims["role"], "app_user");
    // An audience list naming ours passes.
    assert_eq!(
        outcome(&sign(&with("aud", json!(["x", "orochi"])))),
        Outcome::Ok
    );
}

#[test]
fn time_claims_with_leeway() {
    assert_eq!(
        outcome(&sign(&with("exp", json!(now() - 60)))),
        Outcome::Expired
    );
    assert_eq!(outcome(&sign(&with("exp", json!(now() - 10)))), Outcome::Ok);
    assert_eq!(
        outcome(&sign(&with("nbf", json!(now() + 300)))),
        Outcome::NotYetValid
    );
    assert_eq!(outcome(&sign(&with("nbf", json!(now() + 10)))), Outcome::Ok);
    assert_eq!(
        outcome(&sign(&with("iat", json!(now() + 300)))),
        Outcome::NotYetValid
    );
}

#[test]
fn exp_is_required_and_must_be_a_number() {
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(outcome(&sign(&c)), Outcome::BadClaims);
    // CVE-2026-25537: a string-typed exp must not skip the check.
    let s = (now() - 1000).to_string();
    assert_eq!(outcome(&sign(&with("exp", json!(s)))), Outcome::BadClaims);
    let s = (now() + 1000).to_string();
    assert_eq!(outcome(&sign(&with("exp", json!(s)))), Outcome::BadClaims);
    assert_eq!(outcome(&sign(&with("nbf", json!("0")))), Outcome::BadClaims);
}

#[test]
fn issuer_and_audience_must_match() {
    assert_eq!(
        outcome(&sign(&with("iss", json!("https://evil.example/")))),
        Outcome::BadClaims
    );
    assert_eq!(
        outcome(&sign(&with("iss", json!(["https://idp.example/", "x"])))),
        Outcome::BadClaims,
        "iss must be one string"
    );
    assert_eq!(
        outcome(&sign(&with("aud", json!("other")))),
        Outcome::BadClaims
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(outcome(&sign(&c)), Outcome::BadClaims);
}

#[test]
fn signatures_kids_and_algorithms() {
    let good = sign(&claims());
    // Tampered payload, original signature.
    let parts: Vec<&str> = good.split('.').collect();
    let forged = B64.encode(with("role", json!("postgres")).to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
    assert_eq!(outcome(&tampered), Outcome::BadSignature);
    // Unknown kid.
    let other = SigningKey::from_pem(generate_dev_key().unwrap().as_bytes()).unwrap();
    let t = other
        .sign(Some("nope"), claims().as_object().unwrap())
        .unwrap();
    assert_eq!(outcome(&t), Outcome::UnknownKid);
    // A known kid, signed by another key.
    let t = other
        .sign(Some("ed"), claims().as_object().unwrap())
        .unwrap();
    assert_eq!(outcome(&t), Outcome::BadSignature);
    // alg=none, with or without a signature.
    let none = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "kid": "ed"}).to_string()),
        B64.encode(claims().to_string())
    );
    assert_eq!(outcome(&none), Outcome::BadAlgorithm);
    // Unknown critical header.
    let secret = EncodingKey::from_secret(b"x").unwrap();
    let crit = craft(
        json!({"alg": "EdDSA", "kid": "ed", "crit": ["exp"], "exp": 1}),
        &claims(),
        &secret,
        Algorithm::HS256,
    );
    assert_eq!(outcome(&crit), Outcome::Malformed);
    assert_eq!(outcome("not.a.token"), Outcome::Malformed);
    assert_eq!(outcome(""), Outcome::Malformed);
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(key.alg, Algorithm::RS256);
    let (set, _) = KeySet::from_jwks(&key.jwks("rsa").unwrap()).unwrap();
    let ok = key
        .sign(Some("rsa"), claims().as_object().unwrap())
        .unwrap();
    assert!(verify(&ok, &set, &policy(), now()).is_ok());
    let public = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let confused = craft(
        json!({"alg": "HS256", "kid": "rsa", "typ": "JWT"}),
        &claims(),
        &EncodingKey::from_secret(public.as_bytes()).unwrap(),
        Algorithm::HS256,
    );
    let r = verify(&confused, &set, &policy(), now()).unwrap_err();
    assert_eq!(r.outcome, Outcome::BadAlgorithm, "{r:?}");
}

#[test]
fn hs256_secret_accepts_only_hs256() {
    let set = KeySet::hs256("0123456789abcdef0123456789abcdef").unwrap();
    let secret = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
    let t = craft(
        json!({"alg": "HS256"}),
        &claims(),
        &secret,
        Algorithm::HS256,
    );
    assert!(verify(&t, &set, &policy(), now()).is_ok());
    let t = craft(
        json!({"alg": "HS384"}),
        &claims(),
        &secret,
        Algorithm::HS384,
    );
    let r = verify(&t, &set, &policy(), now()).unwrap_err();
    assert_eq!(r.outcome, Outcome::BadAlgorithm);
}
