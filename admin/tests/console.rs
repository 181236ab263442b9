//! The console over TCP: login (SCRAM, md5, refusals), commands, errors, shutdown,
//! with our test client and with a real psql.

mod common;

use common::client::Client;
use common::fake::{client, pool, FakeView};
use common::{start_console, ADMIN_PASSWORD};
use orochi_admin::{AdminCreds, ClientState};
use orochi_wire::{BackendMessage, FrontendMessage};
use std::process::Command as Process;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn scram_creds() -> AdminCreds {
    AdminCreds::new("admin", ADMIN_PASSWORD)
}

fn fake_with_pools() -> std::sync::Arc<FakeView> {
    let v = FakeView::new();
    *v.pools.lock().unwrap() = vec![
        pool("app", "app", 0, 2, 3, 4),
        pool("app", "app", 1, 0, 1, 0),
    ];
    *v.clients.lock().unwrap() = vec![
        client(1, "app", "app", ClientState::Active),
        client(2, "app", "app", ClientState::Waiting),
    ];
    v
}

#[tokio::test]
async fn scram_login_and_show_pools() {
    let view = fake_with_pools();
    let (port, _t, _) = start_console(view, scram_creds()).await;
    let mut c = Client::connect(port, "admin", ADMIN_PASSWORD, "orochi")
        .await
        .unwrap();
    let r = c.query("show pools;").await;
    assert_eq!(r.error, None);
    assert_eq!(r.tags, vec!["SHOW"]);
    assert_eq!(r.rows.len(), 2);
    let names = r.names();
    let col = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert_eq!(r.rows[0][col("cl_waiting")].as_deref(), Some("2"));
    assert_eq!(r.rows[0][col("sv_active")].as_deref(), Some("3"));
    assert_eq!(r.rows[1][col("shard")].as_deref(), Some("1"));
    assert_eq!(r.rows[0][col("maxwait")].as_deref(), Some("2"));
    assert_eq!(r.rows[0][col("maxwait_us")].as_deref(), Some("500123"));
}

