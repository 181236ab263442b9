//! The JWT gateway (SPEC §9, issue 14) against two real shards: a table distributed by
//! `tenant_id` with an RLS policy on `request.jwt.claims`; tokens made here.
//! Tenant isolation, role and shard escapes, every token refusal, TLS and size limits,
//! and the per-tenant connection limit. Key rotation is in `gateway_keys.rs`.

mod common;

use common::gateway::{code, rows_of, tenants, Bed, AUDIENCE, ISSUER, ROLE};
use common::raw::{bind, execute, first_column, first_error, parse, RawClient};
use orochi_wire::FrontendMessage;
use serde_json::{json, Value};

/// The first column of a query that must succeed.
async fn one<S>(c: &mut RawClient<S>, sql: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ms = c.query(sql).await;
    if let Some(e) = first_error(&ms) {
        panic!("{sql}: {} {}", e.code, e.message);
    }
    first_column(&ms).join(",")
}

/// The SQLSTATE a query fails with.
async fn err<S>(c: &mut RawClient<S>, sql: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ms = c.query(sql).await;
    first_error(&ms)
        .map(|e| e.code.clone())
        .unwrap_or_else(|| format!("no error for {sql}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_sees_exactly_its_tenants_rows_as_its_role() {
    let bed = Bed::start(2, "").await;
    let (a, _, c) = tenants();
    for t in [a, c] {
        let mut cl = bed.login(&bed.token(t)).await.expect("login");
        assert_eq!(one(&mut cl, "SELECT current_user").await, ROLE);
        let claims = one(
            &mut cl,
            "SELECT current_setting('request.jwt.claims', true)",
        )
        .await;
        let claims: Value = serde_json::from_str(&claims).unwrap();
        assert_eq!(claims["tenant_id"], json!(t));
        assert_eq!(claims["iss"], json!(ISSUER));
        // No key: would fan out, runs on the tenant's shard only; RLS keeps the rest out.
        let seen = one(&mut cl, "SELECT count(*) || '/' || count(DISTINCT tenant_id) || '/' || min(tenant_id) FROM notes").await;
        assert_eq!(seen, format!("{}/1/{t}", rows_of(t)));
        let keyed = one(
            &mut cl,
            &format!("SELECT count(*) FROM notes WHERE tenant_id = {t}"),
        )
        .await;
        assert_eq!(keyed, rows_of(t).to_string());
        // Explicit transactions keep the role and claims; so does the extended protocol.
        assert_eq!(one(&mut cl, "BEGIN").await, "");
        assert_eq!(one(&mut cl, "SELECT current_user").await, ROLE);
        assert_eq!(
            one(
                &mut cl,
                &format!("INSERT INTO notes VALUES ({t}, 100, 'new') RETURNING tenant_id")
            )
            .await,
            t.to_string()
        );
        assert_eq!(one(&mut cl, "ROLLBACK").await, "");
        cl.send(&[
            parse("", "SELECT count(*) FROM notes WHERE tenant_id = $1"),
            bind("", "", &[&t.to_string()]),
            execute("", 0),
            FrontendMessage::Sync,
        ])
        .await;
        let ms = cl.until_ready().await;
        assert_eq!(first_column(&ms), vec![rows_of(t).to_string()]);
        // A multi-statement query that commits half way keeps its identity.
        let ms = cl
            .query("BEGIN; SELECT 1; COMMIT; SELECT current_user")
            .await;
        assert_eq!(first_column(&ms), vec!["1".to_string(), ROLE.to_string()]);
    }
    assert_eq!(bed.logins("ok"), 2);
    assert_eq!(
        bed.logins("expired"),
        0,
        "every outcome is present from the start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_tenants_keys_and_manual_shards_are_refused() {
    let bed = Bed::start(2, "").await;
    let (a, b, c) = tenants();
    let mut cl = bed.login(&bed.token(a)).await.expect("login");
    // C lives on the other shard; B on A's shard (every table is keyed by tenant_id).
    for sql in [
        format!("SELECT * FROM notes WHERE tenant_id = {c}"),
        format!("SELECT * FROM notes WHERE tenant_id IN ({a}, {c})"),
        format!("INSERT INTO notes VALUES ({c}, 1, 'x')"),
        format!("DELETE FROM notes WHERE tenant_id = {b}"),
        "SET orochi.shard = 1".to_string(),
        "SET orochi.shard = 0".to_string(),
        "RESET orochi.shard".to_string(),
        "/* orochi.shard = 1 */ SELECT 1".to_string(),
        "COPY notes FROM STDIN".to_string(),
    ] {
        assert_eq!(err(&mut cl, &sql).await, "42501", "{sql}");
    }
    // Bound parameters are checked at Bind.
    cl.send(&[
        parse("", "SELECT count(*) FROM notes WHERE tenant_id = $1"),
        bind("", "", &[&c.to_string()]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = cl.until_ready().await;
    assert_eq!(first_error(&ms).map(|e| e.code.as_str()), Some("42501"));
    // The session goes on, on its own shard.
    assert_eq!(
        one(&mut cl, "SELECT count(*) FROM notes").await,
        rows_of(a).to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_escapes_are_refused_and_change_nothing() {
    let bed = Bed::start(2, "").await;
    let (a, _, _) = tenants();
    let mut cl = bed.login(&bed.token(a)).await.expect("login");
    for sql in [
        "SET ROLE app",
        "SET ROLE NONE",
        "RESET ROLE",
        "SET LOCAL ROLE app",
        "SET SESSION AUTHORIZATION app",
        "RESET SESSION AUTHORIZATION",
        "RESET ALL",
        "DISCARD ALL",
        "SELECT set_config('role', 'app', false)",
        "SELECT set_config('request.jwt.claims', '{\"tenant_id\": 1}', false)",
        "SET request.jwt.claims = '{\"tenant_id\": 1}'",
        "SELECT 1; RESET ROLE",
        "DO $$ BEGIN EXECUTE 'RESET ROLE'; END $$",
    ] {
        assert_eq!(err(&mut cl, sql).await, "42501", "{sql}");
        assert_eq!(one(&mut cl, "SELECT current_user").await, ROLE, "{sql}");
    }
    cl.send(&[parse("", "RESET ROLE"), FrontendMessage::Sync])
        .await;
    let ms = cl.until_ready().await;
    assert_eq!(first_error(&ms).map(|e| e.code.as_str()), Some("42501"));
    let t = one(
        &mut cl,
        "SELECT current_setting('request.jwt.claims')::jsonb->>'tenant_id'",
    )
    .await;
    assert_eq!(t, a.to_string());
    // Startup settings cannot name the identity either.
    let s = bed.tls().await;
    let r = RawClient::login_password(
        s,
        ROLE,
        &bed.db,
        &[("options", "-c role=app")],
        Some(&bed.token(a)),
    )
    .await;
    assert_eq!(code(r), "42501");
    // The residual risk the README names: a function using dynamic SQL can end the
    // SET ROLE inside its transaction; the next transaction has the token's role again.
    bed.create_escape_function(a).await;
    assert_eq!(one(&mut cl, "SELECT escape_role()").await, "app");
    assert_eq!(one(&mut cl, "SELECT current_user").await, ROLE);
    assert_eq!(
        one(
            &mut cl,
            "SELECT current_setting('request.jwt.claims')::jsonb->>'tenant_id'"
        )
        .await,
        a.to_string()
    );
    // A role the authenticator cannot become: nothing runs, never as the authenticator.
    let t = token_with(&bed, |c| {
        c.insert("role".into(), json!("gw_nobody"));
    });
    match bed.login_as("gw_nobody", &t).await {
        Err(e) => assert_eq!(e.code, "42501", "{}", e.message),
        Ok(mut cl) => {
            assert_eq!(err(&mut cl, "SELECT current_user").await, "42501");
            assert_eq!(err(&mut cl, "SELECT 1").await, "42501");
        }
    }
}

/// Claims of a good token, changed by `f`, signed with the bed's key.
fn token_with(bed: &Bed, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let (a, _, _) = tenants();
    let mut c = bed.claims(a);
    f(&mut c);
    bed.key.sign(Some("k1"), &c).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_gets_28p01() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bed = Bed::start(2, "").await;
    let now = orochi_router::gateway::token::now();
    let good = bed.token(tenants().0);
    let parts: Vec<&str> = good.split('.').collect();
    let (a, _, _) = tenants();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            token_with(&bed, |c| {
                c.insert("exp".into(), json!(now - 120));
            }),
            "expired",
        ),
        (
            "nbf in the future",
            token_with(&bed, |c| {
                c.insert("nbf".into(), json!(now + 600));
            }),
            "not_yet_valid",
        ),
        (
            "wrong aud",
            token_with(&bed, |c| {
                c.insert("aud".into(), json!("someone-else"));
            }),
            "bad_claims",
        ),
        (
            "wrong iss",
            token_with(&bed, |c| {
                c.insert("iss".into(), json!("https://evil.test/"));
            }),
            "bad_claims",
        ),
        (
            "string exp",
            token_with(&bed, |c| {
                c.insert("exp".into(), json!((now + 600).to_string()));
            }),
            "bad_claims",
        ),
        (
            "alg=none",
            format!(
                "{}.{}.",
                b64.encode(json!({"alg":"none","kid":"k1"}).to_string()),
                parts[1]
            ),
            "bad_algorithm",
        ),
        (
            "tampered",
            format!(
                "{}.{}.{}",
                parts[0],
                b64.encode(serde_json::Value::Object(bed.claims(a + 1000)).to_string()),
                parts[2]
            ),
            "bad_signature",
        ),
        (
            "unknown kid",
            common::gateway::new_key()
                .sign(Some("k9"), &bed.claims(a))
                .unwrap(),
            "unknown_kid",
        ),
        (
            "no role",
            token_with(&bed, |c| {
                c.remove("role");
            }),
            "bad_claims",
        ),
    ];
    for (what, token, outcome) in &cases {
        let before = bed.logins(outcome);
        match bed.login(token).await {
            Ok(_) => panic!("{what}: logged in"),
            Err(e) => {
                assert_eq!(e.code, "28P01", "{what}: {}", e.message);
                assert_eq!(
                    e.message,
                    format!("password authentication failed for user \"{ROLE}\""),
                    "{what}"
                );
            }
        }
        assert_eq!(
            bed.logins(outcome),
            before + 1,
            "{what} counted as {outcome}"
        );
    }
    // Signed for another audience list: ours is one of the gateway's two.
    let t = token_with(&bed, |c| {
        c.insert("aud".into(), json!(["x", AUDIENCE]));
    });
    assert!(bed.login(&t).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_signed_with_the_rsa_public_key_gets_28p01() {
    use base64::Engine;
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bed = Bed::start(2, "").await;
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
    let rsa_key = orochi_router::gateway::token::SigningKey::from_pem(pem.as_bytes()).unwrap();
    std::fs::write(
        &bed.jwks,
        common::gateway::jwks_of(&[("k1", &bed.key), ("rsa", &rsa_key)]),
    )
    .unwrap();
    bed.router.app.reload().expect("reload");
    let (a, _, _) = tenants();
    // The RSA key works for RS256 ...
    let ok = rsa_key.sign(Some("rsa"), &bed.claims(a)).unwrap();
    assert!(bed.login(&ok).await.is_ok());
    // ... and an HS256 token "signed" with its public key is refused.
    let public = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let msg = format!(
        "{}.{}",
        b64.encode(json!({"alg":"HS256","kid":"rsa","typ":"JWT"}).to_string()),
        b64.encode(Value::Object(bed.claims(a)).to_string())
    );
    let sig = jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()).unwrap(),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    let before = bed.logins("bad_algorithm");
    assert_eq!(code(bed.login(&format!("{msg}.{sig}")).await), "28P01");
    assert_eq!(bed.logins("bad_algorithm"), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_wrong_user_and_sizes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bed = Bed::start(2, "").await;
    let (a, _, _) = tenants();
    // Plaintext: refused with 28000, whatever the client port's sslmode.
    let r = RawClient::connect(bed.port(), ROLE, &bed.db, &[]).await;
    assert_eq!(r.err().map(|e| e.code), Some("28000".into()));
    assert_eq!(bed.logins("no_tls"), 1);
    // The startup user must be the role claim.
    assert_eq!(code(bed.login_as("app", &bed.token(a)).await), "28000");
    assert_eq!(bed.logins("wrong_user"), 1);
    // A 4 KB token (Azure AD size) passes.
    let big = token_with(&bed, |c| {
        c.insert("groups".into(), json!("g".repeat(4000)));
    });
    assert!(big.len() > 4000);
    let mut cl = bed.login(&big).await.expect("a 4 KB token logs in");
    assert_eq!(one(&mut cl, "SELECT current_user").await, ROLE);
    // A password message declaring 17 KiB is refused from its header alone.
    let mut s = bed.tls().await;
    let mut startup = bytes::BytesMut::new();
    orochi_wire::StartupRequest::Startup {
        minor: 0,
        params: vec![
            ("user".into(), ROLE.into()),
            ("database".into(), bed.db.clone()),
        ],
    }
    .encode(&mut startup);
    s.write_all(&startup).await.unwrap();
    let mut auth = [0u8; 9];
    s.read_exact(&mut auth).await.unwrap();
    assert_eq!(auth[0], b'R');
    let len: i32 = 17 * 1024 + 4;
    let mut header = vec![b'p'];
    header.extend_from_slice(&len.to_be_bytes());
    s.write_all(&header).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "refused without waiting for the body");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("28P01"), "{text}");
    assert_eq!(bed.logins("too_large"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_per_tenant_gives_53300() {
    let bed = Bed::start(2, "max_connections_per_tenant = 2").await;
    let (a, b, _) = tenants();
    let c1 = bed.login(&bed.token(a)).await.expect("first");
    let _c2 = bed.login(&bed.token(a)).await.expect("second");
    assert_eq!(code(bed.login(&bed.token(a)).await), "53300");
    assert_eq!(bed.logins("tenant_limit"), 1);
    // Another tenant is not affected; a place freed is given again.
    let _other = bed.login(&bed.token(b)).await.expect("other tenant");
    drop(c1);
    let mut ok = false;
    for _ in 0..50 {
        if bed.login(&bed.token(a)).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok, "the place of a closed session is given again");
}
