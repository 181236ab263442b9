//! TLS between clients and the router (SPEC §8, issue 13): psql with verify-full and
//! channel binding through a served chain, the admin port, `require`, mTLS across a
//! RELOAD, certificate rotation, PostgreSQL 17's direct TLS, and hostile negotiation.
//! Certificates are made here with rcgen; PostgreSQL is the fleet's `single`.

mod common;

use common::certs::{scratch_dir, write, Ca};
use common::raw::RawClient;
use common::{pool_toml, psql_cmd, scratch_db, Router, APP_PASSWORD, APP_USER, TRUST_USER};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sqlx::ConnectOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How the test client starts TLS.
enum Start {
    SslRequest,
    /// PostgreSQL 17's direct TLS, with this ALPN list.
    Direct(Vec<Vec<u8>>),
}

/// A Rust TLS client: trusts `ca`, optionally presents a client certificate.
async fn tls_connect(
    port: u16,
    ca: &Path,
    start: Start,
    identity: Option<(&Path, &Path)>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => b
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    match start {
        Start::SslRequest => {
            tcp.write_all(&SSL_REQUEST).await?;
            let mut answer = [0u8; 1];
            tcp.read_exact(&mut answer).await?;
            assert_eq!(answer[0], b'S', "the router must accept TLS");
        }
        Start::Direct(alpn) => config.alpn_protocols = alpn,
    }
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// The leaf certificate the router served.
fn served(s: &TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// True when the router closes the connection without a single byte of answer.
async fn closed_silently(mut s: impl AsyncReadExt + Unpin) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

struct Files {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A root CA, an intermediate, and a router certificate for 127.0.0.1 signed by the
/// intermediate; the certificate file holds the chain (leaf, intermediate).
fn router_files(tag: &str) -> (Ca, Ca, Files) {
    let dir = scratch_dir(tag);
    let root = Ca::new("test root");
    let inter = root.intermediate("test intermediate");
    let leaf = inter.leaf("router", &["127.0.0.1", "localhost"], 1);
    let files = Files {
        ca: write(&dir, "root.crt", &root.pem()),
        cert: write(&dir, "router.crt", &(leaf.cert_pem + &inter.pem())),
        key: write(&dir, "router.key", &leaf.key_pem),
        dir,
    };
    (root, inter, files)
}

fn tls_general(f: &Files, mode: &str, extra: &str) -> String {
    format!(
        "tls_certificate = \"{}\"\ntls_private_key = \"{}\"\nclient_tls_sslmode = \"{mode}\"\nadmin_password = \"adminpw\"\nconnect_timeout = 1000\n{extra}",
        f.cert.display(),
        f.key.display()
    )
}

/// psql through the router with `sslmode`, trusting `ca`.
async fn psql(
    port: u16,
    user: &str,
    pw: &str,
    db: &str,
    sql: &str,
    env: &[(&str, &Path)],
    sslmode: &str,
) -> std::process::Output {
    let mut c = psql_cmd(port, user, pw, db, &["-Atc", sql]);
    c.env("PGSSLMODE", sslmode)
        .env("PGSSLCERT", "/nonexistent/client.crt")
        .env("PGSSLKEY", "/nonexistent/client.key");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().await.expect("run psql")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_verify_full_with_channel_binding_through_a_served_chain_and_the_admin_port() {
    let (_root, _inter, f) = router_files("chain");
    let db = scratch_db().await;
    let r = Router::start_with(
        &tls_general(&f, "require", ""),
        &pool_toml(&db, "transaction", 2, ""),
    )
    .await;
    let ca = [("PGSSLROOTCERT", f.ca.as_path())];
    // The client trusts only the root: the handshake works because the intermediate is
    // served with the leaf. channel_binding=require needs SCRAM-SHA-256-PLUS.
    let mut env = ca.to_vec();
    let require = Path::new("require");
    env.push(("PGCHANNELBINDING", require));
    let o = psql(
        r.port,
        APP_USER,
        APP_PASSWORD,
        &db,
        "SELECT 40 + 2",
        &env,
        "verify-full",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "42");

    // A client that stays connected over TLS, then SHOW CLIENTS on the admin port, which
    // serves the same certificate (verify-full again).
    let tls = tls_connect(r.port, &f.ca, Start::SslRequest, None)
        .await
        .unwrap();
    let mut c = RawClient::login(tls, TRUST_USER, &db, &[]).await.unwrap();
    assert_eq!(c.rows("SELECT 1").await, vec!["1"]);
    let o = psql(
        r.admin_port,
        "admin",
        "adminpw",
        "orochi",
        "SHOW CLIENTS",
        &ca,
        "verify-full",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.contains(TRUST_USER) && l.contains("|TLSv1.3/TLS_AES_256_GCM_SHA384|")),
        "SHOW CLIENTS fills the tls column:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_is_refused_under_require_and_a_client_trusting_another_ca_fails() {
    let (_root, _inter, f) = router_files("require");
    let db = scratch_db().await;
    let r = Router::start_with(
        &tls_general(&f, "require", ""),
        &pool_toml(&db, "transaction", 2, ""),
    )
    .await;
    let err = r
        .opts(APP_USER, APP_PASSWORD, &db)
        .connect()
        .await
        .expect_err("plaintext must be refused");
    assert_eq!(common::code(&err).as_deref(), Some("28000"), "{err}");
    assert!(err.to_string().contains("TLS is required"), "{err}");
    let o = psql(
        r.port,
        APP_USER,
        APP_PASSWORD,
        &db,
        "SELECT 1",
        &[],
        "disable",
    )
    .await;
    assert!(
        !o.status.success() && text(&o).contains("TLS is required"),
        "{}",
        text(&o)
    );

    let other = scratch_dir("other-ca");
    let other_ca = write(&other, "other.crt", &Ca::new("someone else").pem());
    let o = psql(
        r.port,
        APP_USER,
        APP_PASSWORD,
        &db,
        "SELECT 1",
        &[("PGSSLROOTCERT", other_ca.as_path())],
        "verify-full",
    )
    .await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("certificate verify failed"),
        "{}",
        text(&o)
    );
    // The router keeps serving clients that do things right.
    let ca = [("PGSSLROOTCERT", f.ca.as_path())];
    let o = psql(
        r.port,
        APP_USER,
        APP_PASSWORD,
        &db,
        "SELECT 1",
        &ca,
        "verify-full",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_needs_a_certificate_from_the_client_ca_before_and_after_reload() {
    let (_root, _inter, f) = router_files("mtls");
    // A CA file with two CAs: certificates of either are accepted.
    let (ca_a, ca_b, stranger) = (Ca::new("clients A"), Ca::new("clients B"), Ca::new("x"));
    let client_ca = write(&f.dir, "clients.crt", &(ca_a.pem() + &ca_b.pem()));
    let mut ids = Vec::new();
    for (name, ca) in [("a", &ca_a), ("b", &ca_b), ("stranger", &stranger)] {
        let leaf = ca.leaf("app", &["app"], 7);
        ids.push((
            write(&f.dir, &format!("{name}.crt"), &leaf.cert_pem),
            write(&f.dir, &format!("{name}.key"), &leaf.key_pem),
        ));
    }
    let db = scratch_db().await;
    let extra = format!("tls_client_ca_certificate = \"{}\"", client_ca.display());
    let toml = format!(
        "[general]\nhost = \"127.0.0.1\"\nport = 0\nadmin_port = 0\nmetrics_port = 0\n{}\n{}",
        tls_general(&f, "verify-ca", &extra),
        pool_toml(&db, "transaction", 2, "")
    );
    let path = write(&f.dir, "orochi.toml", &toml);
    let r = Router::start_file(&path).await;
    for round in ["before", "after"] {
        for (i, (cert, key)) in ids.iter().enumerate() {
            let env = [
                ("PGSSLROOTCERT", f.ca.as_path()),
                ("PGSSLCERT", cert.as_path()),
                ("PGSSLKEY", key.as_path()),
            ];
            let o = psql(
                r.port,
                APP_USER,
                APP_PASSWORD,
                &db,
                "SELECT 1",
                &env,
                "verify-full",
            )
            .await;
            assert_eq!(
                o.status.success(),
                i < 2,
                "{round} reload, client {i}: {}",
                text(&o)
            );
        }
        let o = psql(
            r.port,
            APP_USER,
            APP_PASSWORD,
            &db,
            "SELECT 1",
            &[("PGSSLROOTCERT", f.ca.as_path())],
            "verify-full",
        )
        .await;
        assert!(
            !o.status.success(),
            "{round} reload, no client certificate: {}",
            text(&o)
        );
        if round == "before" {
            r.app.reload().expect("RELOAD");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_after_reload_and_a_bad_one_keeps_it() {
    let (_root, inter, f) = router_files("rotate");
    let first = std::fs::read_to_string(&f.cert).unwrap();
    let db = scratch_db().await;
    let toml = format!(
        "[general]\nhost = \"127.0.0.1\"\nport = 0\nadmin_port = 0\nmetrics_port = 0\n{}\n{}",
        tls_general(&f, "require", ""),
        pool_toml(&db, "transaction", 2, "")
    );
    let path = write(&f.dir, "orochi.toml", &toml);
    let r = Router::start_file(&path).await;
    let tls = tls_connect(r.port, &f.ca, Start::SslRequest, None)
        .await
        .unwrap();
    let old_cert = served(&tls);
    let mut old = RawClient::login(tls, TRUST_USER, &db, &[]).await.unwrap();
    assert_eq!(old.rows("SELECT 1").await, vec!["1"]);

    let next = inter.leaf("router", &["127.0.0.1"], 2);
    write(
        &f.dir,
        "router.crt",
        &(next.cert_pem.clone() + &inter.pem()),
    );
    write(&f.dir, "router.key", &next.key_pem);
    r.app.reload().expect("RELOAD with the new certificate");
    let tls = tls_connect(r.port, &f.ca, Start::SslRequest, None)
        .await
        .unwrap();
    assert_eq!(
        served(&tls),
        next.der,
        "new handshakes get the new certificate"
    );
    assert_ne!(old_cert, next.der);
    assert!(first.contains("BEGIN CERTIFICATE"));
    assert_eq!(
        old.rows("SELECT 2").await,
        vec!["2"],
        "the old session goes on"
    );

    // A key that does not match: the reload is refused and says why; the current
    // certificate stays in service.
    let stray = inter.leaf("router", &["127.0.0.1"], 3);
    write(&f.dir, "router.key", &stray.key_pem);
    let err = r.app.reload().expect_err("mismatched key").to_string();
    assert!(err.contains("do not go together"), "{err}");
    std::fs::remove_file(&f.key).unwrap();
    let err = r.app.reload().expect_err("missing key").to_string();
    assert!(err.contains("router.key"), "{err}");
    let tls = tls_connect(r.port, &f.ca, Start::SslRequest, None)
        .await
        .unwrap();
    assert_eq!(served(&tls), next.der);
    let mut c = RawClient::login(tls, TRUST_USER, &db, &[]).await.unwrap();
    assert_eq!(c.rows("SELECT 3").await, vec!["3"]);
}

/// The same rotation through the real binary and a real SIGHUP (what `systemctl reload`
/// or a certificate manager's hook sends): new handshakes get the new certificate, the
/// session opened before it goes on, and nothing restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_makes_the_running_binary_serve_the_rotated_certificate() {
    let (_root, inter, f) = router_files("sighup");
    let db = scratch_db().await;
    let port = common::procs::free_port();
    let toml = format!(
        "[general]\nhost = \"127.0.0.1\"\nport = {port}\nadmin_port = 0\nmetrics_port = 0\n{}\n{}",
        tls_general(&f, "require", ""),
        pool_toml(&db, "transaction", 2, "")
    );
    let path = write(&f.dir, "orochi.toml", &toml);
    let mut child = common::procs::spawn_router(&path, None);
    let pid = child.id().expect("the router runs");
    let tls = common::within(20, "the router binary accepts TLS", async {
        loop {
            if let Ok(s) = tls_connect(port, &f.ca, Start::SslRequest, None).await {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let old_cert = served(&tls);
    let mut old = RawClient::login(tls, TRUST_USER, &db, &[]).await.unwrap();
    assert_eq!(old.rows("SELECT 1").await, vec!["1"]);

    let next = inter.leaf("router", &["127.0.0.1"], 7);
    assert_ne!(old_cert, next.der);
    write(
        &f.dir,
        "router.crt",
        &(next.cert_pem.clone() + &inter.pem()),
    );
    write(&f.dir, "router.key", &next.key_pem);
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -HUP {pid}");
    common::within(
        10,
        "a handshake after SIGHUP serves the new certificate",
        async {
            loop {
                let tls = tls_connect(port, &f.ca, Start::SslRequest, None)
                    .await
                    .unwrap();
                if served(&tls) == next.der {
                    return;
                }
                assert_eq!(
                    served(&tls),
                    old_cert,
                    "only the old or the new certificate"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    )
    .await;
    assert_eq!(
        old.rows("SELECT 2").await,
        vec!["2"],
        "the old session goes on"
    );
    let tls = tls_connect(port, &f.ca, Start::SslRequest, None)
        .await
        .unwrap();
    let mut c = RawClient::login(tls, TRUST_USER, &db, &[]).await.unwrap();
    assert_eq!(c.rows("SELECT 3").await, vec!["3"]);
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the router did not restart or exit"
    );
    child.kill().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_needs_the_postgresql_alpn() {
    let (_root, _inter, f) = router_files("direct");
    let db = scratch_db().await;
    let r = Router::start_with(
        &tls_general(&f, "require", ""),
        &pool_toml(&db, "transaction", 2, ""),
    )
    .await;
    let tls = tls_connect(
        r.port,
        &f.ca,
        Start::Direct(vec![b"postgresql".to_vec()]),
        None,
    )
    .await
    .expect("direct TLS handshake");
    let mut c = RawClient::login(tls, TRUST_USER, &db, &[]).await.unwrap();
    assert_eq!(c.rows("SELECT 'direct'").await, vec!["direct"]);

    // Without ALPN the handshake completes but the router hangs up before any answer.
    let mut tls = tls_connect(r.port, &f.ca, Start::Direct(vec![]), None)
        .await
        .expect("handshake");
    let mut startup = bytes::BytesMut::new();
    orochi_wire::StartupRequest::Startup {
        minor: 0,
        params: vec![
            ("user".into(), TRUST_USER.into()),
            ("database".into(), db.clone()),
        ],
    }
    .encode(&mut startup);
    let _ = tls.write_all(&startup).await;
    assert!(
        closed_silently(tls).await,
        "direct TLS without ALPN is refused"
    );
    // Another protocol's ALPN fails the handshake itself.
    let e = tls_connect(
        r.port,
        &f.ca,
        Start::Direct(vec![b"http/1.1".to_vec()]),
        None,
    )
    .await;
    assert!(e.is_err(), "ALPN http/1.1 must fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_sslrequest_and_stalled_handshakes_end_the_connection() {
    let (_root, _inter, f) = router_files("hostile");
    let db = scratch_db().await;
    let r = Router::start_with(
        &tls_general(&f, "prefer", ""),
        &pool_toml(&db, "transaction", 2, ""),
    )
    .await;
    // SSLRequest followed at once by a plaintext startup packet (CVE-2021-23214).
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    let mut out = SSL_REQUEST.to_vec();
    let mut startup = bytes::BytesMut::new();
    orochi_wire::StartupRequest::Startup {
        minor: 0,
        params: vec![
            ("user".into(), TRUST_USER.into()),
            ("database".into(), db.clone()),
        ],
    }
    .encode(&mut startup);
    out.extend_from_slice(&startup);
    s.write_all(&out).await.unwrap();
    assert!(
        closed_silently(s).await,
        "no 'S', no answer: the connection is closed"
    );

    // 'S', then silence: dropped after connect_timeout (1 s), well before the login timeout.
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    s.write_all(&SSL_REQUEST).await.unwrap();
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[0], b'S');
    let started = std::time::Instant::now();
    assert!(closed_silently(s).await);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
    // Plaintext still works under prefer.
    let mut c = r.connect(&db).await;
    assert_eq!(common::one(&mut c, "SELECT '5'").await, "5");
}
