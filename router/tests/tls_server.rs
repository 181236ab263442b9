//! TLS between the router and PostgreSQL (SPEC §8, issue 13), against the fleet's
//! `tls` instance: ssl turned on here with certificates made here, and a pg_hba.conf
//! that admits role `tlsapp` over `hostssl` only. One test owns that instance's ssl
//! settings (tests run in parallel processes).

mod common;

use common::certs::{write, Ca};
use common::{psql_cmd, Router};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn tls_instance() -> (String, u16) {
    common::fleet();
    let env = std::fs::read_to_string(common::repo_root().join(".run/fleet.env")).unwrap();
    let vars: HashMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let (h, p) = vars["OROCHI_PG_TLS"].rsplit_once(':').unwrap();
    (h.to_string(), p.parse().unwrap())
}

/// Writes a server certificate for `localhost` (DNS name only) into the instance's data
/// directory and turns ssl on. Returns the CA file that signed it.
async fn enable_ssl(port: u16) -> PathBuf {
    let mut su = PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username(common::SUPERUSER)
        .password(common::SUPERUSER_PASSWORD)
        .database("postgres")
        .ssl_mode(PgSslMode::Disable)
        .connect()
        .await
        .expect("superuser on the tls instance");
    let (data,): (String,) = sqlx::query_as("SHOW data_directory")
        .fetch_one(&mut su)
        .await
        .unwrap();
    let data = PathBuf::from(data);
    let ca = Ca::new("server CA");
    let leaf = ca.leaf("localhost", &["localhost"], 11);
    let cert = write(&data, "orochi-test-server.crt", &leaf.cert_pem);
    let key = write(&data, "orochi-test-server.key", &leaf.key_pem);
    // PostgreSQL wants its key owned by the user it runs as.
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&data).unwrap();
    for f in [&cert, &key] {
        std::os::unix::fs::chown(f, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    for sql in [
        "ALTER SYSTEM SET ssl_cert_file = 'orochi-test-server.crt'",
        "ALTER SYSTEM SET ssl_key_file = 'orochi-test-server.key'",
        "ALTER SYSTEM SET ssl = on",
        "SELECT pg_reload_conf()",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut su)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // Wait until the postmaster took the reload (new connections see ssl = on).
    for _ in 0..50 {
        let mut c = su_again(port).await;
        let (on,): (String,) = sqlx::query_as("SHOW ssl").fetch_one(&mut c).await.unwrap();
        if on == "on" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = su.close().await;
    write(
        &common::certs::scratch_dir("server-ca"),
        "ca.crt",
        &ca.pem(),
    )
}

async fn su_again(port: u16) -> sqlx::PgConnection {
    PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username(common::SUPERUSER)
        .password(common::SUPERUSER_PASSWORD)
        .database("postgres")
        .ssl_mode(PgSslMode::Disable)
        .connect()
        .await
        .unwrap()
}

fn pool(host: &str, port: u16, mode: &str) -> String {
    pool_as(("tlsapp", "tlssecret"), host, port, mode)
}

/// Pool `tlsdb` for `user` (the same name and password towards the server).
fn pool_as((user, password): (&str, &str), host: &str, port: u16, mode: &str) -> String {
    format!(
        r#"
[pools.tlsdb]
pool_mode = "transaction"
server_tls_sslmode = "{mode}"

[pools.tlsdb.users.0]
username = "{user}"
password = "{password}"
pool_size = 2

[pools.tlsdb.shards.0]
database = "postgres"
servers = [["{host}", {port}, "primary"]]
"#
    )
}

async fn through(r: &Router, sql: &str) -> std::process::Output {
    through_as(r, ("tlsapp", "tlssecret"), sql).await
}

async fn through_as(r: &Router, (user, password): (&str, &str), sql: &str) -> std::process::Output {
    psql_cmd(r.port, user, password, "tlsdb", &["-Atc", sql])
        .output()
        .await
        .unwrap()
}

/// What `pg_stat_ssl` says of the server connection a query through `r` ran on.
async fn backend_ssl(r: &Router, login: (&str, &str)) -> String {
    let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let o = through_as(r, login, sql).await;
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The error a client gets, at login (when the router needs a server then) or at
/// its first statement.
async fn failure(r: &Router) -> sqlx::Error {
    match r.opts("tlsapp", "tlssecret", "tlsdb").connect().await {
        Err(e) => e,
        Ok(mut c) => sqlx::query("SELECT 1")
            .execute(&mut c)
            .await
            .expect_err("the server connection must fail"),
    }
}

fn general(ca: &Path) -> String {
    format!(
        "server_tls_ca_file = \"{}\"\nadmin_password = \"adminpw\"",
        ca.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_to_a_hostssl_only_server_and_what_fails() {
    let (_, port) = tls_instance();
    let ca = enable_ssl(port).await;

    // verify-full by DNS name (SNI sent): the backend says its connection is TLS.
    let r = Router::start_with(&general(&ca), &pool("localhost", port, "verify-full")).await;
    let o = through(
        &r,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{out}");
    assert_eq!(out.trim(), "t");
    // SHOW SERVERS fills the tls column for the pooled server connection.
    let o = psql_cmd(
        r.admin_port,
        "admin",
        "adminpw",
        "orochi",
        &["-Atc", "SHOW SERVERS"],
    )
    .output()
    .await
    .unwrap();
    let servers = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        servers.contains("|TLSv1.3/TLS_"),
        "SHOW SERVERS:\n{servers}"
    );
    drop(r);

    // A cancel goes to the server over TLS too, as the connection it cancels did: the
    // connections the router opens through a recording proxy all start with an
    // SSLRequest, none with a cleartext CancelRequest (which would carry the backend's
    // key in the clear).
    let proxy = common::faultproxy::FaultProxy::start(("127.0.0.1".into(), port)).await;
    let r = Router::start_with(&general(&ca), &pool("127.0.0.1", proxy.port, "verify-ca")).await;
    let mut sleeper = psql_cmd(
        r.port,
        "tlsapp",
        "tlssecret",
        "tlsdb",
        &["-Atc", "SELECT pg_sleep(30)"],
    )
    .spawn()
    .unwrap();
    common::within(10, "the sleep reaches the server", async {
        while proxy.openings().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let before = proxy.openings().len();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &sleeper.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = common::within(10, "the cancelled sleep ends", sleeper.wait())
        .await
        .unwrap();
    assert!(!status.success(), "the sleep was cancelled, not finished");
    let openings = proxy.openings();
    assert!(
        openings.len() > before,
        "the cancel opened a connection: {openings:?}"
    );
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    for o in &openings {
        assert_eq!(
            o[..],
            SSL_REQUEST,
            "every server connection starts with TLS: {openings:?}"
        );
    }
    drop(r);

    // verify-full by IP: the certificate names only localhost -> 08006 with the reason.
    let r = Router::start_with(&general(&ca), &pool("127.0.0.1", port, "verify-full")).await;
    let err = failure(&r).await;
    assert_eq!(common::code(&err).as_deref(), Some("08006"), "{err}");
    assert!(err.to_string().contains("does not name the host"), "{err}");
    drop(r);

    // verify-ca checks the chain only: the same address works.
    let r = Router::start_with(&general(&ca), &pool("127.0.0.1", port, "verify-ca")).await;
    let o = through(
        &r,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "t");
    drop(r);

    // A CA that did not sign the server's certificate.
    let stranger = write(
        &common::certs::scratch_dir("stranger"),
        "ca.crt",
        &Ca::new("x").pem(),
    );
    let r = Router::start_with(&general(&stranger), &pool("localhost", port, "verify-full")).await;
    let err = failure(&r).await;
    assert!(
        err.to_string().contains("not signed by server_tls_ca_file"),
        "{err}"
    );
    drop(r);

    // Without TLS towards the server, pg_hba.conf (hostssl only) turns the router away.
    let r = Router::start_with(&general(&ca), &pool("127.0.0.1", port, "disable")).await;
    let o = through(&r, "SELECT 1").await;
    assert!(!o.status.success(), "a plaintext login of tlsapp must fail");
    drop(r);

    // allow, as libpq means it: plaintext first. pg_hba.conf refuses tlsapp without
    // TLS ("no encryption"), so the router tries again over TLS and gets in.
    let tlsapp = ("tlsapp", "tlssecret");
    let r = Router::start_with(&general(&ca), &pool("127.0.0.1", port, "allow")).await;
    assert_eq!(backend_ssl(&r, tlsapp).await, "t", "allow ends on TLS");
    drop(r);

    // A role pg_hba.conf admits in plaintext (app, `host`), on the same server, which
    // offers TLS: allow stays plaintext where prefer takes TLS.
    let app = ("app", "secret");
    let r = Router::start_with(&general(&ca), &pool_as(app, "127.0.0.1", port, "allow")).await;
    assert_eq!(backend_ssl(&r, app).await, "f", "allow stays plaintext");
    drop(r);
    let r = Router::start_with(&general(&ca), &pool_as(app, "127.0.0.1", port, "prefer")).await;
    assert_eq!(backend_ssl(&r, app).await, "t", "prefer takes TLS");
}