#[tokio::test]
async fn wrong_password_wrong_user_and_no_password_get_28p01() {
    let view = FakeView::new();
    let (port, _t, _) = start_console(view.clone(), scram_creds()).await;
    let e = Client::connect(port, "admin", "wrong", "orochi")
        .await
        .err()
        .unwrap();
    assert_eq!((e.severity.as_str(), e.code.as_str()), ("FATAL", "28P01"));
    let e = Client::connect(port, "app", ADMIN_PASSWORD, "orochi")
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, "28P01");
    assert!(e.message.contains("\"app\""), "{}", e.message);

    let (port, _t, _) = start_console(view, AdminCreds::new("admin", "")).await;
    let e = Client::connect(port, "admin", "", "orochi")
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, "28P01");
    assert!(
        e.message.contains("admin_password is not set"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn md5_hash_password_uses_md5() {
    let stored = orochi_wire::md5::stored_hash("admin", "pw-md5");
    let (port, _t, _) = start_console(FakeView::new(), AdminCreds::new("admin", &stored)).await;
    let mut c = Client::connect(port, "admin", "pw-md5", "pgbouncer")
        .await
        .unwrap();
    let r = c.query("SHOW VERSION").await;
    assert!(r.rows[0][0]
        .as_deref()
        .unwrap()
        .starts_with("Orochi Router "));
    let e = Client::connect(port, "admin", "nope", "pgbouncer")
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, "28P01");
}

#[tokio::test]
async fn scram_verifier_password_is_accepted() {
    let verifier = orochi_wire::scram::Verifier::from_password("from-verifier").to_string_form();
    let (port, _t, _) = start_console(FakeView::new(), AdminCreds::new("admin", &verifier)).await;
    Client::connect(port, "admin", "from-verifier", "orochi")
        .await
        .unwrap();
    assert!(Client::connect(port, "admin", "x", "orochi").await.is_err());
}

#[tokio::test]
async fn errors_and_actions() {
    let view = fake_with_pools();
    let (port, _t, _) = start_console(view.clone(), scram_creds()).await;
    let mut c = Client::connect(port, "admin", ADMIN_PASSWORD, "orochi")
        .await
        .unwrap();

    let r = c.query("SELECT 1").await;
    let e = r.error.unwrap();
    assert_eq!(e.code, "42601");
    assert!(e.message.contains("RELOAD, PAUSE [db]"), "{}", e.message);

    // Several statements in one Query; the session survives errors.
    let r = c
        .query("RESUME app; RECONNECT; SET application_name = 'x'")
        .await;
    assert_eq!(r.error, None);
    assert_eq!(r.tags, vec!["RESUME", "RECONNECT", "SET"]);

    let r = c.query("PAUSE nope").await;
    assert_eq!(r.error.unwrap().code, "3D000");

    let r = c.query("KILL_CLIENT 2").await;
    assert_eq!(r.tags, vec!["KILL_CLIENT"]);
    let r = c.query("KILL_CLIENT 2").await;
    assert_eq!(r.error.unwrap().code, "55000");
    assert_eq!(c.query("SHOW CLIENTS").await.rows.len(), 1);

    let r = c.query("RELOAD").await;
    assert_eq!(r.tags, vec!["RELOAD"]);
    assert_eq!(r.notices[0].message, "pools changed: app");
    view.bad_config.store(true, Ordering::SeqCst);
    let e = c.query("RELOAD").await.error.unwrap();
    assert_eq!(e.code, "F0000");
    assert!(e.field(b'D').unwrap().contains("orochi.toml:3:1"), "{e:?}");
    assert!(e.field(b'D').unwrap().contains("pool_sise"));

    let r = c.query("SHUTDOWN").await;
    assert_eq!(r.tags, vec!["SHUTDOWN"]);
    assert_eq!(
        view.actions(),
        vec![
            "resume Some(\"app\")",
            "reconnect None",
            "reload",
            "reload",
            "shutdown"
        ]
    );

    // Empty query, then the extended protocol: one error, skipped until Sync.
    assert!(c.query(" ; ").await.tags.is_empty());
    c.send_raw(FrontendMessage::Query(String::new())).await;
    assert_eq!(c.next().await, BackendMessage::EmptyQueryResponse);
    assert_eq!(c.next().await, BackendMessage::ReadyForQuery(b'I'));
    c.send_raw(FrontendMessage::Parse {
        name: String::new(),
        query: "SHOW POOLS".into(),
        param_types: vec![],
    })
    .await;
    c.send_raw(FrontendMessage::Sync).await;
    let r = c.collect().await;
    assert_eq!(r.error.unwrap().code, "0A000");
    assert_eq!(c.query("SHOW VERSION").await.rows.len(), 1);
}

#[tokio::test]
async fn pause_replies_only_after_the_view_finished_waiting() {
    let view = FakeView::new();
    view.hold_pause.store(true, Ordering::SeqCst);
    let (port, _t, _) = start_console(view.clone(), scram_creds()).await;
    let mut c = Client::connect(port, "admin", ADMIN_PASSWORD, "orochi")
        .await
        .unwrap();
    let pending = tokio::spawn(async move { c.query("PAUSE app").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "PAUSE answered before transactions finished"
    );
    assert!(view.actions().is_empty());
    view.pause_gate.notify_one();
    let r = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.tags, vec!["PAUSE"]);
    assert_eq!(view.actions(), vec!["pause Some(\"app\")"]);
}

#[tokio::test]
async fn shutdown_token_closes_sessions_with_57p01() {
    let (port, token, task) = start_console(FakeView::new(), scram_creds()).await;
    let mut c = Client::connect(port, "admin", ADMIN_PASSWORD, "orochi")
        .await
        .unwrap();
    token.cancel();
    match c.next().await {
        BackendMessage::ErrorResponse(e) => assert_eq!(e.code, "57P01"),
        m => panic!("{m:?}"),
    }
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
}

fn psql(port: u16, password: &str, args: &[&str]) -> std::process::Output {
    Process::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "admin",
            "-X",
            "orochi",
        ])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql is installed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_psql() {
    let view = fake_with_pools();
    let (port, _t, _) = start_console(view, scram_creds()).await;
    let out = tokio::task::spawn_blocking(move || {
        (
            psql(port, ADMIN_PASSWORD, &["-At", "-c", "SHOW POOLS"]),
            psql(port, ADMIN_PASSWORD, &["-x", "-c", "SHOW VERSION"]),
            psql(port, "bad", &["-c", "SHOW POOLS"]),
            psql(port, ADMIN_PASSWORD, &["-c", "SHOW NOTHING"]),
        )
    })
    .await
    .unwrap();
    let (pools, expanded, bad, unknown) = out;
    assert!(
        pools.status.success(),
        "{}",
        String::from_utf8_lossy(&pools.stderr)
    );
    let text = String::from_utf8(pools.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("app|app|1|2|0|0|3|0|0|4|0|0|0|2|500123|transaction|0|primary|10|"),
        "{}",
        lines[0]
    );
    let text = String::from_utf8(expanded.stdout).unwrap();
    assert!(text.contains("-[ RECORD 1 ]"), "{text}");
    assert!(text.contains("version | Orochi Router"), "{text}");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("password authentication failed for user \"admin\""),
        "{err}"
    );
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("invalid command 'SHOW NOTHING'") && err.contains("SHOW POOLS|"),
        "{err}"
    );
}
