//! Client authentication through the router: SCRAM, md5, trust, the error codes of
//! failed logins, and the SSL/GSSENC negotiation answered `N`.

mod common;

use bytes::BytesMut;
use common::*;
use orochi_wire::StartupRequest;
use sqlx::postgres::PgSslMode;
use sqlx::{ConnectOptions, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_login_works() {
    let (r, db) = setup("transaction", 2).await;
    let mut c = r.connect(&db).await;
    assert_eq!(one(&mut c, "SELECT current_user::text").await, "app");
    assert_eq!(one(&mut c, "SELECT current_database()::text").await, db);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_28p01() {
    let (r, db) = setup("transaction", 2).await;
    let e = r
        .opts(APP_USER, "not-the-password", &db)
        .connect()
        .await
        .expect_err("wrong password must fail");
    assert_eq!(code(&e).as_deref(), Some("28P01"), "{e}");
    // md5 user with the wrong password too.
    let e = r
        .opts(MD5_USER, "nope", &db)
        .connect()
        .await
        .expect_err("wrong md5 password must fail");
    assert_eq!(code(&e).as_deref(), Some("28P01"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_database_is_3d000() {
    let (r, _db) = setup("transaction", 2).await;
    let e = r
        .opts(APP_USER, APP_PASSWORD, "no_such_pool_here")
        .connect()
        .await
        .expect_err("unknown database must fail");
    assert_eq!(code(&e).as_deref(), Some("3D000"), "{e}");
    assert!(e.to_string().contains("no_such_pool_here"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_is_28000() {
    let (r, db) = setup("transaction", 2).await;
    let e = r
        .opts("nobody_like_this", "x", &db)
        .connect()
        .await
        .expect_err("unknown user must fail");
    assert_eq!(code(&e).as_deref(), Some("28000"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_user_with_hashed_config_password_works() {
    let (r, db) = setup("transaction", 2).await;
    let mut c = r
        .opts(MD5_USER, MD5_PASSWORD, &db)
        .connect()
        .await
        .expect("md5 login through the router");
    // The router logged in to PostgreSQL as md5user too, with the stored hash.
    assert_eq!(one(&mut c, "SELECT current_user::text").await, "md5user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_user_needs_no_password() {
    let (r, db) = setup("transaction", 2).await;
    let mut c = r
        .opts(TRUST_USER, "", &db)
        .connect()
        .await
        .expect("trust login");
    // Mapped to app towards PostgreSQL.
    assert_eq!(one(&mut c, "SELECT current_user::text").await, "app");
    // psql without any password.
    let out = r
        .psql(TRUST_USER, "", &db, &["-At", "-c", "SELECT 40 + 2"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_verifier_in_config_works() {
    let db = scratch_db().await;
    let verifier =
        orochi_wire::scram::Verifier::derive("v3rifier", b"0123456789abcdef".to_vec(), 4096)
            .to_string_form();
    let f = fleet();
    let body = format!(
        r#"
[pools.{db}]
pool_mode = "transaction"
[pools.{db}.users.0]
username = "vuser"
password = "{verifier}"
server_username = "app"
server_password = "secret"
pool_size = 1
[pools.{db}.shards.0]
database = "{db}"
servers = [["{}", {}, "primary"]]
"#,
        f.host, f.port
    );
    let r = Router::start(&body).await;
    let mut c = r
        .opts("vuser", "v3rifier", &db)
        .connect()
        .await
        .expect("SCRAM with stored verifier");
    assert_eq!(one(&mut c, "SELECT 'ok'::text").await, "ok");
    let e = r
        .opts("vuser", "wrong", &db)
        .connect()
        .await
        .expect_err("wrong password");
    assert_eq!(code(&e).as_deref(), Some("28P01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_request_answered_n_and_sslmode_prefer_connects() {
    let (r, db) = setup("transaction", 2).await;
    // sqlx with sslmode=prefer sends SSLRequest, gets N, continues in clear text.
    let mut c = r
        .opts(APP_USER, APP_PASSWORD, &db)
        .ssl_mode(PgSslMode::Prefer)
        .connect()
        .await
        .expect("sslmode=prefer through the router");
    assert_eq!(one(&mut c, "SELECT 'x'::text").await, "x");
    // sslmode=require must fail (the router does not offer TLS yet), not hang.
    let e = within(
        10,
        "sslmode=require",
        r.opts(APP_USER, APP_PASSWORD, &db)
            .ssl_mode(PgSslMode::Require)
            .connect(),
    )
    .await;
    assert!(e.is_err(), "sslmode=require must be refused");

    // Raw: SSLRequest then GSSENCRequest, each answered with one byte 'N', then a
    // normal startup on the same connection.
    for req in [StartupRequest::Ssl, StartupRequest::GssEnc] {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", r.port))
            .await
            .unwrap();
        let mut b = BytesMut::new();
        req.encode(&mut b);
        s.write_all(&b).await.unwrap();
        let mut one_byte = [0u8; 1];
        within(5, "SSL answer", s.read_exact(&mut one_byte))
            .await
            .unwrap();
        assert_eq!(one_byte[0], b'N', "{req:?}");
        let mut b = BytesMut::new();
        StartupRequest::Startup {
            minor: 0,
            params: vec![
                ("user".into(), TRUST_USER.into()),
                ("database".into(), db.clone()),
            ],
        }
        .encode(&mut b);
        s.write_all(&b).await.unwrap();
        let mut head = [0u8; 9];
        within(5, "auth ok after N", s.read_exact(&mut head))
            .await
            .unwrap();
        assert_eq!(head[0], b'R', "AuthenticationOk expected after {req:?}");
        assert_eq!(&head[5..9], &[0, 0, 0, 0], "AuthenticationOk expected");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_scram_and_md5_logins() {
    let (r, db) = setup("transaction", 2).await;
    for (u, p) in [(APP_USER, APP_PASSWORD), (MD5_USER, MD5_PASSWORD)] {
        let out = r
            .psql(u, p, &db, &["-At", "-c", "SELECT current_user"])
            .await;
        assert!(
            out.status.success(),
            "{u}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), u);
    }
    let out = r
        .psql(APP_USER, "bad", &db, &["-At", "-c", "SELECT 1"])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password authentication failed"), "{err}");
}
